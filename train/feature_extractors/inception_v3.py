"""Inception v3 (Szegedy et al. 2016) as in the paper's Faster R-CNN / SSD grid.

Built from ``tf_keras.applications.InceptionV3`` (weights=None, Keras layer names: the branch
convs are Keras' automatic ``conv2d_N``) and rewritten by ``base.rebuild_application`` with
``align_feature_maps`` (every VALID conv / pool becomes SAME, so 300 gives 150, 75, 38, 19, 10), our
batch-norm momentum and weight decay. Keras names the modules ``mixedN``:

    stem: 3x3/2, 3x3, 3x3, max pool 3x3/2, 1x1, 3x3, max pool 3x3/2     stride 8
    mixed0..2   = slim Mixed_5b..5d  (35x35 modules at 299)             stride 8
    mixed3      = Mixed_6a (reduction)                                  stride 16
    mixed4..7   = Mixed_6b..6e  (768)                                   C4 = mixed7, stride 16
    mixed8      = Mixed_7a (reduction)                                  stride 32
    mixed9, 10  = Mixed_7b, 7c  (2048)                                  C5 = mixed10, stride 32

The RPN reads Mixed_6e; the box classifier is Mixed_7a..7c on the crops (SAME: 14x14 -> 7x7, 7x7 ->
4x4; [N, h, w, 2048]). SSD pairs Mixed_6e with Mixed_7c (19x19 and 10x10 at 300). ``output_stride``
16 makes Mixed_7a atrous (Mixed_7c at stride 16, for R-FCN).
"""
import tf_keras as keras

from train.feature_extractors.base import ApplicationExtractor


class InceptionV3(ApplicationExtractor):
    name = "inception_v3"
    endpoints = {"C4": 16, "C5": 32}
    endpoint_layers = {"C4": "mixed7", "C5": "mixed10"}
    ssd_endpoints = ("C4", "C5")
    rpn_endpoint = "C4"
    output_strides = (16, 32)
    has_depth_multiplier = False
    align_feature_maps = True

    def _application(self, classes):
        return keras.applications.InceptionV3(input_shape=(224, 224, 3), weights=None,
                                              include_top=True, classes=classes)
