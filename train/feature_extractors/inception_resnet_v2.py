"""Inception-ResNet-v2 (Szegedy et al. 2017), the paper's most accurate extractor.

Built from ``tf_keras.applications.InceptionResNetV2`` (weights=None, Keras layer names; the
residual scaling is tf_keras' registered ``CustomScaleLayer``) and rewritten by
``base.rebuild_application`` with ``align_feature_maps`` (SAME stem and reductions, as the TF OD
API's ``inception_resnet_v2_base(align_feature_maps=True)``: 300 gives 150, 75, 38, 19, 10), our
batch-norm momentum and weight decay:

    stem: 3x3/2, 3x3, 3x3, max pool 3x3/2, 1x1, 3x3, max pool 3x3/2     stride 8
    mixed_5b, block35_1..10   (320)                                     stride 8
    mixed_6a (reduction), block17_1..20  (1088)                         C4 = block17_20_ac, stride 16
    mixed_7a (reduction), block8_1..10 (2080), conv_7b (1x1, 1536)      C5 = conv_7b_ac, stride 32

C4 is slim's "PreAuxLogits", read by the RPN. ``output_stride`` 8 (the zoo's "atrous" model): mixed_6a
gets stride 1 and the block17 convs dilation 2 (16: mixed_7a atrous instead, for R-FCN). The box
classifier is mixed_7a, block8_1..10 and conv_7b on the crops; like the OD API it keeps mixed_7a's
VALID padding there, so the zoo's 17x17 crops (no max pool) give [N, 8, 8, 1536]. SSD pairs C4 with
C5 (19x19 and 10x10 at 300).
"""
import tf_keras as keras

from train.feature_extractors.base import ApplicationExtractor


class InceptionResNetV2(ApplicationExtractor):
    name = "inception_resnet_v2"
    endpoints = {"C4": 16, "C5": 32}
    endpoint_layers = {"C4": "block17_20_ac", "C5": "conv_7b_ac"}
    ssd_endpoints = ("C4", "C5")
    rpn_endpoint = "C4"
    output_strides = (8, 16, 32)
    has_depth_multiplier = False
    align_feature_maps = True
    box_classifier_align = False  # the OD API's VALID Mixed_7a: 17x17 crops -> 8x8

    def _application(self, classes):
        return keras.applications.InceptionResNetV2(input_shape=(224, 224, 3), weights=None,
                                                    include_top=True, classes=classes)
