"""Proposal generation: RPN outputs -> a FIXED number of class-agnostic proposals per image.

decode against the anchors -> clip to the image window -> top-k by objectness before NMS ->
NMS at IoU 0.7 -> padded to exactly ``max_proposals`` (static shapes: TFLite and delegates need
them; NON_MAX_SUPPRESSION_V4 and TOPK_V2 are TFLite built-ins).

Shape shorthand: B images, A anchors, k = min(pre_nms_top_k, A), N = max_proposals.
"""
from __future__ import annotations

import tensorflow as tf

from train.core import box_ops


def clip_to_windows(boxes, windows):
    """``boxes [B, M, 4]`` normalised to the padded input, clipped to each image's window
    ``[B, 2]`` (height, width fractions; None = the whole input)."""
    if windows is None:
        return box_ops.clip_to_window(boxes)
    hi = tf.tile(tf.convert_to_tensor(windows, tf.float32), [1, 2])[:, None, :]
    return tf.minimum(tf.maximum(boxes, 0.0), hi)


def generate_proposals(box_encodings, objectness_logits, anchors, box_coder, *, windows=None,
                       pre_nms_top_k: int = 6000, max_proposals: int = 300,
                       iou_threshold: float = 0.7) -> dict:
    """``box_encodings [B, A, 4]``, ``objectness_logits [B, A, 2]``, ``anchors [A, 4]`` ->

    ``boxes [B, N, 4]`` (normalised to the padded input, sorted by score, zeros past the
    count), ``scores [B, N]`` (objectness probability, 0 past the count), ``num_proposals [B]``
    int32. No gradient flows through the proposals (as in the TF OD API). Proposals of zero
    area after clipping are dropped before NMS.
    """
    scores = tf.nn.softmax(tf.stop_gradient(objectness_logits))[..., 1]
    k = min(int(pre_nms_top_k), int(anchors.shape[0]))
    top_scores, top = tf.math.top_k(scores, k=k, sorted=True)
    codes = tf.gather(tf.stop_gradient(box_encodings), top, batch_dims=1)
    boxes = clip_to_windows(box_coder.decode(codes, tf.gather(anchors, top)), windows)
    top_scores = tf.where(box_ops.area(boxes) > 0.0, top_scores, 0.0)
    # NMS ranks by a strictly decreasing stand-in (the top-k order) rather than the scores:
    # the same selection, but ties (common in int8 models) break the same way in TensorFlow,
    # TFLite and LiteRT.js, whose NMS kernels order equal scores differently.
    rank = tf.cast(k - tf.range(k), tf.float32) / float(k)

    def nms(args):
        b, s = args
        idx, n = tf.raw_ops.NonMaxSuppressionV4(
            boxes=b, scores=tf.where(s > 0.0, rank, 0.0), max_output_size=max_proposals,
            iou_threshold=iou_threshold, score_threshold=0.0, pad_to_max_output_size=True)
        valid = tf.range(max_proposals) < n
        return (tf.where(valid[:, None], tf.gather(b, idx), 0.0),
                tf.where(valid, tf.gather(s, idx), 0.0), n)

    if boxes.shape[0] == 1:  # static batch of one (the TFLite export): no loop, no WHILE op
        one = nms((boxes[0], top_scores[0]))
        return {"boxes": one[0][None], "scores": one[1][None], "num_proposals": one[2][None]}
    out_boxes, out_scores, count = tf.map_fn(
        nms, (boxes, top_scores), fn_output_signature=(
            tf.TensorSpec([max_proposals, 4], tf.float32),
            tf.TensorSpec([max_proposals], tf.float32), tf.TensorSpec([], tf.int32)))
    return {"boxes": out_boxes, "scores": out_scores, "num_proposals": count}
