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

    Boxes are clipped to ``clip_window`` first (so overlaps are those of the visible parts),
    then per class: keep scores ``> score_threshold``, greedy NMS at ``iou_threshold`` keeping
    at most ``max_detections_per_class``; finally the best ``N = max_total_detections`` over all
    classes, sorted by score. Returns a dict with ``boxes [B, N, 4]``, ``scores [B, N]``,
    ``classes [B, N]`` int32 in 1..K and ``num_detections [B]`` int32; entries past
    ``num_detections`` are zero (class 0).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    if clip_window is not None:
        boxes = box_ops.clip_to_window(boxes, clip_window)
    out = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_output_size_per_class=max_detections_per_class,
        max_total_size=max_total_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_per_class=False, clip_boxes=False)
    num = tf.cast(out.valid_detections, tf.int32)
    valid = tf.range(max_total_detections)[None, :] < num[:, None]
    return {
        "boxes": out.nmsed_boxes,
        "scores": out.nmsed_scores,
        "classes": tf.where(valid, tf.cast(out.nmsed_classes, tf.int32) + 1, 0),
        "num_detections": num,
    }
