"""Second-stage training targets: match proposals to the ground truth, then sample a balanced
minibatch of them (Faster R-CNN: 64 per image, a quarter positive).

Shape shorthand: B images, N proposals, G padded ground-truth boxes, M = N (+ G when the ground
truth joins the candidates), S = min(batch_size, M) sampled per image.
"""
from __future__ import annotations

import tensorflow as tf

from train.core import target_assigner
from train.core.box_coder import FasterRcnnBoxCoder
from train.core.matcher import ArgMaxMatcher
from train.core.sampler import batch_balanced_sample


class ProposalSampler:
    def __init__(self, *, batch_size: int = 64, positive_fraction: float = 0.25,
                 matched_threshold: float = 0.5, unmatched_threshold: float = 0.5,
                 add_groundtruth: bool = True, box_coder: FasterRcnnBoxCoder | None = None):
        self.batch_size, self.positive_fraction = batch_size, positive_fraction
        # No forced matches: a proposal far from every object is a negative, not a positive.
        self.matcher = ArgMaxMatcher(matched_threshold, unmatched_threshold,
                                     force_match_for_each_gt=False)
        self.add_groundtruth = add_groundtruth
        self.box_coder = box_coder or FasterRcnnBoxCoder()

    def sample(self, boxes, num_proposals, gt_boxes, gt_labels, num_gt) -> dict:
        """``boxes [B, N, 4]``, ``num_proposals [B]``, ``gt_boxes [B, G, 4]``, ``gt_labels
        [B, G]`` (1..K), ``num_gt [B]`` ->

        ``boxes [B, S, 4]`` (the sampled proposals, no gradient), ``cls_targets [B, S]`` int32
        (0 = background), ``reg_targets [B, S, 4]`` (codes of the matched gt against the
        proposal), ``weights [B, S]`` (1 = sampled; 0 = filler when fewer candidates exist).
        """
        boxes = tf.stop_gradient(tf.convert_to_tensor(boxes, tf.float32))
        n, g = int(boxes.shape[1]), int(gt_boxes.shape[1])
        valid = tf.range(n)[None, :] < tf.reshape(num_proposals, [-1, 1])
        gt_valid = tf.range(g)[None, :] < tf.reshape(num_gt, [-1, 1])
        if self.add_groundtruth:
            boxes = tf.concat([boxes, gt_boxes], axis=1)
            valid = tf.concat([valid, gt_valid], axis=1)
        m = int(boxes.shape[1])

        def assign(args):
            candidates, gtb, gtl, gtv = args
            t = target_assigner.assign_targets(candidates, gtb, gtl, self.matcher,
                                               self.box_coder, gt_valid=gtv)
            return t["cls_targets"], t["reg_targets"], t["cls_weights"]

        cls_t, reg_t, cls_w = tf.map_fn(
            assign, (boxes, gt_boxes, tf.cast(gt_labels, tf.int32), gt_valid),
            fn_output_signature=(tf.TensorSpec([m], tf.int32), tf.TensorSpec([m, 4], tf.float32),
                                 tf.TensorSpec([m], tf.float32)))
        selected = batch_balanced_sample(tf.logical_and(valid, cls_w > 0), cls_t > 0,
                                         self.batch_size, self.positive_fraction)
        s = min(self.batch_size, m)
        order = tf.argsort(tf.cast(selected, tf.int32), axis=1, direction="DESCENDING",
                           stable=True)[:, :s]
        take = lambda x: tf.gather(x, order, batch_dims=1)  # noqa: E731
        return {"boxes": take(boxes), "cls_targets": take(cls_t), "reg_targets": take(reg_t),
                "weights": tf.cast(take(selected), tf.float32)}
