"""Builds the sidecar metadata of an exported model (schema: edge_runtime/metadata.py)."""
from __future__ import annotations

import datetime
import platform

import tensorflow as tf

from convert.graph import DETECTION_OUTPUTS, RAW_OUTPUTS
from convert.postprocess_op import OP_NAME, center_size_anchors
from edge_runtime.metadata import FORMAT, VERSION

NMS_DOC = {  # postprocess_op.GRAPHS -> what the model ends in (sidecar's postprocess.nms)
    "batched": "built-in NON_MAX_SUPPRESSION_V4, one call over all classes (each class's boxes "
               "offset so classes never overlap: per-class NMS)",
    "batched_v5": "built-in NON_MAX_SUPPRESSION_V5, one call over all classes (each class's "
                  "boxes offset so classes never overlap: per-class NMS)",
    "per_class": "built-in NON_MAX_SUPPRESSION_V4 per class + TOPK_V2",
    "fused": OP_NAME,
}

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
    fused = postprocess and source.nms.graph == "fused"  # else built-in NMS ops
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
    h, w = source.input_shape
    resize = {"resize": "stretch (OpenCV INTER_AREA)"}
    model = {"meta_architecture": cfg.get("meta_architecture"),
             "feature_extractor": cfg.get("feature_extractor"), "image_size": m}
    if source.dynamic_anchors:
        r = source.resizer
        resize = {"resize": "keep_aspect_ratio", "min_dimension": r.min_dimension,
                  "max_dimension": r.max_dimension,
                  "resize_note": ("scale so the shorter edge is min_dimension unless the longer "
                                  "would pass max_dimension (OpenCV INTER_AREA), pad bottom/right "
                                  "with zero pixels; output boxes are relative to the padded "
                                  "input: divide by the window (scaled height / H, width / W), "
                                  "then clip")}
        anchors.update(generator="train.core.anchors.grid_anchors (the RPN's); the NMS's "
                       "anchors are the proposals, computed in the model", stride=source.stride,
                       settings=cfg[source.meta_architecture]["first_stage"]["anchors"],
                       image_size=[h, w])
        model.update(max_image_size=r.max_dimension, num_proposals=source.num_proposals,
                     rpn_stride=source.stride)
    return {
        "format": FORMAT, "version": VERSION,
        "labels": list(source.labels["category_names"]),
        "category_ids": list(source.labels["category_ids"]),
        "input": {"name": "image", "shape": [1, h, w, 3], "dtype": input_dtype,
                  "color": "RGB", **resize,
                  "mean": 0.0 if integer_input else source.mean,
                  "std": 1.0 if integer_input else source.std,
                  "quantization": input_quant,
                  "note": ("raw uint8 pixels; normalisation (pixel - 127.5) / 127.5 is inside "
                           "the model" if integer_input else "float32 (pixel - mean) / std")},
        "outputs": {name: OUTPUT_DOC[name] for name in outputs},
        "postprocess": {"fused": fused, "op": OP_NAME if fused else None,
                        "nms": NMS_DOC[source.nms.graph] if postprocess else None,
                        "score_fn": source.score_fn, **source.nms.as_dict(),
                        "graph": source.nms.graph if postprocess else None},
        "anchors": anchors,
        "model": model,
        "export": {"quantize": mode, "source": source.provenance,
                   "tensorflow": tf.__version__, "host": platform.node(),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"), **(export or {})},
    }
