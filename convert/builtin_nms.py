"""The second stage's class-aware NMS of a two-stage export, from TFLite built-ins only.

Shape shorthand: R rows (proposals, or proposals x classes), K classes, D = detections per
class, N = max detections.

    rows: box_encodings [1, R, 4], class_predictions [1, R, K+1], anchors [R, 4] center-size
      -> boxes decoded in the graph (the fused op's box coder, EXP etc.)
      -> per class k: NON_MAX_SUPPRESSION_V4 over its R scores, padded to D, a valid count
      -> TOPK_V2 over the K x D candidates -> the four detection outputs (N rows, padded)

Why not ``TFLite_Detection_PostProcess`` here, as the SSD exports do: (1) LiteRT's kernel for
the op's per-class ("regular") NMS drops every detection of class index T when the
interpreter runs with T > 1 threads (ai-edge-litert 2.3.0, and TFLite since at least 2.8:
tensorflow/tensorflow#56058; its worker loop ``col = (++next_col)`` skips column T) -- measured
on the zoo Faster R-CNN: class 2 gone at 2 threads, class 3 at 3; (2) on the same model this
graph was faster than the fused op (benchmarks/two_stage_nms.py: 127 vs 147 ms invoke at one
thread); (3) no custom op at all, which any delegate or runtime accepts. The detections are
the fused op's (same ranking and ties, checked by that benchmark and its test).
"""
from __future__ import annotations

import tensorflow as tf


def decode(box_encodings, anchors, scale_factors):
    """``box_encodings [R, 4]`` (ty, tx, th, tw) relative to ``anchors [R, 4]`` center-size ->
    boxes ``[R, 4]`` (ymin, xmin, ymax, xmax), as the fused op decodes them."""
    sy, sx, sh, sw = scale_factors
    ty, tx, th, tw = tf.unstack(box_encodings, axis=-1)
    ya, xa, ha, wa = tf.unstack(anchors, axis=-1)
    # Only SUB and MUL, no ADD: they stay float in the int8 models (two_stage.FLOAT_OPS), where
    # ADD is the network's residual add and int8 (box corners would get a 1/256 step).
    yc, xc = ya - ty * ha * (-1.0 / sy), xa - tx * wa * (-1.0 / sx)
    h, w = tf.exp(th * (1.0 / sh)) * ha, tf.exp(tw * (1.0 / sw)) * wa
    return tf.stack([yc - h * 0.5, xc - w * 0.5, yc - h * -0.5, xc - w * -0.5], axis=-1)


def builtin_postprocess(box_encodings, class_predictions, anchors, nms):
    """The fused op's four outputs from built-ins (see module docstring): ``boxes [1, N, 4]``,
    ``classes [1, N]`` (float, 0-based), ``scores [1, N]``, ``num_detections [1]``; ``nms``: a
    convert.postprocess_op.NmsSettings (per-class detections, IoU and score thresholds)."""
    boxes = decode(box_encodings[0], anchors, nms.scale_factors)
    per_class = nms.detections_per_class
    cand_scores, cand_index, cand_class = [], [], []
    for k in range(nms.num_classes):
        scores = class_predictions[0, :, k + 1]
        idx, n = tf.raw_ops.NonMaxSuppressionV4(
            boxes=boxes, scores=scores, max_output_size=per_class,
            iou_threshold=nms.iou_threshold, score_threshold=nms.score_threshold,
            pad_to_max_output_size=True)
        valid = tf.range(per_class) < n
        cand_scores.append(tf.where(valid, tf.gather(scores, idx), -1.0))
        cand_index.append(idx)
        cand_class.append(tf.fill([per_class], k))
    top, order = tf.math.top_k(tf.concat(cand_scores, 0), k=nms.max_detections)
    valid = top >= 0.0
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    index = tf.gather(tf.concat(cand_index, 0), order)
    out_boxes = tf.where(valid[:, None], tf.gather(boxes, index), 0.0)
    # int32 until the last CAST: a float class table would be calibrated and quantized in the
    # int8 models (class 1 came out as 0.988)
    classes = tf.cast(tf.gather(tf.concat(cand_class, 0), order), tf.float32)
    out_classes = tf.where(valid, classes, 0.0)
    return out_boxes[None], out_classes[None], tf.where(valid, top, 0.0)[None], count[None]
