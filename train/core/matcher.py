"""Argmax matcher: assign each anchor (column) to its most similar ground-truth box (row).

``match [A] int32``: ``>= 0`` the matched gt index, ``NEGATIVE`` (-1) below the unmatched
threshold, ``IGNORE`` (-2) between the thresholds (TF Object Detection API ArgMaxMatcher).
"""
from __future__ import annotations

import tensorflow as tf

NEGATIVE = -1
IGNORE = -2


class ArgMaxMatcher:
    """Threshold matcher on a similarity (IoU) matrix ``[G, A]``.

    With ``force_match_for_each_gt`` every valid gt also claims its best anchor, so no object
    goes unmatched; a gt whose best similarity is 0 (degenerate box) is not forced, since
    regressing an anchor onto it would give non-finite targets.
    """

    def __init__(self, matched_threshold=0.5, unmatched_threshold=None,
                 force_match_for_each_gt=True):
        if unmatched_threshold is None:
            unmatched_threshold = matched_threshold
        if unmatched_threshold > matched_threshold:
            raise ValueError("matcher.py: unmatched_threshold must be <= matched_threshold, got "
                             f"{unmatched_threshold} > {matched_threshold}")
        self.matched_threshold = float(matched_threshold)
        self.unmatched_threshold = float(unmatched_threshold)
        self.force_match_for_each_gt = force_match_for_each_gt

    def match(self, similarity, gt_valid=None):
        """``similarity [G, A]`` float, ``gt_valid [G]`` bool or None -> ``match [A]`` int32.

        Works for G = 0 (every anchor NEGATIVE) and with padded invalid gt rows.
        """
        sim = tf.convert_to_tensor(similarity, tf.float32)
        num_gt = tf.shape(sim)[0]
        if gt_valid is None:
            gt_valid = tf.ones([num_gt], tf.bool)
        gt_valid = tf.convert_to_tensor(gt_valid, tf.bool)
        # Invalid rows can never win an argmax nor pass a threshold.
        sim = tf.where(gt_valid[:, None], sim, -1e9)
        # A dummy row at -inf makes argmax/reduce_max defined when G = 0.
        padded = tf.concat([sim, tf.fill([1, tf.shape(sim)[1]], -1e9)], axis=0)
        best_gt = tf.argmax(padded, axis=0, output_type=tf.int32)
        best_val = tf.reduce_max(padded, axis=0)
        match = tf.where(best_val >= self.matched_threshold, best_gt, IGNORE)
        match = tf.where(best_val < self.unmatched_threshold, NEGATIVE, match)
        if not self.force_match_for_each_gt:
            return match
        # Each valid gt claims its best anchor (ties between gts: the first gt wins).
        best_anchor = tf.argmax(sim, axis=1, output_type=tf.int32)  # [G]
        forced = tf.logical_and(gt_valid, tf.reduce_max(sim, axis=1) > 0.0)
        onehot = tf.one_hot(best_anchor, tf.shape(sim)[1]) * tf.cast(forced, tf.float32)[:, None]
        onehot = tf.concat([onehot, tf.zeros([1, tf.shape(sim)[1]])], axis=0)
        forced_gt = tf.argmax(onehot, axis=0, output_type=tf.int32)
        return tf.where(tf.reduce_max(onehot, axis=0) > 0.0, forced_gt, match)
