"""The TensorFlow functions that get converted: detector + post-processing (built-in NMS,
convert/builtin_nms.py; SSD with ``--nms fused``: the fused ``TFLite_Detection_PostProcess`` op).

Input ``image [1, M, M, 3]`` float32, either normalised ((pixel - mean) / std, the float
models) or raw pixels 0..255 with the normalisation inside the graph (the integer models: the
converter turns that input into uint8, so camera pixels go in as they are).
"""
from __future__ import annotations

import tensorflow as tf

from convert.builtin_nms import builtin_postprocess
from convert.postprocess_op import center_size_anchors, fused_postprocess

DETECTION_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores",
                     "num_detections")
RAW_OUTPUTS = ("box_encodings", "class_predictions")


def serving_function(source, *, pixel_input: bool = False, postprocess: bool = True,
                     batch_size: int | None = 1):
    """A concrete function ``image -> {output name: tensor}`` of ``source`` (an ExportSource).

    ``postprocess=True``: the four detection outputs of ``source.nms.graph``: built-in NMS
    (SSD: over the anchors; two-stage: over the proposals' rows) or, "fused", of
    ``TFLite_Detection_PostProcess`` (the op replaces a placeholder function at conversion).
    ``False`` (SSD): raw ``box_encodings [1, A, 4]`` and ``class_predictions [1, A, K+1]`` for
    runtimes that decode and suppress themselves.
    """
    h, w = source.input_shape
    post = postprocess_function(source.nms, center_size_anchors(source.anchors))
    mean, std = float(source.mean), float(source.std)
    if source.dynamic_anchors and (not postprocess or batch_size != 1):
        raise ValueError(f"{source.meta_architecture} exports need post-processing and batch 1")

    @tf.function(input_signature=[tf.TensorSpec([batch_size, h, w, 3], tf.float32, name="image")])
    def serve(image):
        x = (image - mean) * (1.0 / std) if pixel_input else image
        if source.dynamic_anchors:  # two-stage: rows decoded against the proposals
            box_encodings, class_predictions, proposals = source.predict(x)
            return dict(zip(DETECTION_OUTPUTS, builtin_postprocess(
                box_encodings, class_predictions, proposals, source.nms)))
        box_encodings, class_predictions = source.predict(x)
        if not postprocess:
            return dict(zip(RAW_OUTPUTS, (box_encodings, class_predictions)))
        return dict(zip(DETECTION_OUTPUTS, post(box_encodings, class_predictions)))

    return serve.get_concrete_function()


def postprocess_function(nms, anchors):
    """SSD's post-processing as ``nms.graph`` builds it: ``(box_encodings [1, A, 4],
    class_predictions [1, A, K+1]) -> (boxes, classes, scores, num_detections)``; ``anchors
    [A, 4]`` center-size, frozen into the model."""
    anchors = tf.constant(anchors, tf.float32)
    if nms.graph == "fused":
        fused = fused_postprocess(nms)
        return lambda box_encodings, class_predictions: fused(
            box_encodings, class_predictions, anchors)
    return lambda box_encodings, class_predictions: builtin_postprocess(
        box_encodings, class_predictions, anchors, nms, batched=nms.graph.startswith("batched"),
        v5=nms.graph == "batched_v5")


def tensorflow_detections(source, *, batch_size: int | None = None):
    """The TensorFlow reference with the same signature (TF NMS, boxes clipped; SavedModel)."""
    h, w = source.input_shape

    @tf.function(input_signature=[tf.TensorSpec([batch_size, h, w, 3], tf.float32, name="image")])
    def serve(image):
        out = source.detect(image)
        return {"detection_boxes": out["boxes"],
                "detection_classes": tf.cast(out["classes"], tf.float32),
                "detection_scores": out["scores"],
                "num_detections": tf.cast(out["num_detections"], tf.float32)}

    return serve.get_concrete_function()


def raw_predictions(source, *, batch_size: int | None = None):
    m = source.image_size

    @tf.function(input_signature=[tf.TensorSpec([batch_size, m, m, 3], tf.float32, name="image")])
    def raw(image):
        return dict(zip(RAW_OUTPUTS, source.predict(image)))

    return raw.get_concrete_function()
