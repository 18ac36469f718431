"""COCO-format ground truth and COCO metrics for the edge runtime (no TensorFlow, no ``train``).

``coco_metrics`` and ``to_coco_results`` are the one copy: ``python -m train evaluate`` uses
them too.

The ground truth is cleaned exactly as ``train``'s reader cleans it -- boxes clipped to the
image; empty, non-finite, off-image boxes and unknown image/category ids dropped and counted;
images whose file is missing left out -- so ``python -m edge_runtime evaluate`` and
``python -m train evaluate`` score one model against identical ground truth (tested).
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from edge_runtime.images import DataError

ALLOW_OUTSIDE_ENV = "FRONTIER_ALLOW_OUTSIDE_ROOT"
OUTSIDE_ROOT = (f"image file name outside the image folder (example skipped; "
                f"{ALLOW_OUTSIDE_ENV}=1 reads it)")
STAT_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


@dataclass
class GroundTruth:
    """``coco``: a cleaned COCO dict for pycocotools; ``files``: image id -> image path."""
    coco: dict
    files: dict[int, str]
    category_ids: list[int]
    source: str
    warnings: collections.Counter = field(default_factory=collections.Counter)


def annotation_file(data: str, split: str) -> str:
    """``data`` (a COCO root with ``annotations/instances_{split}[2017].json``, or a .json)."""
    data = os.path.expanduser(str(data).replace("{split}", split))
    if os.path.isdir(data):
        for name in (f"instances_{split}.json", f"instances_{split}2017.json"):
            path = os.path.join(data, "annotations", name)
            if os.path.isfile(path):
                return path
        raise DataError(f"{data}: not a COCO dataset root: neither annotations/instances_{split}"
                        f".json nor annotations/instances_{split}2017.json exists")
    if data.lower().endswith(".json"):
        return data
    raise DataError(f"{data}: the edge runtime reads COCO-format datasets (a directory or an "
                    "instances .json); TFRecords need TensorFlow: score them with `python -m "
                    "train evaluate`")


def read_json(path: str):
    """The parsed JSON of an annotation file; DataError naming it if it is missing, unreadable
    or malformed (train's COCO reader reads its files with this too)."""
    def parse_int(text: str) -> int:  # ids and sizes are 64-bit wherever they go next
        if len(text) > 20 or not -2**63 <= int(text) < 2**63:
            raise DataError(f"{path}: integer {text[:24]}{'...' if len(text) > 24 else ''} "
                            "does not fit in 64 bits")
        return int(text)

    try:
        with open(path, "rb") as f:
            return json.load(f, parse_int=parse_int)
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: "
                        f"{e.msg}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: cannot read annotation file ({e})") from None
    except RecursionError:
        raise DataError(f"{path}: malformed JSON (nested too deeply)") from None


def _load(path: str) -> dict:
    doc = read_json(path)
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: not a COCO instances file (expected an object with "
                        "'images', 'annotations' and 'categories' lists)")
    return doc


def inside_folder(folder: str, name: str) -> bool:
    """Whether an annotation's file name stays inside the image folder: not absolute, no ``..``
    climbing out. A file list from elsewhere must not make a reader open (or even probe)
    ``/etc/passwd``; readers skip such names unless called with ``allow_outside_root=True``."""
    folder = os.path.normpath(os.path.abspath(folder))
    if os.path.isabs(name) or "\0" in name:
        return False
    path = os.path.normpath(os.path.join(folder, name))
    return path != folder and os.path.commonpath([folder, path]) == folder


def outside_allowed(allow_outside_root: bool | None) -> bool:
    """A reader's ``allow_outside_root``: None (the default) means what the environment says
    (``FRONTIER_ALLOW_OUTSIDE_ROOT=1``: how a user of any CLI asks for absolute file names)."""
    if allow_outside_root is None:
        return os.environ.get(ALLOW_OUTSIDE_ENV, "") not in ("", "0")
    return bool(allow_outside_root)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_EXPECTED = {str: "a non-empty string", list: "[x, y, width, height] numbers", int: "an integer"}


