"""The sidecar metadata of an exported model: ``model.tflite`` -> ``model.json``.

Written by ``convert/export_tflite.py``; everything the edge runtime and the phone demo need:

    {"format": "frontier-detector", "version": 1,
     "labels": ["circle", ...],                 # output class c (0-based) -> labels[c]
     "category_ids": [1, ...],                  # ... -> COCO category id category_ids[c]
     "input": {"name": "image", "shape": [1, H, W, 3], "dtype": "float32" | "uint8",
               "color": "RGB", "resize": "stretch", "mean": 127.5, "std": 127.5},
               # float input = (pixel - mean) / std; uint8 input = raw pixels (mean 0, std 1)
     "outputs": {"detection_boxes": ..., ...},  # signature output names and meaning
     "postprocess": {"fused": true, "op": "TFLite_Detection_PostProcess", ...NMS settings},
     "anchors": {...provenance...},             # + "center_size" [A, 4] when not fused
     "export": {"quantize": "int8", ...},       # how it was made
     "check": {...}}                            # the converter's TFLite-vs-TensorFlow agreement

A ``.tflite`` made elsewhere has no sidecar; the runtime then reads what it can from the model
itself (input size and dtype) and names classes by number.
"""
from __future__ import annotations

import json
import math
import os
import reprlib

from edge_runtime.interpreter import one_line

FORMAT, VERSION = "frontier-detector", 1


def metadata_path(model_path: str) -> str:
    return os.path.splitext(str(model_path))[0] + ".json"


def read_metadata(model_path: str) -> dict | None:
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
        if key in inp and not (_number(inp[key]) and (key == "mean" or inp[key] != 0)):
            bad(f"input.{key}", inp[key], "a finite number" + (" (not 0)" if key == "std" else ""))
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
