"""ResNet-101 (He et al. 2016), "modified to have an effective output stride of 16" (paper Sec. 3.1).

Built from ``tf_keras.applications.ResNet101`` (weights=None, Keras layer names) and rewritten by
``base.rebuild_application``: ``conv1_pad`` + 7x7/2 conv and ``pool1_pad`` + 3x3/2 max pool become
SAME ones, our batch-norm momentum and weight decay. Keras puts each stage's stride in its first
unit (``convN_block1``: the 1x1 ``_1_conv`` and the shortcut ``_0_conv``):

    conv1 (7x7/2, 64), pool1 (3x3/2)                     stride 4
    conv2_block1..3    bottlenecks -> 256                 stride 4
    conv3_block1..4    -> 512                             stride 8    C3 = conv3_block4_out
    conv4_block1..23   -> 1024                            stride 16   C4 = conv4_block23_out
    conv5_block1..3    -> 2048                            stride 32   C5 = conv5_block3_out

``output_stride`` 16 (the default): conv5_block1 gets stride 1 and conv5's 3x3 convs dilation 2;
8: conv4_block1 too, with dilation 2 in conv4 and 4 in conv5 (32 keeps the native network). The RPN
reads C4 (19x19 at 300 at stride 16, 38x38 at stride 8); the box classifier is conv5 on the crops
with conv5_block1 at stride 1 and no dilation, as the TF OD API's (7x7 max-pooled crops stay 7x7 ->
[N, 7, 7, 2048]). SSD pairs C3 with C5 (38x38 and 19x19 at 300); R-FCN takes C5.

Keras' ImageNet weights expect "caffe" preprocessing (BGR, mean subtracted, no scaling);
``weights.load_weights`` folds it into ``conv1_conv`` so that our [-1, 1] RGB input fits them.
"""
import tf_keras as keras

from train.feature_extractors.base import ApplicationExtractor


class ResNet101(ApplicationExtractor):
    name = "resnet101"
    endpoints = {"C3": 8, "C4": 16, "C5": 32}
    endpoint_layers = {"C3": "conv3_block4_out", "C4": "conv4_block23_out",
                       "C5": "conv5_block3_out"}
    ssd_endpoints = ("C3", "C5")
    rpn_endpoint = "C4"
    output_strides = (8, 16, 32)
    default_output_stride = 16
    has_depth_multiplier = False
    box_classifier_unstrided = ("conv5_block1_0_conv", "conv5_block1_1_conv")
    imagenet_preprocessing = "caffe"  # keras.applications' weights; folded in on loading them
    imagenet_first_conv = "conv1_conv"

    def _application(self, classes):
        return keras.applications.ResNet101(input_shape=(224, 224, 3), weights=None,
                                            include_top=True, classes=classes)