def _field(path: str, section: str, i: int, entry, key: str, kind: type):
    """``entry[key]`` checked to be ``kind``; DataError naming the file and entry otherwise."""
    v = entry.get(key) if isinstance(entry, dict) else None
    if kind is str:
        ok = isinstance(v, str) and bool(v)
    elif kind is list:
        ok = isinstance(v, list) and len(v) == 4 and all(map(_is_number, v))
    else:
        ok = _is_number(v) and math.isfinite(v) and float(v).is_integer() and abs(v) < 2**63
    if not ok:
        raise DataError(f"{path}: {section}[{i}] '{key}' is {v!r}, expected {_EXPECTED[kind]}")
    return int(v) if kind is int else v


def _image_dir(path: str, split: str, file_names: list[str], allow_outside: bool) -> str:
    """The directory beside ``path`` holding the most of (a sample of) the listed images."""
    here = os.path.dirname(os.path.abspath(path))
    roots = ([os.path.dirname(here)] if os.path.basename(here) == "annotations" else []) + [here]
    candidates = list(dict.fromkeys(os.path.normpath(os.path.join(r, s)) for r in roots for s in (
        split, os.path.join("images", split), f"{split}2017", "images", "")))
    sample = file_names[:: max(1, len(file_names) // 20)][:20]
    hits = {d: sum(os.path.isfile(os.path.join(d, f)) for f in sample
                   if allow_outside or inside_folder(d, f))
            for d in candidates if os.path.isdir(d)}
    best = max(hits, key=hits.get, default=None)
    if sample and (best is None or hits[best] == 0):
        raise DataError(f"{path}: cannot find the images (e.g. {sample[0]!r}); tried "
                        + ", ".join(candidates))
    return best or candidates[0]


def read_ground_truth(data: str, split: str = "val", allow_outside_root: bool | None = None
                      ) -> GroundTruth:
    """Reads and cleans a COCO-format split (see the module docstring); image file names that
    leave the image folder are skipped and counted unless ``allow_outside_root`` (see
    outside_allowed)."""
    allow_outside_root = outside_allowed(allow_outside_root)
    path = annotation_file(data, split)
    doc, warnings = _load(path), collections.Counter()
    base = os.path.basename(path)
    if base.startswith("instances_") and base.endswith(".json"):
        split = base[len("instances_"):-len(".json")]
    cats = sorted(((_field(path, "categories", i, c, "id", int), c)
                   for i, c in enumerate(doc["categories"])), key=lambda t: t[0])
    for i, c in enumerate(doc["categories"]):
        _field(path, "categories", i, c, "name", str)
    if not cats:
        raise DataError(f"{path}: 'categories' is empty")
    repeated = [a for (a, _), (b, _) in zip(cats, cats[1:]) if a == b]
    if repeated:
        raise DataError(f"{path}: category id {repeated[0]} is used more than once")
    sizes, images = {}, []
    for i, im in enumerate(doc["images"]):
        iid = _field(path, "images", i, im, "id", int)
        name = _field(path, "images", i, im, "file_name", str)
        w, h = (_field(path, "images", i, im, k, int) for k in ("width", "height"))
        if w <= 0 or h <= 0 or iid in sizes:
            raise DataError(f"{path}: images[{i}] (id {iid}) has a repeated id or a size "
                            f"{w}x{h}")
        sizes[iid] = (w, h)
        images.append({"id": iid, "width": w, "height": h, "file_name": name})
    folder = _image_dir(path, split, [im["file_name"] for im in images], allow_outside_root)
    files = {}
    for im in images:
        f = os.path.join(folder, im["file_name"])
        if not (allow_outside_root or inside_folder(folder, im["file_name"])):
            warnings[OUTSIDE_ROOT] += 1
        elif os.path.isfile(f):
            files[im["id"]] = f
        else:
            warnings["image file missing (example skipped)"] += 1
    known = {c for c, _ in cats}
    annotations = []
    for i, a in enumerate(doc["annotations"]):
        iid = _field(path, "annotations", i, a, "image_id", int)
        cid = _field(path, "annotations", i, a, "category_id", int)
        x, y, bw, bh = (float(v) for v in _field(path, "annotations", i, a, "bbox", list))
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise DataError(f"{path}: annotations[{i}] 'iscrowd' is {crowd!r}, expected 0 or 1")
        if a.get("area") is not None and not _is_number(a["area"]):
            raise DataError(f"{path}: annotations[{i}] 'area' is {a['area']!r}, expected a "
                            "number")
        problem = ("annotation of an unknown image id (dropped)" if iid not in sizes else
                   "annotation with an unknown category id (dropped)" if cid not in known else
                   "box with NaN/inf coordinates (dropped)" if not all(
                       map(math.isfinite, (x, y, bw, bh))) else
                   "box with zero or negative width/height (dropped)" if bw <= 0 or bh <= 0
                   else None)
        if problem is None:
            W, H = sizes[iid]
            x0, y0 = min(max(x, 0.0), W), min(max(y, 0.0), H)
            x1, y1 = min(max(x + bw, 0.0), W), min(max(y + bh, 0.0), H)
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                problem = "box entirely outside the image (dropped)"
        if problem:
            warnings[problem] += 1
            continue
        if iid not in files:
            continue
        area = a.get("area")
        area = float(area) if area is not None and area > 0 and not crowd else (
            (x1 - x0) * (y1 - y0))
        annotations.append({"id": len(annotations) + 1, "image_id": iid, "category_id": cid,
                            "bbox": [round(v, 3) for v in (x0, y0, x1 - x0, y1 - y0)],
                            "area": round(area, 3), "iscrowd": 1 if crowd else 0})
    coco = {"images": [im for im in images if im["id"] in files], "annotations": annotations,
            "categories": [{"id": c, "name": str(e.get("name", c)), "supercategory": ""}
                           for c, e in cats]}
    return GroundTruth(coco, files, [c for c, _ in cats], os.path.abspath(path), warnings)


def coco_metrics(gt: dict, detections: list[dict], per_category: bool = False
                 ) -> tuple[dict, str]:
    """COCOeval (bbox) of a results list against a COCO dict: ({STAT_NAMES: value}, summary).

    Absent size buckets give -1 as in COCOeval; no detections at all gives zeros. With
    ``per_category``, ``"per_category_AP"``: AP@[.5:.95] of each category of ``gt`` in id
    order (NaN for a category without ground truth)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not detections:  # loadRes refuses an empty list
            out = {k: 0.0 for k in STAT_NAMES}
            if per_category:
                out["per_category_AP"] = [0.0] * len(coco_gt.getCatIds())
            return out, "no detections\n"
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    out = {k: float(v) for k, v in zip(STAT_NAMES, evaluator.stats)}
    if per_category:  # precision [T, R, K, A, M]: all areas, 100 detections
        precision = evaluator.eval["precision"][:, :, :, 0, -1]
        out["per_category_AP"] = [
            float(np.mean(p[p > -1])) if (p > -1).any() else float("nan")
            for p in np.moveaxis(precision, 2, 0)]
    return out, text.getvalue()


def to_coco_results(example, boxes, scores, classes, category_ids) -> list[dict]:
    """Detections of one image -> COCO result dicts (``bbox`` [x, y, width, height] in pixels).

    ``example``: anything with ``image_id``, ``height`` and ``width`` (train's ``Example``);
    ``boxes``: normalised [ymin, xmin, ymax, xmax]; ``classes``: labels 1..K, label k being
    ``category_ids[k - 1]``.
    """
    h, w = example.height, example.width
    results = []
    for (y0, x0, y1, x1), s, c in zip(boxes, scores, classes):
        results.append({"image_id": int(example.image_id),
                        "category_id": int(category_ids[int(c) - 1]),
                        "bbox": [round(float(x0 * w), 2), round(float(y0 * h), 2),
                                 round(float((x1 - x0) * w), 2), round(float((y1 - y0) * h), 2)],
                        "score": round(float(s), 5)})
    return results
