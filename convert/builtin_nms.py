"""Class-aware NMS from TFLite built-ins only: what every export ends in by default (SSD over
its anchors, Faster R-CNN / R-FCN over their second stage's rows).

Shape shorthand: R rows (anchors, proposals, or proposals x classes), K classes, C = K + 1
(with the background), D = detections per class, N = max detections.

    rows: box_encodings [1, R, 4], class_predictions [1, R, C], anchors [R, 4] center-size
      -> boxes [R, 4] decoded in the graph (the fused op's box coder, EXP etc.)
      -> batched (SSD's default, ``--nms batched``): row i*C + c = anchor i's box shifted by
         c x (the boxes' span + 1) [R*C, 4], its class-c score (background zeroed) [R*C];
         ONE NON_MAX_SUPPRESSION_V4 (V5: ``batched_v5``) padded to N; anchor = index div C,
         class = index mod C - 1 (torchvision's batched_nms: classes never overlap, so it
         suppresses only within a class, and greedy order over the union keeps each class's
         own NMS result)
      -> per_class (two-stage; ``--nms per_class``): per class k one NON_MAX_SUPPRESSION_V4
         over its R scores, padded to D, then TOPK_V2 over the K x D candidates
      -> the four detection outputs (N rows, padded)

Why not ``TFLite_Detection_PostProcess`` (``--nms fused``, SSD's default until issue 23):
(1) LiteRT's kernel of the op's per-class ("regular") NMS drops every detection of class index
T when the interpreter runs with T > 1 threads (ai-edge-litert 2.3.0, and TFLite since at
least 2.8: tensorflow/tensorflow#56058; its worker loop ``col = (++next_col)`` skips column T);
(2) no custom op at all, which any delegate or runtime accepts. Both built-in graphs detect
exactly what TensorFlow's per-class NMS does (float32) and the same at any thread count.

Why batched for SSD (benchmarks/ssd_nms.py on the zoo SSD, 1278 anchors x 8 classes, LiteRT
2.3 on a 2-core AMD EPYC VM, 2026-12-04, benchmarks/results/ssd_nms.md): float32, 100
``large`` val images, the fused op found 0 of 716 squares at 2 threads (AP 0.452 -> 0.391),
0 crosses at 4; the built-in graphs the same 5766 detections at 1, 2 and 4 threads, and the
converter's check paired all 5018 with TensorFlow's (100 val images); int8: AP 0.447 at any
thread count, the op 0.448 at 1 thread, 0.388 at 2. Speed on 8 classes is a wash: the graph
alone (median ms at 1 thread) 0.17 batched, 0.15 per-class, 0.06 the fused op; in the whole
model's invoke the built-in graphs cost no more than the op (float32 4.06 / 4.03 vs 4.17 ms).
With many classes one call wins: on the 90-class COCO config (1917 anchors, score threshold
1e-8, so every (anchor, class) pair is a candidate) 3.4 ms batched, 5.8 per-class (403
operators against 53), 55 the fused op. V5 (kept scores as an output) is as fast as V4; V4 is
the one LiteRT.js already runs in the phone app's two-stage test. One call cannot cap a class
below N (``detections_per_class < max_detections``): such configs get per_class.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

# Kept in float in the int8 models (convert.quantize.convert_model's denylist): box decoding
# (EXP: int8 would give corners a coarse step), the per-class offsets, the NMS and the gathers
# and reshapes of its candidates and outputs (else scores, boxes and even class ids leave the
# model int8-rounded: class 1 as 0.988), the heads' RESHAPE / CONCATENATION (each head's box
# codes keep their own scale). Not SOFTMAX: the converter rounds its output to int8 even when
# it runs in float (a 1/256 step either way; benchmarks/ssd_nms.py measures both).
FLOAT_OPS = ("SUB", "MUL", "EXP", "PACK", "UNPACK", "REDUCE_MAX", "REDUCE_MIN", "RESHAPE",
             "CONCATENATION", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "TOPK_V2",
             "GATHER", "SELECT_V2", "CAST", "SUM")


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


def builtin_postprocess(box_encodings, class_predictions, anchors, nms, batched=False,
                        v5=False):
    """The fused op's four outputs from built-ins (see module docstring): ``boxes [1, N, 4]``,
    ``classes [1, N]`` (float, 0-based), ``scores [1, N]``, ``num_detections [1]``; ``nms``: a
    convert.postprocess_op.NmsSettings (per-class detections, IoU and score thresholds).
    ``batched``: one NMS call over all classes (:func:`batched_nms`), else one per class;
    ``v5``: NON_MAX_SUPPRESSION_V5 (returns the kept scores) for the batched call."""
    r, k = int(box_encodings.shape[1]), nms.num_classes
    # RESHAPE, not [0] or [..., 1:]: LiteRT's STRIDED_SLICE took 30-50 us per slice of these
    boxes = decode(tf.reshape(box_encodings, [r, 4]), anchors, nms.scale_factors)
    scores = tf.reshape(class_predictions, [r, k + 1])
    if batched:
        return batched_nms(boxes, scores, nms, v5)
    return per_class_nms(boxes, scores, nms)


def per_class_nms(boxes, scores, nms):
    """``boxes [R, 4]``, ``scores [R, K+1]`` (column 0: background) -> the four outputs: one
    NMS per class, then the best N of the K x D candidates by TOPK_V2."""
    per_class = nms.detections_per_class
    cand_scores, cand_index, cand_class = [], [], []
    for k, column in enumerate(tf.unstack(scores, axis=1)[1:]):
        idx, n = tf.raw_ops.NonMaxSuppressionV4(
            boxes=boxes, scores=column, max_output_size=per_class,
            iou_threshold=nms.iou_threshold, score_threshold=nms.score_threshold,
            pad_to_max_output_size=True)
        valid = tf.range(per_class) < n
        cand_scores.append(tf.where(valid, tf.gather(column, idx), -1.0))
        cand_index.append(idx)
        cand_class.append(tf.fill([per_class], k))
    top, order = tf.math.top_k(tf.concat(cand_scores, 0), k=nms.max_detections)
    valid = top >= 0.0
    index = tf.gather(tf.concat(cand_index, 0), order)
    # int32 until the last CAST: a float class table would be calibrated and quantized in the
    # int8 models (class 1 came out as 0.988)
    return _outputs(boxes, index, tf.gather(tf.concat(cand_class, 0), order), top, valid,
                    tf.reduce_sum(tf.cast(valid, tf.float32)))


def batched_nms(boxes, scores, nms, v5=False):
    """``boxes [R, 4]``, ``scores [R, K+1]`` (column 0: background) -> the four outputs from
    ONE NMS call over the R x (K+1) (row, class) pairs, class c's boxes shifted by c x (the
    boxes' span + 1) so that no two classes overlap: NMS then suppresses only within a class
    (torchvision's ``batched_nms``); the background's scores are zeroed, below any threshold.
    Greedy NMS in score order over the union keeps, per class, what that class's own NMS
    keeps, so the first N are the per-class result's best N -- as long as no class is capped
    below N (``detections_per_class >= max_detections``, checked)."""
    if nms.detections_per_class < nms.max_detections:
        raise ValueError(f"batched NMS cannot cap a class at {nms.detections_per_class} of "
                         f"{nms.max_detections} detections; use per-class NMS")
    if nms.score_threshold < 0:
        raise ValueError(f"batched NMS needs a score threshold >= 0 (it zeroes the background's "
                         f"scores), got {nms.score_threshold}")
    r, c, n = int(boxes.shape[0]), nms.num_classes + 1, nms.max_detections
    # row i * C + c = anchor i, class c: plain reshapes of boxes and scores (no transpose, no
    # slice); SUB and MUL only (no ADD), as in decode: they stay float in the int8 models
    span = tf.reduce_max(boxes) - tf.reduce_min(boxes) - (-1.0)
    shift = tf.constant(-np.arange(c, dtype=np.float32)[None, :, None]) * span    # [1, C, 1]
    rows = tf.reshape(boxes[:, None, :] - shift, [r * c, 4])
    not_background = tf.constant((np.arange(c) > 0).astype(np.float32)[None])   # [1, C]
    flat = tf.reshape(scores * not_background, [r * c])
    if v5:
        idx, kept, count = tf.raw_ops.NonMaxSuppressionV5(
            boxes=rows, scores=flat, max_output_size=n, iou_threshold=nms.iou_threshold,
            score_threshold=nms.score_threshold, soft_nms_sigma=0.0, pad_to_max_output_size=True)
    else:
        idx, count = tf.raw_ops.NonMaxSuppressionV4(
            boxes=rows, scores=flat, max_output_size=n, iou_threshold=nms.iou_threshold,
            score_threshold=nms.score_threshold, pad_to_max_output_size=True)
        kept = tf.gather(flat, idx)
    return _outputs(boxes, idx // c, idx % c - 1, kept, tf.range(n) < count,
                    tf.cast(count, tf.float32))


def _outputs(boxes, index, classes, scores, valid, count):
    """Rows ``index [N]`` of ``boxes``, their int32 ``classes`` and ``scores``, zeroed where
    not ``valid`` -> ``boxes [1, N, 4]``, ``classes [1, N]``, ``scores [1, N]``, ``count [1]``
    (RESHAPE, not [None]: that adds a STRIDED_SLICE)."""
    n = int(index.shape[0])
    out_boxes = tf.where(valid[:, None], tf.gather(boxes, index), 0.0)
    out_classes = tf.where(valid, tf.cast(classes, tf.float32), 0.0)
    return (tf.reshape(out_boxes, [1, n, 4]), tf.reshape(out_classes, [1, n]),
            tf.reshape(tf.where(valid, scores, 0.0), [1, n]), tf.reshape(count, [1]))
