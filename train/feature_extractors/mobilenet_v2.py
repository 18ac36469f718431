"""MobileNet v2 (Sandler et al. 2018), the TF OD API's SSD / SSDLite mobile extractor.

Built from ``tf_keras.applications.MobileNetV2`` (weights=None) and rewritten by
``base.rebuild_application`` to TF "SAME" padding, our batch-norm momentum and weight decay.
Endpoints follow the TF OD API's SSD-MobileNet-v2: ``layer_15/expansion_output`` (stride 16, the
576-channel expansion of the last stride-16 block, Keras ``block_13_expand_relu``) and ``layer_19``
(stride 32, the final 1280-channel 1x1 conv, Keras ``out_relu``). For two-stage models the RPN reads
``block_13_expand_relu`` and the box classifier is the rest: block 13's strided depthwise and
projection, blocks 14-16 and Conv_1.
"""
import tf_keras as keras

from train.feature_extractors.base import ApplicationExtractor


class MobileNetV2(ApplicationExtractor):
    name = "mobilenet_v2"
    endpoints = {"C4": 16, "C5": 32}
    endpoint_layers = {"C4": "block_13_expand_relu", "C5": "out_relu"}
    ssd_endpoints = ("C4", "C5")
    rpn_endpoint = "C4"
    output_strides = (16, 32)  # 16: the last stride-2 block atrous (R-FCN)

    def _application(self, classes):
        return keras.applications.MobileNetV2(
            input_shape=(224, 224, 3), alpha=self.depth_multiplier, weights=None,
            include_top=True, classes=classes)
