"""Feature extractors: backbones that produce named multi-scale feature maps.

``build_extractor("mobilenet_v2", depth_multiplier=0.5)`` -> a FeatureExtractor (see base.py for the
interface); ``ssd_feature_maps`` adds SSD's extra layers on top of a backbone's maps.
"""
from __future__ import annotations

import inspect

from train.feature_extractors.base import FeatureExtractor, kernel_regularizer
from train.feature_extractors.inception_v2 import InceptionV2
from train.feature_extractors.mobilenet_v1 import MobileNetV1
from train.feature_extractors.mobilenet_v2 import MobileNetV2
from train.feature_extractors.ssd_layers import ssd_feature_maps

EXTRACTORS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "inception_v2": InceptionV2,
}


def build_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Instantiates EXTRACTORS[name](**kwargs) (depth_multiplier, batchnorm_momentum, weight_decay)."""
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
           "ssd_feature_maps", "InceptionV2", "MobileNetV1", "MobileNetV2"]
