"""VGG-16 (Simonyan & Zisserman 2015), the paper's (and Faster R-CNN's original) heaviest extractor.

Built from ``tf_keras.applications.VGG16`` (weights=None, Keras layer names) and rewritten by
``base.rebuild_application`` with ``align_feature_maps`` (SAME 2x2/2 pools, so 300 -> 150, 75, 38,
19), our batch-norm momentum (VGG has none) and weight decay:

    block1_conv1..2  64                 block1_pool  stride 2
    block2_conv1..2  128                block2_pool  stride 4
    block3_conv1..3  256                block3_pool  stride 8
    block4_conv1..3  512  (conv4_3)     block4_pool  stride 16    C3 = block4_conv3, stride 8
    block5_conv1..3  512  (conv5_3)                               C4 = block5_conv3, stride 16
    block5_pool, flatten, fc1 (fc6, 4096), fc2 (fc7, 4096), predictions

The RPN reads conv5_3; the box classifier is block5_pool, fc6 and fc7 on 14x14 crops (7x7 after
block5_pool, the 25,088 inputs of fc6) -> [N, 4096], as in Faster R-CNN's paper. SSD pairs conv4_3
(38x38 at 300) with conv5_3 (19x19); R-FCN uses conv5_3 as its last map. The top map is at stride
16 natively, so ``output_stride`` can only be 16.

Keras' ImageNet weights expect "caffe" preprocessing (BGR, mean subtracted, no scaling);
``weights.load_weights`` folds it into ``block1_conv1`` so that our [-1, 1] RGB input fits them.
"""
import tf_keras as keras

from train.feature_extractors.base import ApplicationExtractor


class VGG16(ApplicationExtractor):
    name = "vgg16"
    endpoints = {"C3": 8, "C4": 16}
    endpoint_layers = {"C3": "block4_conv3", "C4": "block5_conv3"}
    ssd_endpoints = ("C3", "C4")
    rpn_endpoint = "C4"
    output_strides = (16,)
    has_depth_multiplier = False
    align_feature_maps = True
    box_classifier_output = "fc2"
    crop_shape = (14, 14, 512)
    imagenet_preprocessing = "caffe"  # keras.applications' weights; folded in on loading them
    imagenet_first_conv = "block1_conv1"

    def _application(self, classes):
        return keras.applications.VGG16(input_shape=(224, 224, 3), weights=None,
                                        include_top=True, classes=classes)

    def box_classifier(self, input_shape, input_stride=None):
        """Crops ``[N, 14, 14, 512]`` of conv5_3 -> block5_pool, fc6, fc7 -> ``[N, 4096]``."""
        if tuple(input_shape) != self.crop_shape or input_stride is not None:
            raise ValueError(f"train/feature_extractors ({self.name}): the box classifier (fc6, "
                             f"fc7) takes 14x14x512 crops of conv5_3 (fc6 has 7 * 7 * 512 "
                             f"inputs after block5_pool), got {tuple(input_shape)}"
                             + (f" at input_stride {input_stride}" if input_stride else "")
                             + "; with Faster R-CNN use crop_size 14, maxpool_kernel_size 1")
        return super().box_classifier(input_shape)
