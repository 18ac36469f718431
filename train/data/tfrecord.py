"""TF Object Detection API TFRecords <-> DetectionDataset, and the label map beside them.

Record features (as written by the TF OD API's ``create_coco_tf_record.py``):
``image/encoded`` (JPEG/PNG bytes), ``image/height``, ``image/width``, ``image/filename``,
``image/source_id``, ``image/format``, ``image/object/bbox/{xmin,ymin,xmax,ymax}`` (normalised),
``image/object/class/label`` (label-map ids), ``image/object/class/text``,
``image/object/is_crowd``, ``image/object/area``. Labels are label-map ids (e.g. COCO's 1..90),
remapped to contiguous 1..K here. The id -> name map comes from ``label_map.pbtxt`` beside the
records when present (so train and val agree even if a class is absent from one), else from
the ids and ``class/text`` seen in the records.

TensorFlow is imported inside the functions: the rest of ``train.data`` works without it.
"""
from __future__ import annotations

import collections
import os
import re

import numpy as np

from edge_runtime.files import write_text
from edge_runtime.images import DataError, read_image
from train.data.dataset import DetectionDataset, Example

LABEL_MAP_NAME = "label_map.pbtxt"
CLIPPED = "box partly outside the image (clipped)"
EMPTY = "box with zero or negative width/height (dropped)"
UNKNOWN_CATEGORY = "annotation with a label not in the label map (dropped)"
CROWD = "crowd (iscrowd=1) region (not trained on, kept for evaluation)"


