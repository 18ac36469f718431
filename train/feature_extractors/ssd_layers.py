"""SSD's multi-scale feature maps: the extractor's two chosen maps plus added layers.

Huang et al. Sec. 3.1: "selecting the topmost convolutional feature map and a higher resolution
feature map at a lower level, then adding a sequence of convolutional layers with spatial resolution
decaying by a factor of 2 with each additional layer used for prediction ... we use batch
normalization in all additional layers." Each added layer is, as in the TF OD API's
``multi_resolution_feature_maps`` (insert_1x1_conv=True):

    1x1 conv (depth / 2) + BN + ReLU6  ->  3x3 stride-2 SAME conv (depth) + BN + ReLU6

with the 3x3 conv depthwise-separable (3x3 depthwise + BN + ReLU6, 1x1 conv + BN + ReLU6) when
``use_depthwise`` (SSDLite). Depths are scaled like the OD API: ``max(int(d * depth_multiplier), 16)``.
For a 300x300 input and the default four extra layers the maps are 19, 10, 5, 3, 2, 1 pixels wide.
"""
from __future__ import annotations

import tf_keras as keras

from train.feature_extractors.base import kernel_regularizer

MIN_DEPTH = 16


def ssd_feature_maps(features: dict, extractor, extra_depths=(512, 256, 256, 128),
                     batchnorm_momentum: float = 0.997, weight_decay: float = 4e-5,
                     use_depthwise: bool = False, name: str = "ssd_extra") -> list:
    """Returns [lower map, top map, extra1, ..., extraN] (Keras tensors [B, h_i, w_i, c_i]).

    Args:
      features: the backbone's output dict {endpoint: [B, h, w, c]}; must contain
        ``extractor.ssd_endpoints``.
      extractor: the FeatureExtractor that made ``features`` (its ssd_endpoints and
        depth_multiplier are used).
      extra_depths: output depth of each added layer, before the depth multiplier.
      batchnorm_momentum, weight_decay: as for the extractor (L2 on conv kernels, slim's scaling;
        depthwise kernels are not decayed).
      use_depthwise: SSDLite's depthwise-separable 3x3 convs.
      name: prefix of the added layers' names.
    """
    lower, top = extractor.ssd_endpoints
    missing = [e for e in (lower, top) if e not in features]
    if missing:
        raise ValueError(f"train/feature_extractors/ssd_layers.py: features lack {missing} "
                         f"(have {sorted(features)}); {extractor.name} uses {lower}, {top} for SSD")
    depth_fn = lambda d: max(int(d * extractor.depth_multiplier), MIN_DEPTH)

    def bn_relu6(x, layer_name):
        x = keras.layers.BatchNormalization(momentum=batchnorm_momentum, epsilon=1e-3,
                                            name=f"{layer_name}_bn")(x)
        return keras.layers.ReLU(6.0, name=f"{layer_name}_relu6")(x)

    def conv(x, depth, kernel, layer_name, strides=1):
        x = keras.layers.Conv2D(depth, kernel, strides=strides, padding="same", use_bias=False,
                                kernel_regularizer=kernel_regularizer(weight_decay),
                                name=layer_name)(x)
        return bn_relu6(x, layer_name)

    maps = [features[lower], features[top]]
    x = features[top]
    for i, depth in enumerate(extra_depths, start=1):
        prefix = f"{name}_{i}"
        x = conv(x, depth_fn(int(depth / 2)), 1, f"{prefix}_Conv2d_1x1_{depth_fn(int(depth / 2))}")
        if use_depthwise:
            x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False,
                                             name=f"{prefix}_Conv2d_3x3_s2_depthwise")(x)
            x = bn_relu6(x, f"{prefix}_Conv2d_3x3_s2_depthwise")
            x = conv(x, depth_fn(depth), 1, f"{prefix}_Conv2d_3x3_s2_{depth_fn(depth)}_pointwise")
        else:
            x = conv(x, depth_fn(depth), 3, f"{prefix}_Conv2d_3x3_s2_{depth_fn(depth)}", strides=2)
        maps.append(x)
    return maps
