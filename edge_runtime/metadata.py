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
import os

FORMAT, VERSION = "frontier-detector", 1


def metadata_path(model_path: str) -> str:
    return os.path.splitext(str(model_path))[0] + ".json"


def read_metadata(model_path: str) -> dict | None:
    """The sidecar of ``model_path``, or None when there is none. Raises ValueError if broken."""
    path = metadata_path(model_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable model metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not Frontier model metadata (no \"format\": \"{FORMAT}\")")
    return meta