def read_label_map(path: str) -> dict[int, str]:
    """Parses a TF OD API ``label_map.pbtxt``: {id: display_name (or name)}."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read label map ({e.strerror or e})") from None
    out = {}
    for i, body in enumerate(re.findall(r"item\s*\{(.*?)\}", text, re.S)):
        pairs = re.findall(r"(\w+)\s*:\s*(?:'([^']*)'|\"([^\"]*)\"|([^\s'\"]+))", body)
        fields = {k: a or b or c for k, a, b, c in pairs}
        if "id" not in fields or not fields["id"].lstrip("-").isdigit():
            raise DataError(f"{path}: item {i} has no integer 'id'")
        out[int(fields["id"])] = fields.get("display_name") or fields.get("name") or fields["id"]
    if not out:
        raise DataError(f"{path}: no 'item {{ id: ... name: ... }}' entries")
    return out


def format_label_map(ids: list[int], names: list[str]) -> str:
    return "".join(f"item {{\n  id: {i}\n  name: '{n}'\n  display_name: '{n}'\n}}\n"
                   for i, n in zip(ids, names))


def _features():
    import tensorflow as tf

    f32, i64, s = tf.float32, tf.int64, tf.string
    fixed = {"image/encoded": (s, ""), "image/height": (i64, 0), "image/width": (i64, 0),
             "image/filename": (s, ""), "image/source_id": (s, "")}
    spec = {k: tf.io.FixedLenFeature([], t, default_value=d) for k, (t, d) in fixed.items()}
    for k, t in (("bbox/xmin", f32), ("bbox/ymin", f32), ("bbox/xmax", f32), ("bbox/ymax", f32),
                 ("class/label", i64), ("class/text", s), ("is_crowd", i64), ("area", f32)):
        spec["image/object/" + k] = tf.io.RaggedFeature(t)
    return spec


def _records(path: str):
    """Yields each record of one TFRecord file as a dict of numpy values."""
    import tensorflow as tf

    spec = _features()
    ds = tf.data.TFRecordDataset(path).batch(256).map(lambda r: tf.io.parse_example(r, spec))
    try:
        for batch in ds:
            cols = {k: (v.to_list() if isinstance(v, tf.RaggedTensor) else v.numpy())
                    for k, v in batch.items()}
            for i in range(len(cols["image/encoded"])):
                yield {k: v[i] for k, v in cols.items()}
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        msg = e.message.strip().splitlines()[0] if e.message else type(e).__name__
        raise DataError(f"{path}: corrupt or not a TF Object Detection record file ({msg})"
                        ) from None


def _resolve_label_map(files: list[str], label_map) -> dict[int, str] | None:
    if isinstance(label_map, dict):
        return {int(k): str(v) for k, v in label_map.items()}
    if isinstance(label_map, str):
        return read_label_map(label_map)
    beside = os.path.join(os.path.dirname(files[0]), LABEL_MAP_NAME)
    return read_label_map(beside) if os.path.isfile(beside) else None


def read_tfrecord(pattern: str, label_map: str | dict | None = None) -> DetectionDataset:
    """Reads all records of the files matching ``pattern`` (a path or glob)."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"{pattern}: no file matches (expected a COCO root directory, a COCO "
                        ".json or TFRecord file(s))")
    names = _resolve_label_map(files, label_map)
    warnings: collections.Counter = collections.Counter()
    raw = []  # (example without classes remapped, ids [N], crowd ids)
    seen_names: dict[int, str] = {}
    for path in files:
        for r_index, rec in enumerate(_records(path)):
            where = f"{path}: record {r_index}"
            if not rec["image/encoded"]:
                raise DataError(f"{where} has no image/encoded bytes")
            coords = [np.asarray(rec[f"image/object/bbox/{k}"], np.float32)
                      for k in ("ymin", "xmin", "ymax", "xmax")]
            labels = np.asarray(rec["image/object/class/label"], np.int64)
            texts = [t.decode("utf-8", "replace") for t in rec["image/object/class/text"]]
            n = len(coords[0])
            if any(len(c) != n for c in coords):
                raise DataError(f"{where}: bbox/xmin, ymin, xmax, ymax have different lengths "
                                f"({', '.join(str(len(c)) for c in coords)})")
            if len(labels) == 0 and n and len(texts) == n and names:
                by_name = {v: k for k, v in names.items()}
                labels = np.array([by_name.get(t, -1) for t in texts], np.int64)
            if len(labels) != n:
                raise DataError(f"{where}: {n} boxes but {len(labels)} class/label values")
            for lab, t in zip(labels, texts if len(texts) == n else []):
                seen_names.setdefault(int(lab), t)
            crowd = np.asarray(rec["image/object/is_crowd"], np.int64)
            crowd = crowd > 0 if len(crowd) == n else np.zeros(n, bool)
            areas = np.asarray(rec["image/object/area"], np.float32)
            boxes = np.stack(coords, 1).reshape(n, 4)
            clipped = np.clip(boxes, 0.0, 1.0)
            moved = np.abs(clipped - boxes).max(1, initial=0) > 1e-6 if n else np.zeros(0, bool)
            ok = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
            warnings[EMPTY] += int((~ok).sum())
            warnings[CLIPPED] += int((moved & ok).sum())
            h, w = int(rec["image/height"]), int(rec["image/width"])
            if h <= 0 or w <= 0:
                h, w = read_image(data=rec["image/encoded"], name=where).shape[:2]
            sid = rec["image/source_id"].decode("utf-8", "replace")
            image_id = int(sid) if sid.isdigit() else len(raw) + 1
            example = Example(image_id=image_id, file_name="", height=h, width=w,
                              boxes=clipped[ok & ~crowd], classes=np.zeros(0, np.int32),
                              encoded=bytes(rec["image/encoded"]),
                              areas=areas[ok & ~crowd] if len(areas) == n else None,
                              crowd_boxes=clipped[ok & crowd])
            raw.append((example, labels[ok & ~crowd], labels[ok & crowd]))
    warnings = collections.Counter({k: v for k, v in warnings.items() if v})
    if names is None:
        names = {i: seen_names.get(i) or str(i) for i in
                 sorted({int(x) for _, a, b in raw for x in (*a, *b)})}
    category_ids = sorted(names)
    lookup = {cid: k + 1 for k, cid in enumerate(category_ids)}
    for example, labels, crowd_labels in raw:
        cls = np.array([lookup.get(int(x), 0) for x in labels], np.int32)
        crowd_cls = np.array([lookup.get(int(x), 0) for x in crowd_labels], np.int32)
        if (cls == 0).any() or (crowd_cls == 0).any():
            warnings[UNKNOWN_CATEGORY] += int((cls == 0).sum() + (crowd_cls == 0).sum())
        keep = cls > 0
        example.boxes, example.classes = example.boxes[keep], cls[keep]
        if example.areas is not None:
            example.areas = example.areas[keep]
        example.crowd_boxes = example.crowd_boxes[crowd_cls > 0]
        example.crowd_classes = crowd_cls[crowd_cls > 0]
        if len(example.crowd_classes):
            warnings[CROWD] += len(example.crowd_classes)
    return DetectionDataset(examples=[e for e, _, _ in raw], category_ids=category_ids,
                            category_names=[names[c] for c in category_ids], source=pattern,
                            warnings=warnings)


