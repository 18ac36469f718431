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
    """Class-aware NMS on ``boxes`` and ``scores [B, A, K]``.

    ``boxes`` is either ``[B, A, 4]``, one box per anchor shared by all K classes (SSD, the
    RPN), or ``[B, A, K, 4]``, one box per anchor and class (Faster R-CNN's / R-FCN's second
    stage refines a box per class): class k's NMS then runs on ``boxes[:, :, k]``.

    Per class: keep scores ``> score_threshold``, greedy NMS at ``iou_threshold`` keeping at
    most ``max_detections_per_class``; then the best ``N = max_total_detections`` over all
    classes, sorted by score; the kept boxes are clipped to ``clip_window`` last. Clipping after
    NMS is what TFLite's fused ``TFLite_Detection_PostProcess`` op does (it never clips, the
    runtime clips its outputs), so an exported model detects exactly what TensorFlow does.
    Finally detections whose (clipped) box has zero area (height <= 0 or width <= 0: a box
    decoded wholly outside the window collapses onto its border) are dropped, as the TF Object
    Detection API drops them; the runtimes (edge_runtime/detector.py,
    android_demo/app/detector.js) drop them the same way after clipping the op's outputs.
    Unlike the OD API (which prunes before the top-N cut), dropping happens after it, as it
    must for the op's outputs: it never lets a lower-scoring detection in, the result is the
    op's list minus the empty boxes.

    Returns a dict with ``boxes [B, N, 4]``, ``scores [B, N]``, ``classes [B, N]`` int32 in
    1..K and ``num_detections [B]`` int32; static shapes: the kept detections come first, in
    score order, and entries past ``num_detections`` are zero (class 0).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    if boxes.shape.rank == 3:
        boxes = boxes[:, :, None, :]
    elif boxes.shape.rank == 4:
        q, k = boxes.shape[2], scores.shape[2]
        if q is not None and k is not None and q not in (1, k):
            raise ValueError(f"post_processing.py: per-class boxes [B, A, K, 4] need K = "
                             f"{k} (the scores' classes), got boxes of shape {boxes.shape}")
    else:
        raise ValueError(f"post_processing.py: boxes must be [B, A, 4] or [B, A, K, 4], got "
                         f"shape {boxes.shape}")
    out = tf.image.combined_non_max_suppression(
        boxes, scores, max_output_size_per_class=max_detections_per_class,
        max_total_size=max_total_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_per_class=False, clip_boxes=False)
    kept = out.nmsed_boxes
    if clip_window is not None:
        kept = box_ops.clip_to_window(kept, clip_window)
    n = tf.shape(kept)[1]  # max_total_detections
    valid = tf.range(n)[None, :] < tf.cast(out.valid_detections, tf.int32)[:, None]
    keep = valid & (kept[..., 2] > kept[..., 0]) & (kept[..., 3] > kept[..., 1])
    # the kept ones to the front, in their (score) order; stable, so ties keep NMS's order
    order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)
    keep = tf.gather(keep, order, batch_dims=1)
    return {
        "boxes": tf.where(keep[..., None], tf.gather(kept, order, batch_dims=1), 0.0),
        "scores": tf.where(keep, tf.gather(out.nmsed_scores, order, batch_dims=1), 0.0),
        "classes": tf.where(keep, tf.cast(tf.gather(out.nmsed_classes, order, batch_dims=1),
                                          tf.int32) + 1, 0),
        "num_detections": tf.reduce_sum(tf.cast(keep, tf.int32), axis=1),
    }
