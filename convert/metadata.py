"""Builds the sidecar metadata of an exported model (schema: edge_runtime/metadata.py)."""
from __future__ import annotations

import datetime
import platform

import tensorflow as tf

from convert.graph import DETECTION_OUTPUTS, RAW_OUTPUTS
from convert.postprocess_op import OP_NAME, center_size_anchors
from edge_runtime.metadata import FORMAT, VERSION

OUTPUT_DOC = {
    "detection_boxes": "float32 [1, N, 4] normalised (ymin, xmin, ymax, xmax); clip to [0, 1]",
    "detection_classes": "float32 [1, N] 0-based class index into labels",
    "detection_scores": "float32 [1, N] descending",
    "num_detections": "float32 [1] valid rows of the three above",
    "box_encodings": "float32 [1, A, 4] (ty, tx, th, tw) against anchors, scaled by "
                     "postprocess.scale_factors",
    "class_predictions": "float32 [1, A, K+1] class scores, column 0 = background",
}


def build(source, *, mode: str, postprocess: bool, input_dtype: str, input_quant=None,
          export: dict | None = None) -> dict:
    cfg = source.config
    m = source.image_size
    integer_input = input_dtype == "uint8"
    anchors = {
        "count": int(len(source.anchors)),
        "generator": "train.core.anchors.ssd_anchors",
        "settings": (cfg.get("ssd") or {}).get("anchors", {}),
        "image_size": m,
        "format": "center_size (ycenter, xcenter, height, width), normalised",
        "frozen_in_model": postprocess,
    }
    if not postprocess:  # the runtime decodes the boxes itself
        anchors["center_size"] = center_size_anchors(source.anchors).round(7).tolist()
    outputs = DETECTION_OUTPUTS if postprocess else RAW_OUTPUTS
    return {
        "format": FORMAT, "version": VERSION,
        "labels": list(source.labels["category_names"]),
        "category_ids": list(source.labels["category_ids"]),
        "input": {"name": "image", "shape": [1, m, m, 3], "dtype": input_dtype,
                  "color": "RGB", "resize": "stretch (OpenCV INTER_AREA)",
                  "mean": 0.0 if integer_input else source.mean,
                  "std": 1.0 if integer_input else source.std,
                  "quantization": input_quant,
                  "note": ("raw uint8 pixels; normalisation (pixel - 127.5) / 127.5 is inside "
                           "the model" if integer_input else "float32 (pixel - mean) / std")},
        "outputs": {name: OUTPUT_DOC[name] for name in outputs},
        "postprocess": {"fused": postprocess, "op": OP_NAME if postprocess else None,
                        "score_fn": source.score_fn, **source.nms.as_dict()},
        "anchors": anchors,
        "model": {"meta_architecture": cfg.get("meta_architecture"),
                  "feature_extractor": cfg.get("feature_extractor"), "image_size": m},
        "export": {"quantize": mode, "source": source.provenance,
                   "tensorflow": tf.__version__, "host": platform.node(),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"), **(export or {})},
    }
