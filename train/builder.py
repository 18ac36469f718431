"""Builds a detector from a :class:`train.config.ModelConfig`.

The config is only read here: every piece is made from plain keyword values, so any detector
can also be built in code without a config.
"""
from __future__ import annotations

import dataclasses

from train.config import ConfigError, ModelConfig
from train.core.box_coder import FasterRcnnBoxCoder
from train.core.image_resizer import KeepAspectRatioResizer
from train.core.matcher import ArgMaxMatcher
from train.core.proposal_sampler import ProposalSampler
from train.feature_extractors import build_extractor


def _extractor(config: ModelConfig):
    fe = config.feature_extractor
    kwargs = {} if fe.output_stride is None else {"output_stride": fe.output_stride}
    return build_extractor(fe.name, depth_multiplier=fe.depth_multiplier,
                           batchnorm_momentum=fe.batchnorm_momentum, weight_decay=fe.weight_decay,
                           **kwargs)


def build_ssd(config: ModelConfig, num_classes: int):
    from train.meta_architectures.ssd import SSD

    c = config.ssd
    return SSD(extractor=_extractor(config), num_classes=num_classes, image_size=c.image_size,
               extra_depths=c.extra_depths, use_depthwise=c.use_depthwise,
               head_kernel_size=c.head_kernel_size,
               anchor_kwargs=dataclasses.asdict(c.anchors),
               matcher=ArgMaxMatcher(c.matcher.matched_threshold, c.matcher.unmatched_threshold),
               box_coder=FasterRcnnBoxCoder(tuple(c.box_coder_scales)),
               loss_config=c.loss, post_config=c.post_processing)


def _two_stage_parts(config: ModelConfig, extractor) -> dict:
    """The pieces Faster R-CNN and R-FCN share, from ``model.faster_rcnn`` / ``model.rfcn``."""
    from train.meta_architectures.rpn import RegionProposalNetwork

    c = config.section
    fs, ss = c.first_stage, c.second_stage
    resizer = KeepAspectRatioResizer(c.image_size, c.max_image_size)
    rpn = RegionProposalNetwork(
        image_shape=resizer.output_shape, stride=extractor.stride(extractor.rpn_endpoint),
        base_size=fs.anchors.base_size, scales=fs.anchors.scales,
        aspect_ratios=fs.anchors.aspect_ratios, conv_depth=fs.conv_depth,
        kernel_size=fs.kernel_size, matched_threshold=fs.matcher.matched_threshold,
        unmatched_threshold=fs.matcher.unmatched_threshold, batch_size=fs.batch_size,
        positive_fraction=fs.positive_fraction, pre_nms_top_k=fs.pre_nms_top_k,
        max_proposals=fs.max_proposals, nms_iou_threshold=fs.nms_iou_threshold,
        localization_weight=fs.localization_weight, objectness_weight=fs.objectness_weight)
    coder = FasterRcnnBoxCoder(tuple(ss.box_coder_scales))
    sampler = ProposalSampler(
        batch_size=ss.batch_size, positive_fraction=ss.positive_fraction,
        matched_threshold=ss.matcher.matched_threshold,
        unmatched_threshold=ss.matcher.unmatched_threshold,
        add_groundtruth=ss.add_groundtruth_to_proposals, box_coder=coder)
    pp = ss.post_processing
    return {"image_resizer": resizer, "rpn": rpn, "proposal_sampler": sampler,
            "box_coder": coder, "localization_weight": ss.localization_weight,
            "classification_weight": ss.classification_weight,
            "localization_loss": ss.localization_loss, "iou_threshold": pp.iou_threshold,
            "score_threshold": pp.score_threshold,
            "max_detections_per_class": pp.max_detections_per_class,
            "max_total_detections": pp.max_total_detections}


def build_faster_rcnn(config: ModelConfig, num_classes: int):
    from train.meta_architectures.faster_rcnn import FasterRCNN

    extractor = _extractor(config)
    c = config.faster_rcnn
    return FasterRCNN(extractor=extractor, num_classes=num_classes, crop_size=c.crop_size,
                      maxpool_kernel_size=c.maxpool_kernel_size,
                      **_two_stage_parts(config, extractor))


def build_rfcn(config: ModelConfig, num_classes: int):
    from train.meta_architectures.rfcn import RFCN

    extractor = _extractor(config)
    c = config.rfcn
    return RFCN(extractor=extractor, num_classes=num_classes, depth=c.depth,
                num_bins=c.num_bins, crop_size=c.crop_size, **_two_stage_parts(config, extractor))


META_ARCHITECTURES = {"ssd": build_ssd, "faster_rcnn": build_faster_rcnn, "rfcn": build_rfcn}


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
    if config.section is None:
        raise ConfigError(f"model.{config.meta_architecture}: section missing")
    try:
        return build(config, num_classes)
    except ValueError as e:  # e.g. unknown extractor name or bad extractor argument
        raise ConfigError(f"model: {e}") from None
