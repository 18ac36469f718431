"""Elementary box operations on normalised ``[ymin, xmin, ymax, xmax]`` float32 boxes.

TF ops, usable eagerly, inside ``tf.function`` and in ``tf.data`` maps; inputs may be
tensors or numpy arrays.
"""
from __future__ import annotations

import tensorflow as tf


def area(boxes):
    """Areas ``[...]`` float32 of boxes ``[..., 4]`` (negative extents count as 0)."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def intersection(boxes1, boxes2):
    """Pairwise intersection areas ``[N, M]`` of ``boxes1 [N, 4]`` and ``boxes2 [M, 4]``."""
    b1 = tf.convert_to_tensor(boxes1, tf.float32)[:, None, :]
    b2 = tf.convert_to_tensor(boxes2, tf.float32)[None, :, :]
    h = tf.minimum(b1[..., 2], b2[..., 2]) - tf.maximum(b1[..., 0], b2[..., 0])
    w = tf.minimum(b1[..., 3], b2[..., 3]) - tf.maximum(b1[..., 1], b2[..., 1])
    return tf.maximum(h, 0.0) * tf.maximum(w, 0.0)


def iou(boxes1, boxes2):
    """Pairwise intersection-over-union ``[N, M]`` float32; 0 where the union is empty.

    Works with N = 0 or M = 0 (returns an empty matrix of the right shape).
    """
    inter = intersection(boxes1, boxes2)
    union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter
    return tf.where(union > 0.0, inter / tf.where(union > 0.0, union, 1.0), 0.0)


def clip_to_window(boxes, window=(0.0, 0.0, 1.0, 1.0)):
    """Clip boxes ``[..., 4]`` to ``window = (ymin, xmin, ymax, xmax)``; same shape out.

    Boxes entirely outside the window collapse to zero area on its border (not removed, so
    shapes stay static for batching and TFLite).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    window = tf.convert_to_tensor(window, tf.float32)
    lo = tf.stack([window[0], window[1], window[0], window[1]])
    hi = tf.stack([window[2], window[3], window[2], window[3]])
    return tf.minimum(tf.maximum(boxes, lo), hi)
