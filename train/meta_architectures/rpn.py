"""The first stage of Faster R-CNN and R-FCN: the region proposal network (Ren et al. 2015).

Owns the grid anchors of the RPN map, their training targets, the proposals and the first-stage
loss; the head's layers (:func:`train.core.rpn_head.rpn_head`) live in the detector's Keras model.

Shape shorthand: B images, H x W the padded input, h x w = ceil(H / stride) x ceil(W / stride)
the RPN map, k = len(scales) * len(aspect_ratios) anchors per cell, A = h*w*k, G padded
ground-truth boxes, N = max_proposals.
"""
from __future__ import annotations

import math

import tensorflow as tf

from train.core import losses, target_assigner
from train.core.anchors import grid_anchors
from train.core.box_coder import FasterRcnnBoxCoder
from train.core.matcher import ArgMaxMatcher
from train.core.proposals import generate_proposals
from train.core.rpn_head import rpn_head
from train.core.sampler import batch_balanced_sample


class RegionProposalNetwork:
    """Anchors, targets, proposals and loss of the RPN (TF1 zoo defaults)."""

    def __init__(self, *, image_shape, stride: int, base_size: float = 256.0,
                 scales=(0.25, 0.5, 1.0, 2.0), aspect_ratios=(0.5, 1.0, 2.0),
                 conv_depth: int = 512, kernel_size: int = 3, matched_threshold: float = 0.7,
                 unmatched_threshold: float = 0.3, batch_size: int = 256,
                 positive_fraction: float = 0.5, pre_nms_top_k: int = 6000,
                 max_proposals: int = 300, nms_iou_threshold: float = 0.7,
                 localization_weight: float = 2.0, objectness_weight: float = 1.0):
        height, width = (int(v) for v in image_shape)
        if min(height, width) < stride:
            raise ValueError(f"rpn.py: the input ({height}x{width}) is smaller than the RPN's "
                             f"stride {stride}; use a larger image_size")
        if not 1 <= max_proposals <= pre_nms_top_k:
            raise ValueError(f"rpn.py: max_proposals must be in 1..pre_nms_top_k "
                             f"({pre_nms_top_k}), got {max_proposals}")
        self.stride = int(stride)
        self.feature_map_size = (math.ceil(height / stride), math.ceil(width / stride))
        self.anchors_per_location = len(scales) * len(aspect_ratios)
        self.anchors_np = grid_anchors(self.feature_map_size, stride, (height, width),
                                       base_size=base_size, scales=tuple(scales),
                                       aspect_ratios=tuple(aspect_ratios))
        self.anchors = tf.constant(self.anchors_np)
        self.conv_depth, self.kernel_size = conv_depth, kernel_size
        self.matcher = ArgMaxMatcher(matched_threshold, unmatched_threshold,
                                     force_match_for_each_gt=True)
        self.box_coder = FasterRcnnBoxCoder()
        self.batch_size, self.positive_fraction = batch_size, positive_fraction
        self.pre_nms_top_k, self.max_proposals = pre_nms_top_k, max_proposals
        self.nms_iou_threshold = nms_iou_threshold
        self.localization_weight, self.objectness_weight = localization_weight, objectness_weight

    @property
    def num_anchors(self) -> int:
        return int(self.anchors_np.shape[0])

    def head(self, feature_map, weight_decay: float = 0.0):
        """Keras tensor ``[B, h, w, C]`` -> (``box_encodings [B, A, 4]``, ``objectness_logits
        [B, A, 2]``)."""
        box_encodings, logits = rpn_head(feature_map, self.anchors_per_location,
                                         depth=self.conv_depth, kernel_size=self.kernel_size,
                                         weight_decay=weight_decay)
        if int(box_encodings.shape[1]) != self.num_anchors:
            raise ValueError(f"rpn.py: the RPN map {tuple(feature_map.shape[1:3])} does not give "
                             f"the {self.feature_map_size} grid of {self.num_anchors} anchors")
        return box_encodings, logits

    def assign_targets(self, boxes, labels) -> dict:
        """One image: ``boxes [g, 4]`` -> ``rpn_cls_targets [A]`` (1 = object),
        ``rpn_reg_targets [A, 4]``, ``rpn_reg_weights [A]``, ``rpn_cls_weights [A]`` (0 =
        ignored: IoU between the thresholds)."""
        t = target_assigner.assign_targets(self.anchors, boxes, tf.ones_like(labels, tf.int32),
                                           self.matcher, self.box_coder)
        return {f"rpn_{k}": t[k] for k in ("cls_targets", "reg_targets", "reg_weights",
                                           "cls_weights")}

    def proposals(self, box_encodings, objectness_logits, windows=None) -> dict:
        """-> ``boxes [B, N, 4]``, ``scores [B, N]``, ``num_proposals [B]`` (see proposals.py)."""
        return generate_proposals(box_encodings, objectness_logits, self.anchors, self.box_coder,
                                  windows=windows, pre_nms_top_k=self.pre_nms_top_k,
                                  max_proposals=self.max_proposals,
                                  iou_threshold=self.nms_iou_threshold)

    def loss(self, box_encodings, objectness_logits, targets) -> dict:
        """Over a balanced sample of ``batch_size`` anchors per image (``positive_fraction``
        positive), normalised by the number sampled: ``rpn_localization`` (smooth L1 of the
        positives) and ``rpn_objectness`` (2-class cross-entropy), unweighted."""
        cls_t = targets["rpn_cls_targets"]
        sampled = batch_balanced_sample(targets["rpn_cls_weights"] > 0, cls_t > 0,
                                        self.batch_size, self.positive_fraction)
        weight = tf.cast(sampled, tf.float32)
        norm = tf.maximum(tf.reduce_sum(weight), 1.0)
        objectness = losses.softmax_cross_entropy(objectness_logits, cls_t) * weight
        loc = losses.smooth_l1(box_encodings, targets["rpn_reg_targets"])
        loc = loc * weight * tf.cast(targets["rpn_reg_weights"], tf.float32)
        return {"rpn_localization": tf.reduce_sum(loc) / norm,
                "rpn_objectness": tf.reduce_sum(objectness) / norm}
