"""Inception v2 (BN-Inception, Ioffe & Szegedy 2015) as in TF-slim's ``nets/inception_v2.py``.

Not in keras.applications, so written here with slim's structure, layer names and depth rule
``depth(d) = max(int(d * depth_multiplier), 16)``:

    Conv2d_1a_7x7   separable 7x7/2 conv (depthwise multiplier min(depth(64) // 3, 8)) -> 64
    MaxPool_2a_3x3  3x3/2 max pool
    Conv2d_2b_1x1   1x1 conv -> 64,   Conv2d_2c_3x3 3x3 conv -> 192
    MaxPool_3a_3x3  3x3/2 max pool                                        stride 8
    Mixed_3b, Mixed_3c                          inception modules (256, 320 channels)
    Mixed_4a                                    reduction module (576)     stride 16
    Mixed_4b .. Mixed_4e                        inception modules (576)
    Mixed_5a                                    reduction module (1024)    stride 32
    Mixed_5b, Mixed_5c                          inception modules (1024)

An inception module concatenates four branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (BN-Inception's
replacement of the 5x5); 3x3 avg pool (max pool in Mixed_5c) -> 1x1. A reduction module
concatenates 1x1 -> 3x3/2; 1x1 -> 3x3 -> 3x3/2; 3x3/2 max pool. All padding is SAME.

Every conv is conv (no bias) + batch norm + ReLU, with slim's batch norm: ``center=True,
scale=False`` (a scale is redundant before a ReLU and the next conv), epsilon 0.001. Slim's
classifier leaves Conv2d_1a_7x7 without batch norm (with a bias instead); we follow the TF OD API,
whose arg scope covers separable convs, and give it batch norm too (same trainable count: 64 biases
vs 64 betas). The separable conv is written as DepthwiseConv2D + 1x1 Conv2D, the same computation
and parameters as slim's ``separable_conv2d``, in layers that TFLite and QAT handle directly.

Endpoints: C4 = Mixed_4e (stride 16; the OD API's Faster R-CNN Inception v2 RPN layer, whose box
classifier is Mixed_5a .. Mixed_5c), C5 = Mixed_5c (stride 32), and Mixed_4c (stride 16), the map
that the OD API's ``ssd_inception_v2_feature_extractor`` pairs with Mixed_5c for SSD.
"""
from __future__ import annotations

import tf_keras as keras

from train.feature_extractors.base import FeatureExtractor, kernel_regularizer

# Inception modules: (branch 0 1x1, (branch 1 1x1, 3x3), (branch 2 1x1, 3x3, 3x3), (pool, 1x1)).
_INCEPTION = {
    "Mixed_3b": (64, (64, 64), (64, 96), ("avg", 32)),
    "Mixed_3c": (64, (64, 96), (64, 96), ("avg", 64)),
    "Mixed_4b": (224, (64, 96), (96, 128), ("avg", 128)),
    "Mixed_4c": (192, (96, 128), (96, 128), ("avg", 128)),
    "Mixed_4d": (160, (128, 160), (128, 160), ("avg", 96)),
    "Mixed_4e": (96, (128, 192), (160, 192), ("avg", 96)),
    "Mixed_5b": (352, (192, 320), (160, 224), ("avg", 128)),
    "Mixed_5c": (352, (192, 320), (192, 224), ("max", 128)),
}
# Reduction modules: ((branch 0 1x1, 3x3/2), (branch 1 1x1, 3x3, 3x3/2)); branch 2 is a 3x3/2 max pool.
_REDUCTION = {
    "Mixed_4a": ((128, 160), (64, 96)),
    "Mixed_5a": ((128, 192), (192, 256)),
}
STAGES = ("Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3",
          "Mixed_3b", "Mixed_3c", "Mixed_4a", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
          "Mixed_5a", "Mixed_5b", "Mixed_5c")


