"""The sidecar metadata of an exported model: ``model.tflite`` -> ``model.json``.

Written by ``convert/export_tflite.py``; everything the edge runtime and the phone demo need:

    {"format": "frontier-detector", "version": 1,
     "labels": ["circle", ...],                 # output class c (0-based) -> labels[c]
     "category_ids": [1, ...],                  # ... -> COCO category id category_ids[c]
     "input": {"name": "image", "shape": [1, H, W, 3], "dtype": "float32" | "uint8",
               "color": "RGB", "resize": "stretch", "mean": 127.5, "std": 127.5},
               # float input = (pixel - mean) / std; uint8 input = raw pixels (mean 0, std 1)
     "outputs": {"detection_boxes": ..., ...},  # signature output names and meaning
     "postprocess": {"fused": false, "graph": "batched", ...NMS settings},  # "fused": the op
     "anchors": {...provenance...},             # + "center_size" [A, 4] when not fused
     "export": {"quantize": "int8", ...},       # how it was made
     "check": {...}}                            # the converter's TFLite-vs-TensorFlow agreement

Since issue 23 the model carries its metadata itself (the standard TFLite Model Metadata, see
edge_runtime/tflite_metadata.py): labels (labels.txt), normalisation and colour space in the
standard fields, the rest of the above (less "labels", the mean/std and "check") as the
associated file frontier.json. :func:`read_metadata` reads the embedded metadata first and
holds the sidecar to it; a ``.tflite`` made elsewhere with standard metadata gets its labels and
normalisation from it, and one with neither is run with what the model itself says (input size
and dtype), its classes named by number.
"""
from __future__ import annotations

import json
import math
import os
import reprlib

from edge_runtime import tflite_metadata as standard
from edge_runtime.interpreter import one_line

FORMAT, VERSION = "frontier-detector", 1
RECORD_FILE = "frontier.json"  # convert/tflite_metadata.py writes it


def metadata_path(model_path: str) -> str:
    return os.path.splitext(str(model_path))[0] + ".json"


def read_metadata(model_path: str) -> dict | None:
    """The model's metadata: the embedded one (:func:`embedded_metadata`) completed by the
    sidecar's extra keys (the parity check), or the sidecar alone for older exports, or None.
    Raises ValueError naming the file and the key if either is unreadable, does not follow the
    schema (:func:`check_schema`), or the two disagree."""
    embedded = embedded_metadata(model_path)
    sidecar = read_sidecar(model_path)
    if embedded is None:
        return sidecar
    if sidecar is None:
        return embedded
    disagreement = _first_difference(embedded, sidecar)
    if disagreement:
        key, mine, theirs = disagreement
        raise ValueError(f"{metadata_path(model_path)}: '{key}' is {reprlib.repr(theirs)} but "
                         f"the metadata embedded in {os.path.basename(model_path)} says "
                         f"{reprlib.repr(mine)}; re-export the model or delete the stale sidecar")
    return {**sidecar, **embedded}


def _first_difference(embedded: dict, sidecar: dict, prefix: str = ""):
    """(key path, embedded value, sidecar value) of the first key both hold differently."""
    for key, mine in embedded.items():
        if key not in sidecar:
            continue
        theirs, path = sidecar[key], prefix + key
        if isinstance(mine, dict) and isinstance(theirs, dict):
            found = _first_difference(mine, theirs, path + ".")
            if found:
                return found
        elif _numbers(mine) and _numbers(theirs):  # float32 in the flatbuffer: rounded
            a, b = (v if isinstance(v, list) else [v] for v in (mine, theirs))
            if len(a) != len(b) or any(abs(x - y) > 1e-6 * max(1.0, abs(y))
                                       for x, y in zip(a, b)):
                return path, mine, theirs
        elif mine != theirs:
            return path, mine, theirs
    return None


