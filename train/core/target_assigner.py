"""Target assignment: per-anchor classification and regression targets for one image."""
from __future__ import annotations

import tensorflow as tf

from train.core import box_ops


def assign_targets(anchors, gt_boxes, gt_labels, matcher, box_coder, gt_valid=None):
    """Match ``anchors [A, 4]`` to ``gt_boxes [G, 4]`` (labels ``[G]`` int in 1..K) by IoU.

    Returns a dict of
      ``cls_targets [A] int32``   the matched gt's label, 0 (background) otherwise;
      ``reg_targets [A, 4] f32``  ``box_coder.encode(matched gt, anchor)``, zeros if unmatched;
      ``reg_weights [A] f32``     1 for positives, else 0;
      ``cls_weights [A] f32``     0 for ignored anchors (between thresholds), else 1;
      ``match [A] int32``         the raw matcher output (for samplers / debugging).
    Works for G = 0 and in graph mode with a dynamic G (``gt_valid [G]`` masks padding).
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    gt_boxes = tf.reshape(tf.convert_to_tensor(gt_boxes, tf.float32), [-1, 4])
    gt_labels = tf.cast(tf.reshape(gt_labels, [-1]), tf.int32)
    match = matcher.match(box_ops.iou(gt_boxes, anchors), gt_valid)
    positive = match >= 0
    # Gather from the gts plus one dummy unit box, so unmatched anchors index something valid
    # (and finite) even when G = 0; their targets are zeroed below.
    idx = tf.where(positive, match, tf.shape(gt_boxes)[0])
    boxes = tf.gather(tf.concat([gt_boxes, [[0.0, 0.0, 1.0, 1.0]]], axis=0), idx)
    labels = tf.gather(tf.concat([gt_labels, [0]], axis=0), idx)
    reg = box_coder.encode(boxes, anchors)
    pos_f = tf.cast(positive, tf.float32)
    return {
        "cls_targets": labels,
        "reg_targets": reg * pos_f[:, None],
        "reg_weights": pos_f,
        "cls_weights": tf.cast(match != -2, tf.float32),
        "match": match,
    }
