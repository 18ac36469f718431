"""Test-time post-processing: logits -> scores, then class-aware NMS per image."""
from __future__ import annotations

import tensorflow as tf

from train.core import box_ops


def convert_scores(logits, score_fn="sigmoid"):
    """``logits [B, A, K+1]`` -> class scores ``[B, A, K]`` (background column dropped)."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    if score_fn == "sigmoid":
        scores = tf.sigmoid(logits)
    elif score_fn == "softmax":
        scores = tf.nn.softmax(logits, axis=-1)
    else:
        raise ValueError(f"post_processing.py: score_fn must be 'sigmoid' or 'softmax', "
                         f"got {score_fn!r}")
    return scores[..., 1:]


def batch_multiclass_nms(boxes, scores, iou_threshold=0.6, score_threshold=1e-8,
                         max_detections_per_class=100, max_total_detections=100,
                         clip_window=(0.0, 0.0, 1.0, 1.0)):
    """Class-aware NMS on ``boxes [B, A, 4]`` and ``scores [B, A, K]``.

    Per class: keep scores ``> score_threshold``, greedy NMS at ``iou_threshold`` keeping at
    most ``max_detections_per_class``; then the best ``N = max_total_detections`` over all
    classes, sorted by score; the kept boxes are clipped to ``clip_window`` last. Clipping after
    NMS is what TFLite's fused ``TFLite_Detection_PostProcess`` op does (it never clips, the
    runtime clips its outputs), so an exported model detects exactly what TensorFlow does.
    Returns a dict with ``boxes [B, N, 4]``, ``scores [B, N]``,
    ``classes [B, N]`` int32 in 1..K and ``num_detections [B]`` int32; entries past
    ``num_detections`` are zero (class 0).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    out = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_output_size_per_class=max_detections_per_class,
        max_total_size=max_total_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_per_class=False, clip_boxes=False)
    num = tf.cast(out.valid_detections, tf.int32)
    valid = tf.range(max_total_detections)[None, :] < num[:, None]
    kept = out.nmsed_boxes
    if clip_window is not None:
        kept = box_ops.clip_to_window(kept, clip_window)
    return {
        "boxes": kept,
        "scores": out.nmsed_scores,
        "classes": tf.where(valid, tf.cast(out.nmsed_classes, tf.int32) + 1, 0),
        "num_detections": num,
    }
