"""MobileNet v1 (Howard et al. 2017), the paper's fastest feature extractor.

Built from ``tf_keras.applications.MobileNet`` (weights=None) and rewritten by
``base.rebuild_application`` to TF "SAME" padding, our batch-norm momentum and weight decay.
Endpoints follow the TF OD API's SSD-MobileNet-v1: slim's ``Conv2d_11_pointwise`` (stride 16) and
``Conv2d_13_pointwise`` (stride 32), named ``conv_pw_11_relu`` / ``conv_pw_13_relu`` in Keras. For
two-stage models the RPN reads ``conv_pw_11_relu`` and the box classifier is conv_dw_12 .. conv_pw_13
(stride 2, so 14x14 crops become 7x7x1024).
"""
import tf_keras as keras

from train.feature_extractors.base import ApplicationExtractor


class MobileNetV1(ApplicationExtractor):
    name = "mobilenet_v1"
    endpoints = {"C4": 16, "C5": 32}
    endpoint_layers = {"C4": "conv_pw_11_relu", "C5": "conv_pw_13_relu"}
    ssd_endpoints = ("C4", "C5")
    rpn_endpoint = "C4"
    output_strides = (16, 32)  # 16: the last stride-2 block atrous (R-FCN)

    def _application(self, classes):
        return keras.applications.MobileNet(
            input_shape=(224, 224, 3), alpha=self.depth_multiplier, weights=None,
            include_top=True, classes=classes)
