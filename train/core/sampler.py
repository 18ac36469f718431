"""Choosing which anchors contribute to the loss.

* ``hard_negative_mining``: SSD's rule, all positives + the highest-loss negatives at a fixed
  negative:positive ratio (3:1 in the SSD paper).
* ``balanced_positive_sample``: Faster R-CNN's rule, a random minibatch of at most
  ``batch_size`` anchors/proposals with at most ``positive_fraction`` positives.
"""
from __future__ import annotations

import tensorflow as tf


def _top_k_mask(scores, mask, k):
    """Bool ``[..., N]``: the ``k [...]`` highest ``scores`` among ``mask`` along the last axis."""
    scores = tf.where(mask, scores, tf.cast(-float("inf"), scores.dtype))
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=-1, stable=True)  # inverse permutation = rank of each entry
    return tf.logical_and(mask, rank < tf.expand_dims(k, -1))


def hard_negative_mining(cls_losses, positives, negatives, neg_pos_ratio=3.0, min_negatives=0):
    """Selected anchors ``[B, A]`` bool from ``cls_losses [B, A]`` and masks ``[B, A]`` bool.

    Per image: every positive, plus the ``k = max(round(neg_pos_ratio * num_pos),
    min_negatives)`` negatives with the largest loss (``k`` capped at the number of negatives).
    """
    losses = tf.convert_to_tensor(cls_losses, tf.float32)
    positives = tf.convert_to_tensor(positives, tf.bool)
    negatives = tf.logical_and(tf.convert_to_tensor(negatives, tf.bool),
                               tf.logical_not(positives))
    num_pos = tf.reduce_sum(tf.cast(positives, tf.float32), axis=-1)
    k = tf.maximum(tf.cast(tf.round(neg_pos_ratio * num_pos), tf.int32), int(min_negatives))
    k = tf.minimum(k, tf.reduce_sum(tf.cast(negatives, tf.int32), axis=-1))
    return tf.logical_or(positives, _top_k_mask(losses, negatives, k))


def balanced_positive_sample(indicator, positives, batch_size=256, positive_fraction=0.5,
                             seed=None):
    """Random subset ``[N]`` bool of ``indicator [N]`` bool (the candidates).

    Up to ``int(batch_size * positive_fraction)`` positives are drawn uniformly; the rest of the
    ``batch_size`` is filled with negatives (``indicator & ~positives``), as in the TF OD API's
    BalancedPositiveNegativeSampler.
    """
    return batch_balanced_sample(tf.convert_to_tensor(indicator, tf.bool)[None],
                                 tf.convert_to_tensor(positives, tf.bool)[None], batch_size,
                                 positive_fraction, seed)[0]


def batch_balanced_sample(indicator, positives, batch_size=256, positive_fraction=0.5,
                          seed=None):
    """Per row, :func:`balanced_positive_sample`: ``indicator [B, N]``, ``positives [B, N]``
    bool -> selected ``[B, N]`` bool (at most ``batch_size`` per row, at most
    ``int(batch_size * positive_fraction)`` of them positive; rows sampled independently).
    Faster R-CNN: RPN 256 anchors, half positive; box classifier 64 proposals, a quarter."""
    indicator = tf.convert_to_tensor(indicator, tf.bool)
    positives = tf.convert_to_tensor(positives, tf.bool)
    pos = tf.logical_and(indicator, positives)
    neg = tf.logical_and(indicator, tf.logical_not(positives))
    noise = tf.random.uniform(tf.shape(indicator), seed=seed)
    num_pos = tf.minimum(tf.reduce_sum(tf.cast(pos, tf.int32), axis=-1),
                         int(batch_size * positive_fraction))
    num_neg = tf.minimum(tf.reduce_sum(tf.cast(neg, tf.int32), axis=-1), batch_size - num_pos)
    return tf.logical_or(_top_k_mask(noise, pos, num_pos), _top_k_mask(noise, neg, num_neg))
