"""Feature extractors: backbones that produce named multi-scale feature maps.

``build_extractor("resnet101", output_stride=8)`` -> a FeatureExtractor (see base.py for the
interface); ``ssd_feature_maps`` adds SSD's extra layers on top of a backbone's maps. The paper's six:
MobileNet (v1; v2 too), Inception v2, Inception v3, Inception-ResNet-v2, ResNet-101 and VGG-16.
"""
from __future__ import annotations

import inspect

from train.feature_extractors.base import FeatureExtractor, kernel_regularizer
from train.feature_extractors.inception_resnet_v2 import InceptionResNetV2
from train.feature_extractors.inception_v2 import InceptionV2
from train.feature_extractors.inception_v3 import InceptionV3
from train.feature_extractors.mobilenet_v1 import MobileNetV1
from train.feature_extractors.mobilenet_v2 import MobileNetV2
from train.feature_extractors.resnet101 import ResNet101
from train.feature_extractors.ssd_layers import ssd_feature_maps
from train.feature_extractors.vgg16 import VGG16

EXTRACTORS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "inception_v2": InceptionV2,
    "inception_v3": InceptionV3,
    "inception_resnet_v2": InceptionResNetV2,
    "resnet101": ResNet101,
    "vgg16": VGG16,
}


def build_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Instantiates EXTRACTORS[name](**kwargs) (depth_multiplier, batchnorm_momentum, weight_decay,
    output_stride); unknown names and arguments are errors that list the valid ones."""
    if name not in EXTRACTORS:
        raise ValueError(f"train/feature_extractors: unknown feature extractor '{name}'; "
                         f"valid names: {', '.join(sorted(EXTRACTORS))}")
    cls = EXTRACTORS[name]
    params = inspect.signature(cls.__init__).parameters
    for key in kwargs:
        if key not in params or key == "self":
            raise ValueError(f"train/feature_extractors: unknown argument '{key}' for feature "
                             f"extractor '{name}'; valid: "
                             f"{', '.join(p for p in params if p != 'self')}")
    return cls(**kwargs)


__all__ = ["EXTRACTORS", "FeatureExtractor", "build_extractor", "kernel_regularizer",
           "ssd_feature_maps", "InceptionResNetV2", "InceptionV2", "InceptionV3", "MobileNetV1",
           "MobileNetV2", "ResNet101", "VGG16"]