def embedded_metadata(model_path: str) -> dict | None:
    """The standard metadata embedded in ``model_path`` as this schema's dict, or None if the
    model has none: frontier.json (if present) plus "labels" from the category output's label
    file, "input.mean"/"input.std" from its NormalizationOptions (a number, or one per channel)
    and "input.color", and "standard": the model's name, version, author, licence. ValueError
    naming the file and the field if it is corrupt."""
    where = f"{model_path}: embedded TFLite metadata"
    try:
        with open(model_path, "rb") as f:
            model = f.read()
    except OSError as e:
        raise ValueError(f"{model_path}: cannot read the model file ({e.strerror or e})") from None
    try:
        buf = standard.metadata_buffer(model)
    except Exception as e:  # noqa: BLE001 -- any flatbuffer fault of a corrupt file
        raise ValueError(f"{model_path}: corrupt model flatbuffer, cannot look for metadata "
                         f"({one_line(e) or type(e).__name__})") from None
    if buf is None:
        return None
    try:
        md = standard.parse(buf)
        files = standard.associated_files(model)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    meta = {}
    if RECORD_FILE in files:
        try:
            meta = json.loads(files[RECORD_FILE].decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise ValueError(f"{where}: {RECORD_FILE} is unreadable ({one_line(e)})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{where}: {RECORD_FILE} is not Frontier model metadata")
    outputs = md["outputs"]
    category = next((t for t in outputs if t["name"] == "category"), None) or next(
        (t for t in outputs if standard.labels_file(t)), None)
    name = standard.labels_file(category or {})
    if name is not None:
        if name not in files:
            raise ValueError(f"{where}: output '{category['name']}' names the label file "
                             f"{name!r}, which the model does not carry")
        try:
            text = files[name].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{where}: label file {name!r} is not UTF-8") from None
        meta["labels"] = [line.rstrip("\r") for line in text.split("\n")]
        while meta["labels"] and not meta["labels"][-1]:
            meta["labels"].pop()
    inp = dict(meta.get("input") or {})
    image = md["inputs"][0] if md["inputs"] else {}
    for key in ("mean", "std"):
        values = image.get(key)
        if values:
            if len(values) not in (1, 3):
                raise ValueError(f"{where}: input '{image.get('name')}' has {len(values)} "
                                 f"normalisation {key} values, expected 1 or 3")
            inp[key] = values[0] if len(set(values)) == 1 else values
    if image.get("color_space") not in (None, "UNKNOWN"):
        inp["color"] = image["color_space"]
    if inp:
        meta["input"] = inp
    meta["standard"] = {k: md[k] for k in ("name", "version", "author", "license",
                                           "min_parser_version")}
    check_schema(meta, where)
    return meta


def read_sidecar(model_path: str) -> dict | None:
    """The sidecar of ``model_path``, or None when there is none. Raises ValueError naming the
    file and the key if it is unreadable or does not follow the schema (:func:`check_schema`)."""
    path = metadata_path(model_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            meta = json.load(f)
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or UTF-8
        raise ValueError(f"{path}: unreadable model metadata "
                         f"({one_line(e) or type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not Frontier model metadata (no \"format\": \"{FORMAT}\")")
    check_schema(meta, path)
    return meta


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v) -> bool:
    """A number or a list of them (per-channel mean/std)."""
    return _number(v) or (isinstance(v, list) and bool(v) and all(map(_number, v)))


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_schema(meta: dict, path: str) -> None:
    """Type checks of every key the runtime reads (the rest is documentation)."""
    def bad(key: str, v, expected: str):
        raise ValueError(f"{path}: model metadata '{key}' is {reprlib.repr(v)}, expected "
                         f"{expected}")

    if meta.get("version", VERSION) != VERSION or isinstance(meta.get("version"), bool):
        bad("version", meta["version"], f"{VERSION} (a newer or corrupt file?)")
    for key in ("input", "postprocess", "outputs", "anchors", "export", "check", "model"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            bad(key, meta[key], "an object")
    labels, ids = meta.get("labels"), meta.get("category_ids")
    if labels is not None and not (isinstance(labels, list) and all(
            isinstance(x, str) for x in labels)):
        bad("labels", labels, "a list of strings")
    if ids is not None and not (isinstance(ids, list) and all(map(_int, ids))):
        bad("category_ids", ids, "a list of integers")
    if labels is not None and ids is not None and len(labels) != len(ids):
        bad("category_ids", ids, f"one id per label ({len(labels)})")
    inp = meta.get("input") or {}
    for key in ("mean", "std"):
        values = inp[key] if isinstance(inp.get(key), list) and len(inp[key]) == 3 else [
            inp.get(key)]
        if key in inp and not all(_number(v) and (key == "mean" or v != 0) for v in values):
            bad(f"input.{key}", inp[key], "a finite number" +
                (" (not 0)" if key == "std" else "") + ", or three (one per channel)")
    if "resize" in inp and not isinstance(inp["resize"], str):
        bad("input.resize", inp["resize"], "a string")
    if inp.get("resize") == "keep_aspect_ratio":
        for key in ("min_dimension", "max_dimension"):
            if not (_int(inp.get(key)) and inp[key] > 0):
                bad(f"input.{key}", inp.get(key), "a positive integer")
    post = meta.get("postprocess") or {}
    for key in ("fused", "use_regular_nms"):
        if key in post and not isinstance(post[key], bool):
            bad(f"postprocess.{key}", post[key], "true or false")
    if "num_classes" in post and not (_int(post["num_classes"]) and post["num_classes"] >= 0):
        bad("postprocess.num_classes", post["num_classes"], "a non-negative integer")
