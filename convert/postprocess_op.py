"""The fused ``TFLite_Detection_PostProcess`` op (box decoding + NMS inside the TFLite model).

TensorFlow has no such op. As in the TF Object Detection API, an empty ``tf.function`` carries
``experimental_implements`` with the op's name and attributes; the TFLite converter replaces the
whole function with the op (no ``allow_custom_ops`` needed, LiteRT runs it with no extra
registration). The op takes

    box_encodings      float [1, A, 4]    (ty, tx, th, tw) -- the Faster R-CNN box coder's codes
    class_predictions  float [1, A, K+1]  scores after softmax/sigmoid, column 0 = background
    anchors            float [A, 4]       (ycenter, xcenter, height, width), frozen as a constant

and returns boxes [1, N, 4] normalised (ymin, xmin, ymax, xmax), classes [1, N] (0-based, no
background), scores [1, N], num_detections [1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

OP_NAME = "TFLite_Detection_PostProcess"


# What realises the NMS in an export (NmsSettings.graph): built-in ops (convert/builtin_nms.py:
# one NMS over all classes with V4 or V5, or one per class) or this module's fused op.
GRAPHS = ("batched", "batched_v5", "per_class", "fused")


@dataclass(frozen=True)
class NmsSettings:
    """The post-processing's settings: the fused op's attributes (defaults: the SSD configs',
    class-aware "regular" NMS) and ``graph``, which of GRAPHS realises them in the export."""
    num_classes: int
    max_detections: int = 100
    detections_per_class: int = 100
    max_classes_per_detection: int = 1
    use_regular_nms: bool = True  # False: the op's fast class-agnostic NMS (not what TF does)
    score_threshold: float = 0.01
    iou_threshold: float = 0.6
    scale_factors: tuple = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w
    graph: str = "batched"

    def __post_init__(self):
        if self.graph not in GRAPHS:
            raise ValueError(f"unknown NMS graph {self.graph!r}; choose from {', '.join(GRAPHS)}")
        if not self.use_regular_nms and self.graph != "fused":
            raise ValueError("fast (class-agnostic) NMS exists only in the fused op "
                             "(graph 'fused')")

    def as_dict(self) -> dict:
        return {**asdict(self), "scale_factors": [float(s) for s in self.scale_factors]}


def center_size_anchors(anchors_yxyx: np.ndarray) -> np.ndarray:
    """``[A, 4]`` (ymin, xmin, ymax, xmax) -> ``[A, 4]`` (ycenter, xcenter, height, width)."""
    a = np.asarray(anchors_yxyx, np.float32)
    return np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2,
                     a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], axis=1).astype(np.float32)


def implements_signature(nms: NmsSettings) -> str:
    """The ``experimental_implements`` text: the op's name and attributes (a NameAttrList)."""
    sy, sx, sh, sw = (float(s) for s in nms.scale_factors)
    attrs = [("max_detections", "i", nms.max_detections),
             ("max_classes_per_detection", "i", nms.max_classes_per_detection),
             ("detections_per_class", "i", nms.detections_per_class),
             ("use_regular_nms", "b", str(bool(nms.use_regular_nms)).lower()),
             ("nms_score_threshold", "f", f"{nms.score_threshold:f}"),
             ("nms_iou_threshold", "f", f"{nms.iou_threshold:f}"),
             ("y_scale", "f", f"{sy:f}"), ("x_scale", "f", f"{sx:f}"),
             ("h_scale", "f", f"{sh:f}"), ("w_scale", "f", f"{sw:f}"),
             ("num_classes", "i", nms.num_classes)]
    return " ".join([f'name: "{OP_NAME}"'] + [
        f'attr {{ key: "{k}" value {{ {t}: {v} }} }}' for k, t, v in attrs])


def fused_postprocess(nms: NmsSettings):
    """A function ``(box_encodings, class_predictions, anchors) -> (boxes, classes, scores,
    num_detections)`` that only the TFLite converter gives a body (its TF body returns zeros)."""

    n = nms.max_detections

    @tf.function(experimental_implements=implements_signature(nms))
    def postprocess(box_encodings, class_predictions, anchors):
        del box_encodings, class_predictions, anchors  # the converter wires them into the op
        # Placeholders with the op's real output shapes, so the .tflite declares them: with
        # scalar placeholders the outputs are shape [] and LiteRT.js allocates 0-byte buffers.
        return (tf.zeros([1, n, 4]), tf.zeros([1, n]), tf.zeros([1, n]), tf.zeros([1]))

    return postprocess