class InceptionV2(FeatureExtractor):
    name = "inception_v2"
    endpoints = {"C4": 16, "C5": 32, "Mixed_4c": 16}
    endpoint_layers = {"C4": "Mixed_4e", "C5": "Mixed_5c", "Mixed_4c": "Mixed_4c"}
    ssd_endpoints = ("Mixed_4c", "C5")
    rpn_endpoint = "C4"
    output_strides = ()  # atrous Mixed_5 is not written yet
    min_depth = 16

    def _depth(self, d: int) -> int:
        return max(int(d * self.depth_multiplier), self.min_depth)

    def _bn_relu(self, x, name):
        x = keras.layers.BatchNormalization(momentum=self.batchnorm_momentum, epsilon=1e-3,
                                            center=True, scale=False, name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    def _conv(self, x, depth, kernel, name, strides=1):
        """conv (no bias) + BN + ReLU, slim's ``conv2d`` under ``inception_arg_scope``."""
        x = keras.layers.Conv2D(self._depth(depth), kernel, strides=strides, padding="same",
                                use_bias=False, kernel_regularizer=kernel_regularizer(self.weight_decay),
                                name=name)(x)
        return self._bn_relu(x, name)

    def _stem_conv(self, x, name):
        """Conv2d_1a_7x7: slim's separable_conv2d(depth(64), 7x7, stride 2, depthwise multiplier)."""
        depth = self._depth(64)
        # Keep in_channels * multiplier <= out_channels so the factorisation is not overparameterised.
        multiplier = min(int(depth / 3), 8)
        x = keras.layers.DepthwiseConv2D(7, strides=2, padding="same", depth_multiplier=multiplier,
                                         use_bias=False, name=f"{name}_depthwise")(x)
        x = keras.layers.Conv2D(depth, 1, use_bias=False, name=f"{name}_pointwise",
                                kernel_regularizer=kernel_regularizer(self.weight_decay))(x)
        return self._bn_relu(x, name)

    def _inception(self, x, name):
        b0, (b1a, b1b), (b2a, b2b), (pool, b3) = _INCEPTION[name]
        branch_0 = self._conv(x, b0, 1, f"{name}_Branch_0_Conv2d_0a_1x1")
        branch_1 = self._conv(x, b1a, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        branch_1 = self._conv(branch_1, b1b, 3, f"{name}_Branch_1_Conv2d_0b_3x3")
        branch_2 = self._conv(x, b2a, 1, f"{name}_Branch_2_Conv2d_0a_1x1")
        branch_2 = self._conv(branch_2, b2b, 3, f"{name}_Branch_2_Conv2d_0b_3x3")
        branch_2 = self._conv(branch_2, b2b, 3, f"{name}_Branch_2_Conv2d_0c_3x3")
        if pool == "avg":
            branch_3 = keras.layers.AveragePooling2D(3, 1, padding="same",
                                                     name=f"{name}_Branch_3_AvgPool_0a_3x3")(x)
        else:
            branch_3 = keras.layers.MaxPooling2D(3, 1, padding="same",
                                                 name=f"{name}_Branch_3_MaxPool_0a_3x3")(x)
        branch_3 = self._conv(branch_3, b3, 1, f"{name}_Branch_3_Conv2d_0b_1x1")
        return keras.layers.Concatenate(axis=-1, name=name)([branch_0, branch_1, branch_2, branch_3])

    def _reduction(self, x, name):
        (b0a, b0b), (b1a, b1b) = _REDUCTION[name]
        branch_0 = self._conv(x, b0a, 1, f"{name}_Branch_0_Conv2d_0a_1x1")
        branch_0 = self._conv(branch_0, b0b, 3, f"{name}_Branch_0_Conv2d_1a_3x3", strides=2)
        branch_1 = self._conv(x, b1a, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        branch_1 = self._conv(branch_1, b1b, 3, f"{name}_Branch_1_Conv2d_0b_3x3")
        branch_1 = self._conv(branch_1, b1b, 3, f"{name}_Branch_1_Conv2d_1a_3x3", strides=2)
        branch_2 = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_Branch_2_MaxPool_1a_3x3")(x)
        return keras.layers.Concatenate(axis=-1, name=name)([branch_0, branch_1, branch_2])

    def _stage(self, x, name):
        if name == "Conv2d_1a_7x7":
            return self._stem_conv(x, name)
        if name.startswith("MaxPool"):
            return keras.layers.MaxPooling2D(3, 2, padding="same", name=name)(x)
        if name == "Conv2d_2b_1x1":
            return self._conv(x, 64, 1, name)
        if name == "Conv2d_2c_3x3":
            return self._conv(x, 192, 3, name)
        if name in _REDUCTION:
            return self._reduction(x, name)
        return self._inception(x, name)

    def _stages(self, x, first: str, last: str, keep=()) -> tuple:
        """Applies STAGES[first..last] to x; returns (output, {stage name: tensor for keep})."""
        kept = {}
        for name in STAGES[STAGES.index(first):STAGES.index(last) + 1]:
            x = self._stage(x, name)
            if name in keep:
                kept[name] = x
        return x, kept

    def backbone(self, input_shape, endpoints=None, output_stride=None):
        input_shape = self._check_input_shape(input_shape)
        endpoints = self._check_endpoints(endpoints)
        output_stride = self.output_stride if output_stride is None else output_stride
        if output_stride is not None and output_stride < 32 and "C5" in endpoints:
            raise ValueError(f"train/feature_extractors ({self.name}): output_stride "
                             f"{output_stride} (atrous Mixed_5) is not supported yet; R-FCN "
                             "needs it: use another feature_extractor.name, e.g. mobilenet_v2 "
                             "or resnet101")
        layer_names = [self.endpoint_layers[e] for e in endpoints]
        last = max(layer_names, key=STAGES.index)
        image = keras.Input(shape=input_shape, name="image")
        _, kept = self._stages(image, STAGES[0], last, keep=layer_names)
        return keras.Model(image, {e: kept[self.endpoint_layers[e]] for e in endpoints},
                           name=f"{self.name}_backbone")

    def box_classifier(self, input_shape):
        crops = keras.Input(shape=tuple(input_shape), name="crops")
        start = STAGES[STAGES.index(self.endpoint_layers[self.rpn_endpoint]) + 1]
        x, _ = self._stages(crops, start, STAGES[-1])
        return keras.Model(crops, x, name=f"{self.name}_box_classifier")

    def classifier(self, input_shape=(224, 224, 3), classes=1000):
        """Slim's inception_v2: base, global average pool, dropout (keep 0.8), 1x1 conv logits."""
        image = keras.Input(shape=self._check_input_shape(input_shape), name="image")
        x, _ = self._stages(image, STAGES[0], STAGES[-1])
        x = keras.layers.GlobalAveragePooling2D(name="Logits_AvgPool_1a")(x)
        x = keras.layers.Dropout(0.2, name="Logits_Dropout_1b")(x)
        # A Dense on the pooled vector is slim's 1x1 "Conv2d_1c_1x1" (weights + biases).
        x = keras.layers.Dense(classes, kernel_regularizer=kernel_regularizer(self.weight_decay),
                               name="Logits_Conv2d_1c_1x1")(x)
        x = keras.layers.Softmax(name="Predictions")(x)
        return keras.Model(image, x, name=f"{self.name}_classifier")
