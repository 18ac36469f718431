"""Per-anchor losses (unreduced; the meta-architecture weights and normalises them).

Class logits have K+1 columns, column 0 = background; labels are ints in 0..K.
"""
from __future__ import annotations

import tensorflow as tf


def smooth_l1(pred, target, delta=1.0):
    """Huber loss summed over the last axis: ``[..., 4] x [..., 4] -> [...]`` float32.

    Per coordinate ``0.5 x^2`` if ``|x| <= delta`` else ``delta (|x| - 0.5 delta)``.
    """
    x = tf.abs(tf.convert_to_tensor(pred, tf.float32) - tf.convert_to_tensor(target, tf.float32))
    quad = tf.minimum(x, delta)
    return tf.reduce_sum(0.5 * quad ** 2 + delta * (x - quad), axis=-1)


def iou_loss(boxes, target_boxes):
    """``1 - IoU`` of corner boxes (ymin, xmin, ymax, xmax): ``[..., 4] x [..., 4] -> [...]``
    float32; boxes that do not overlap (or have no area) cost 1."""
    a = tf.convert_to_tensor(boxes, tf.float32)
    b = tf.convert_to_tensor(target_boxes, tf.float32)
    h = tf.nn.relu(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]))
    w = tf.nn.relu(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]))
    inter = h * w
    area = lambda x: tf.nn.relu(x[..., 2] - x[..., 0]) * tf.nn.relu(x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return 1.0 - tf.math.divide_no_nan(inter, union)


def softmax_cross_entropy(logits, labels):
    """``logits [..., K+1]``, ``labels [...]`` int -> ``[...]`` float32."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.convert_to_tensor(logits, tf.float32))


def _onehot_and_ce(logits, labels):
    logits = tf.convert_to_tensor(logits, tf.float32)
    onehot = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[-1], dtype=tf.float32)
    return logits, onehot, tf.nn.sigmoid_cross_entropy_with_logits(labels=onehot, logits=logits)


def sigmoid_cross_entropy(logits, labels):
    """Independent binary CE per column (one-hot incl. background), summed: ``[...]``."""
    _, _, ce = _onehot_and_ce(logits, labels)
    return tf.reduce_sum(ce, axis=-1)


def sigmoid_focal_loss(logits, labels, alpha=0.25, gamma=2.0):
    """Focal loss (Lin et al. 2017) summed over the K+1 columns: ``[...]`` float32.

    Per column ``alpha_t (1 - p_t)^gamma CE`` with ``alpha_t = alpha`` for the target column and
    ``1 - alpha`` for the others (TF OD API SigmoidFocalClassificationLoss).
    """
    logits, onehot, ce = _onehot_and_ce(logits, labels)
    p = tf.sigmoid(logits)
    p_t = onehot * p + (1.0 - onehot) * (1.0 - p)
    weight = (onehot * alpha + (1.0 - onehot) * (1.0 - alpha)) * tf.pow(1.0 - p_t, gamma)
    return tf.reduce_sum(weight * ce, axis=-1)