def _image_format(data: bytes) -> bytes:
    return b"png" if data[:8] == b"\x89PNG\r\n\x1a\n" else b"jpeg"


def _feature_makers():
    import tensorflow as tf

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    def f(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))

    return b, i, f


def _tf_example(ds: DetectionDataset, e: Example):
    import tensorflow as tf

    if e.encoded is not None:
        data = e.encoded
    else:
        try:
            with open(e.file_name, "rb") as f:
                data = f.read()
        except OSError as err:
            raise DataError(f"{e.file_name}: cannot read image ({err.strerror or err})") from None
    boxes = np.concatenate([e.boxes, e.crowd_boxes]).reshape(-1, 4)
    classes = np.concatenate([e.classes, e.crowd_classes]).astype(np.int64)
    crowd = [0] * len(e.classes) + [1] * len(e.crowd_classes)
    box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * e.height * e.width
    areas = box_areas if e.areas is None else np.concatenate([e.areas, box_areas[len(e.areas):]])
    ids = [ds.category_ids[c - 1] for c in classes]
    text = [ds.category_names[c - 1].encode() for c in classes]
    b, i, f = _feature_makers()
    feature = {
        "image/encoded": b([data]), "image/format": b([_image_format(data)]),
        "image/height": i([e.height]), "image/width": i([e.width]),
        "image/filename": b([os.path.basename(e.file_name).encode() or str(e.image_id).encode()]),
        "image/source_id": b([str(e.image_id).encode()]),
        "image/object/bbox/ymin": f(boxes[:, 0]), "image/object/bbox/xmin": f(boxes[:, 1]),
        "image/object/bbox/ymax": f(boxes[:, 2]), "image/object/bbox/xmax": f(boxes[:, 3]),
        "image/object/class/label": i(ids), "image/object/class/text": b(text),
        "image/object/is_crowd": i(crowd), "image/object/area": f(areas),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_tfrecord(dataset: DetectionDataset, path: str,
                   label_map_path: str | None = "auto") -> None:
    """Writes ``dataset`` as one TF OD API TFRecord file at ``path`` (atomically: a temporary
    name, then renamed), and its label map (default: ``label_map.pbtxt`` beside it; None: no
    label map). An existing label map with other categories is an error, not overwritten."""
    import tensorflow as tf

    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if label_map_path == "auto":
        label_map_path = os.path.join(os.path.dirname(path), LABEL_MAP_NAME)
    if label_map_path:
        text = format_label_map(dataset.category_ids, dataset.category_names)
        if os.path.isfile(label_map_path):
            if read_label_map(label_map_path) != dict(zip(dataset.category_ids,
                                                          dataset.category_names)):
                raise DataError(f"{label_map_path}: exists with other categories; pass another "
                                "label_map_path")
        else:
            write_text(label_map_path, text)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for e in dataset.examples:
                writer.write(_tf_example(dataset, e).SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
