"""Builds a detector from a :class:`train.config.ModelConfig`."""
from __future__ import annotations

import dataclasses

from train.config import ConfigError, ModelConfig
from train.core.box_coder import FasterRcnnBoxCoder
from train.core.matcher import ArgMaxMatcher
from train.feature_extractors import build_extractor


def build_ssd(config: ModelConfig, num_classes: int):
    from train.meta_architectures.ssd import SSD

    fe = config.feature_extractor
    extractor = build_extractor(fe.name, depth_multiplier=fe.depth_multiplier,
                                batchnorm_momentum=fe.batchnorm_momentum,
                                weight_decay=fe.weight_decay)
    return SSD(extractor=extractor, num_classes=num_classes, image_size=config.image_size,
               extra_depths=config.extra_depths, use_depthwise=config.use_depthwise,
               head_kernel_size=config.head_kernel_size,
               anchor_kwargs=dataclasses.asdict(config.anchors),
               matcher=ArgMaxMatcher(config.matcher.matched_threshold,
                                     config.matcher.unmatched_threshold),
               box_coder=FasterRcnnBoxCoder(tuple(config.box_coder_scales)),
               loss_config=config.loss, post_config=config.post_processing)


META_ARCHITECTURES = {"ssd": build_ssd}


def build_model(config: ModelConfig, num_classes: int | None = None):
    """Returns the detector named by ``config.meta_architecture`` for ``num_classes`` classes."""
    num_classes = num_classes or config.num_classes
    if not num_classes:
        raise ConfigError("model.num_classes is 0 and no dataset gave the number of classes")
    try:
        build = META_ARCHITECTURES[config.meta_architecture]
    except KeyError:
        raise ConfigError(f"unknown model.meta_architecture {config.meta_architecture!r}; "
                          f"available: {', '.join(META_ARCHITECTURES)}") from None
    try:
        return build(config, num_classes)
    except ValueError as e:  # e.g. unknown extractor name or bad extractor argument
        raise ConfigError(f"model: {e}") from None
