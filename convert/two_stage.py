"""The export graph of Faster R-CNN and R-FCN: TFLite built-ins only.

Shape shorthand: one image H x W (the padded square input), N proposals (fixed at export),
K classes, K' = K (Faster R-CNN: a box per class) or 1 (R-FCN: one class-agnostic box).

    image -> first stage -> RPN proposals: TOPK_V2 (pre-NMS top-k), NON_MAX_SUPPRESSION_V4
             (IoU 0.7, padded to exactly N) -- one image, so no WHILE loop
          -> crops (BATCH_MATMUL, train/core/spatial_transform.py) -> box classifier
          -> rows decoded against the proposals, then per-class NMS (convert/builtin_nms.py):
             K' = 1: row i = proposal i, its box code and its K+1 class scores.
             K' = K: row i*K + k = proposal i's class-k box code with only class k's score
             (the others 0), so each class's NMS sees that class's own boxes.

Why built-in NMS rather than ``TFLite_Detection_PostProcess`` with the proposals as its
anchors (what the SSD exports end in, and this module's first version): LiteRT's kernel of the
op's per-class NMS drops class index T at T > 1 threads (see convert/builtin_nms.py), and the
built-in graph was faster on the zoo Faster R-CNN (benchmarks/two_stage_nms.py: 127 vs 147 ms
invoke at 1 thread); both give the same detections. The outputs keep the SSD exports' four
names, so the edge runtime and the phone app read a two-stage model with no code of their own.

The proposals are clipped to the whole padded input, not to the image inside it (a fixed
graph has no window input); the runtime divides the boxes by the window and clips them.
"""
from __future__ import annotations

import tensorflow as tf

from convert.postprocess_op import NmsSettings

# Kept in float in the int8 models: the geometry between the quantized convolutions. The crops'
# bilinear weights max(0, 1 - |y - p|) come from distances of up to the map's size, so int8
# gives them a step of ~0.1 and the crops are noise (AP 0.360 -> 0.290 on a Faster R-CNN
# checkpoint); box decoding (EXP), the proposals' top-k / NMS / gathers and the scores likewise.
# With these float the same model scores 0.357; the convolutions and dense layers stay int8.
# PACK / UNPACK / CONCATENATION: box corners and the NMS candidates' scores (int8 would give
# scores a 1/256 step and tie them); RESHAPE / STRIDED_SLICE / SUM / EXPAND_DIMS: the outputs'
# last steps (else boxes, scores and even class ids leave the model int8-rounded: class 1 as
# 0.988). Data movement only, so float costs little where the network uses them too.
FLOAT_OPS = ("BATCH_MATMUL", "ABS", "RELU", "SUB", "MUL", "EXP", "TOPK_V2",
             "NON_MAX_SUPPRESSION_V4", "GATHER", "SOFTMAX", "SELECT_V2", "MINIMUM", "MAXIMUM",
             "CAST", "PACK", "UNPACK", "CONCATENATION", "RESHAPE", "STRIDED_SLICE", "SUM",
             "EXPAND_DIMS")

# A floor above 0 drops the zero-score rows (padding proposals, other classes' rows) in
# TensorFlow's NMS and the export's alike.
MIN_SCORE_THRESHOLD = 1e-8


def center_size(boxes):
    """``[..., 4]`` (ymin, xmin, ymax, xmax) -> (ycenter, xcenter, height, width)."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([(ymin + ymax) * 0.5, (xmin + xmax) * 0.5, ymax - ymin, xmax - xmin], -1)


def nms_settings(spec: dict, num_classes: int) -> NmsSettings:
    nms = spec["nms"]
    return NmsSettings(num_classes=num_classes, max_detections=nms["max_total_detections"],
                       detections_per_class=nms["max_detections_per_class"],
                       use_regular_nms=True, graph="per_class",
                       score_threshold=max(float(nms["score_threshold"]), MIN_SCORE_THRESHOLD),
                       iou_threshold=nms["iou_threshold"],
                       scale_factors=tuple(spec["box_coder_scales"]))


def op_rows(predictions: dict, num_classes: int):
    """Second-stage predictions of one image -> the op's inputs: ``box_encodings [1, R, 4]``,
    ``class_predictions [1, R, K+1]`` (softmax, column 0 = background), ``anchors [R, 4]``
    center-size; R = N (K' = 1) or N*K (K' = K)."""
    proposals = predictions["box_classifier_boxes"][0]                   # [N, 4]
    n = int(proposals.shape[0])
    valid = tf.cast(tf.range(n) < predictions["num_proposals"][0], tf.float32)  # [N]
    scores = tf.nn.softmax(predictions["class_logits"][0]) * valid[:, None]     # [N, K+1]
    codes = predictions["refined_box_encodings"][0]                      # [N, K', 4]
    anchors = center_size(proposals)
    if codes.shape[1] == 1:
        return codes[None, :, 0], scores[None], anchors
    k = num_classes
    own = scores[:, 1:, None] * tf.eye(k)[None]                          # [N, K, K]: row k keeps k
    rows = tf.concat([tf.zeros([n * k, 1]), tf.reshape(own, [n * k, k])], axis=1)
    anchors = tf.reshape(tf.tile(anchors[:, None, :], [1, k, 1]), [n * k, 4])
    return tf.reshape(codes, [1, n * k, 4]), rows[None], anchors


def source_parts(model, spec: dict, nms: NmsSettings) -> dict:
    """``predict`` (normalised images ``[1, H, W, 3]`` -> the op's three inputs) and ``detect``
    (the TensorFlow reference on the same input, boxes relative to the padded input)."""
    forward = spec["predict_preprocessed"]
    k = model.num_classes
    model.nms["score_threshold"] = nms.score_threshold  # the reference thresholds as the op does

    def predict(x):
        return op_rows(forward(x, None, training=False), k)

    def detect(x):
        out = model.postprocess(forward(x, None, training=False))
        return {"boxes": out["boxes"], "classes": out["classes"] - 1, "scores": out["scores"],
                "num_detections": out["num_detections"]}

    return {"predict": predict, "detect": detect}
