"""The region proposal network's head (Ren et al. 2015; paper Sec. 2.1, Fig. 1b).

A 3x3 conv over the RPN feature map, then two 1x1 convs: per anchor 4 box encodings and 2
objectness logits (background, object). The output order is the anchor order of
:func:`train.core.anchors.grid_anchors`: row, column, then the k anchors of a cell.

Shape shorthand: B images, h x w the RPN map, C its channels, k anchors per cell, A = h*w*k.
"""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from train.feature_extractors.base import kernel_regularizer


def rpn_head(feature_map, anchors_per_location: int, *, depth: int = 512, kernel_size: int = 3,
             weight_decay: float = 0.0, name: str = "FirstStageBoxPredictor"):
    """Keras tensor ``[B, h, w, C]`` -> (``box_encodings [B, A, 4]``, ``objectness_logits
    [B, A, 2]``) Keras tensors (column 1 = object)."""
    reg = kernel_regularizer(weight_decay)
    init = lambda: keras.initializers.TruncatedNormal(stddev=0.01)  # noqa: E731 (one per layer)
    x = layers.Conv2D(depth, kernel_size, padding="same", kernel_regularizer=reg,
                      kernel_initializer=init(), name=f"{name}/conv")(feature_map)
    x = layers.ReLU(6.0, name=f"{name}/relu6")(x)
    boxes = layers.Conv2D(anchors_per_location * 4, 1, kernel_regularizer=reg,
                          kernel_initializer=init(), name=f"{name}/BoxEncoding")(x)
    logits = layers.Conv2D(anchors_per_location * 2, 1, kernel_regularizer=reg,
                           kernel_initializer=init(), name=f"{name}/Objectness")(x)
    return (layers.Reshape((-1, 4), name=f"{name}/box_reshape")(boxes),
            layers.Reshape((-1, 2), name=f"{name}/objectness_reshape")(logits))
