"""Faster R-CNN (Ren et al. 2015) as configured by Huang et al. 2017 (Sec. 2.1, 3.1, Fig. 1b).

    images -> extractor up to ``rpn_endpoint`` (e.g. MobileNet v2 block_13_expand, stride 16)
           -> RPN (3x3 conv, objectness + box per anchor) -> N proposals
           -> crop_and_resize of each proposal from the same map to 14 x 14, 2 x 2 max-pool
           -> the extractor's remaining layers, per proposal (``box_classifier``)
           -> global average pool -> class logits [K+1] and a box per class [K x 4]

The crops are written with TFLite built-in ops only (train/core/spatial_transform.py), so the
whole model exports without Flex ops (issue 12).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from train.core.spatial_transform import crop_and_resize
from train.feature_extractors.base import kernel_regularizer
from train.meta_architectures.two_stage import TwoStageDetector


class CropBoxClassifier:
    """Second stage: crops of the RPN map through the extractor's remaining layers.

    ``keras_model``: crops ``[M, crop/pool, crop/pool, C]`` -> (``class_logits [M, K+1]``,
    ``box_encodings [M, K*4]``)."""

    def __init__(self, extractor, channels: int, num_classes: int, *, crop_size: int = 14,
                 maxpool_kernel_size: int = 2):
        if crop_size % maxpool_kernel_size:
            raise ValueError(f"faster_rcnn.py: crop_size {crop_size} is not a multiple of "
                             f"maxpool_kernel_size {maxpool_kernel_size}")
        self.crop_size, self.pool = crop_size, maxpool_kernel_size
        self.num_classes = num_classes
        side = crop_size // maxpool_kernel_size
        net = extractor.box_classifier((side, side, channels))
        self.layer_names = {l.name for l in net.layers}
        reg = kernel_regularizer(extractor.weight_decay)
        x = net.output  # [M, h, w, C], or [M, C] after VGG's fc7
        if len(x.shape) == 4:
            x = layers.GlobalAveragePooling2D(name="SecondStageBoxPredictor/pool")(x)
        logits = layers.Dense(num_classes + 1, kernel_regularizer=reg,
                              kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                              name="SecondStageBoxPredictor/ClassPredictor")(x)
        boxes = layers.Dense(num_classes * 4, kernel_regularizer=reg,
                             kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                             name="SecondStageBoxPredictor/BoxEncodingPredictor")(x)
        self.keras_model = keras.Model(net.input, [logits, boxes], name="second_stage")

    def __call__(self, first_stage_outputs, boxes, training=False):
        """-> ``class_logits [B, n, K+1]``, ``box_encodings [B, n, K, 4]`` for ``boxes
        [B, n, 4]``."""
        features = first_stage_outputs["features"]
        b, n = tf.shape(boxes)[0], boxes.shape[1]
        crops = crop_and_resize(features, boxes,  # no gradient to the boxes (stopped there)
                                (self.crop_size, self.crop_size))
        crops = tf.reshape(crops, [-1, self.crop_size, self.crop_size, features.shape[-1]])
        crops = tf.nn.max_pool2d(crops, self.pool, self.pool, "VALID")
        logits, box_encodings = self.keras_model(crops, training=training)
        return (tf.reshape(logits, [b, n, self.num_classes + 1]),
                tf.reshape(box_encodings, [b, n, self.num_classes, 4]))


class FasterRCNN(TwoStageDetector):
    meta_architecture = "faster_rcnn"

    def __init__(self, *, extractor, num_classes: int, image_resizer, rpn,
                 crop_size: int = 14, maxpool_kernel_size: int = 2, **two_stage):
        """``rpn``: a RegionProposalNetwork for ``image_resizer.output_shape``; ``two_stage``:
        the TwoStageDetector keyword arguments (proposal_sampler, loss weights, NMS)."""
        height, width = image_resizer.output_shape
        backbone = extractor.backbone((height, width, 3), endpoints=[extractor.rpn_endpoint])
        features = backbone.output[extractor.rpn_endpoint]
        box_encodings, objectness = rpn.head(features, extractor.weight_decay)
        first_stage = keras.Model(backbone.inputs, {
            "features": features, "rpn_box_encodings": box_encodings,
            "rpn_objectness_logits": objectness}, name="first_stage")
        classifier = CropBoxClassifier(extractor, int(features.shape[-1]), num_classes,
                                       crop_size=crop_size,
                                       maxpool_kernel_size=maxpool_kernel_size)
        super().__init__(extractor=extractor, num_classes=num_classes,
                         image_resizer=image_resizer, first_stage=first_stage, rpn=rpn,
                         box_classifier=classifier,
                         backbone_layers={l.name for l in backbone.layers} | classifier.layer_names,
                         **two_stage)
