"""Convolutional box predictor: per-location box encodings and class logits for each anchor.

For feature maps ``[B, h_i, w_i, c_i]`` with ``k_i`` anchors per location, predicts
``box_encodings [B, sum_i h_i*w_i*k_i, 4]`` and ``class_logits [B, sum_i h_i*w_i*k_i, K+1]``
in the anchor order of :func:`train.core.anchors.ssd_anchors` (layer, row, column, anchor).
Shared by SSD (one call per feature map) and, later, the RPN of Faster R-CNN.
"""
from __future__ import annotations

import math

import numpy as np
import tf_keras as keras
from tf_keras import layers

from train.feature_extractors.base import kernel_regularizer


def class_bias(num_anchors: int, num_classes: int, loss: str, prior: float = 0.01) -> np.ndarray:
    """Initial class-logit biases ``[num_anchors * (K+1)]`` giving P(object) ~= prior.

    Starting near the background prior keeps the first steps from drowning in the loss of
    thousands of easy negatives (the focal-loss paper's trick); it speeds up learning a lot.
    """
    if loss == "softmax":
        per_anchor = np.zeros(num_classes + 1, np.float32)
        per_anchor[0] = math.log(num_classes * (1 - prior) / prior)
    else:  # sigmoid / focal: every column is an independent binary classifier
        per_anchor = np.full(num_classes + 1, -math.log((1 - prior) / prior), np.float32)
        per_anchor[0] = math.log((1 - prior) / prior)
    return np.tile(per_anchor, num_anchors)


def _conv(filters, kernel_size, use_depthwise, weight_decay, name, bias_init="zeros",
          batchnorm_momentum=0.997):
    """A k x k conv, or (SSDLite) a depthwise k x k + BN + ReLU6 followed by a 1x1 conv."""
    reg = kernel_regularizer(weight_decay)
    final = layers.Conv2D(filters, 1 if use_depthwise else kernel_size, padding="same",
                          kernel_regularizer=reg, bias_initializer=bias_init,
                          kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                          name=f"{name}/conv")
    if not use_depthwise:
        return [final]
    return [layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False,
                                   name=f"{name}/depthwise"),
            layers.BatchNormalization(momentum=batchnorm_momentum, name=f"{name}/depthwise_bn"),
            layers.ReLU(6.0, name=f"{name}/depthwise_relu"),
            final]


def convolutional_box_predictor(feature_maps, anchors_per_location, num_classes: int, *,
                                loss: str = "softmax", kernel_size: int = 3,
                                use_depthwise: bool = False, weight_decay: float = 4e-5,
                                batchnorm_momentum: float = 0.997):
    """Applies a box head and a class head to each feature map and concatenates the anchors.

    Args:
      feature_maps: list of Keras tensors ``[B, h_i, w_i, c_i]``.
      anchors_per_location: list of ``k_i``.
      num_classes: K (without background).
    Returns:
      (box_encodings ``[B, A, 4]``, class_logits ``[B, A, K+1]``) Keras tensors.
    """
    boxes, logits = [], []
    for i, (fmap, k) in enumerate(zip(feature_maps, anchors_per_location)):
        x = fmap
        for layer in _conv(k * 4, kernel_size, use_depthwise, weight_decay,
                           f"BoxPredictor_{i}/BoxEncoding", batchnorm_momentum=batchnorm_momentum):
            x = layer(x)
        boxes.append(layers.Reshape((-1, 4), name=f"BoxPredictor_{i}/box_reshape")(x))
        bias = keras.initializers.Constant(class_bias(k, num_classes, loss))
        y = fmap
        for layer in _conv(k * (num_classes + 1), kernel_size, use_depthwise, weight_decay,
                           f"BoxPredictor_{i}/ClassPredictor", bias_init=bias,
                           batchnorm_momentum=batchnorm_momentum):
            y = layer(y)
        logits.append(layers.Reshape((-1, num_classes + 1), name=f"BoxPredictor_{i}/cls_reshape")(y))
    if len(boxes) == 1:
        return boxes[0], logits[0]
    return (layers.Concatenate(axis=1, name="box_encodings")(boxes),
            layers.Concatenate(axis=1, name="class_logits")(logits))
