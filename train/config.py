"""Typed, validated configuration: one YAML file names a whole model and how to train it.

Every section is a dataclass, so a model can also be built from keyword arguments without a
file. Unknown keys and wrong types are errors that name the file and the key path.
"""
from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import types
import typing
from dataclasses import dataclass, field

import yaml


class ConfigError(ValueError):
    """A configuration file or dictionary is invalid."""


@dataclass
class ExtractorConfig:
    name: str = "mobilenet_v2"
    depth_multiplier: float = 1.0
    batchnorm_momentum: float = 0.997
    weight_decay: float = 4e-5
    output_stride: int | None = None  # 8 / 16 by atrous convolution; None: the extractor's default
    weights: str | None = None  # "imagenet" (Keras' cache) or a .h5 / .weights.h5 file; fresh runs


@dataclass
class AnchorConfig:
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: list[float] = field(default_factory=lambda: [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0])
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True


@dataclass
class MatcherConfig:
    matched_threshold: float = 0.5
    unmatched_threshold: float = 0.5


@dataclass
class LossConfig:
    # "softmax" or "sigmoid" (with hard negative mining) or "focal" (sigmoid focal loss, all anchors)
    classification: str = "softmax"
    hard_negative_ratio: float = 3.0  # SSD: at most 3 negatives per positive; 0 disables mining
    min_negatives: int = 0
    localization_weight: float = 1.0  # alpha in Eq. 1 of the paper
    classification_weight: float = 1.0  # beta in Eq. 1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class PostProcessConfig:
    iou_threshold: float = 0.6
    score_threshold: float = 0.01
    max_detections_per_class: int = 100
    max_total_detections: int = 100


@dataclass
class SSDConfig:
    """``model.ssd``: fixed M x M input, multi-scale anchors, one-shot heads."""
    image_size: int = 300  # fixed M x M input
    extra_depths: list[int] = field(default_factory=lambda: [512, 256, 256, 128])
    use_depthwise: bool = False  # SSDLite: depthwise-separable extra layers and heads
    head_kernel_size: int = 3
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    box_coder_scales: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])
    loss: LossConfig = field(default_factory=LossConfig)
    post_processing: PostProcessConfig = field(default_factory=PostProcessConfig)


@dataclass
class GridAnchorConfig:
    """RPN anchors: ``base_size * scale`` boxes of each aspect ratio, one set per RPN cell."""
    base_size: float = 256.0
    scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])


@dataclass
class FirstStageConfig:
    """The region proposal network (Faster R-CNN and R-FCN)."""
    anchors: GridAnchorConfig = field(default_factory=GridAnchorConfig)
    conv_depth: int = 512  # the RPN's 3x3 conv
    kernel_size: int = 3
    matcher: MatcherConfig = field(default_factory=lambda: MatcherConfig(0.7, 0.3))
    batch_size: int = 256  # anchors sampled per image for the RPN loss
    positive_fraction: float = 0.5
    pre_nms_top_k: int = 6000
    nms_iou_threshold: float = 0.7
    max_proposals: int = 300  # the FIXED number of proposals (padded), training and inference
    localization_weight: float = 2.0
    objectness_weight: float = 1.0


@dataclass
class SecondStageConfig:
    """The per-proposal box classifier."""
    batch_size: int = 64  # proposals sampled per image for the second-stage loss
    positive_fraction: float = 0.25
    matcher: MatcherConfig = field(default_factory=lambda: MatcherConfig(0.5, 0.5))
    add_groundtruth_to_proposals: bool = True  # training only: gt boxes join the candidates
    localization_weight: float = 2.0
    classification_weight: float = 1.0
    # smooth_l1 | smooth_l1+iou: the latter adds 1 - IoU of the decoded box and its target
    # (one of the paper's ensemble members, Sec. 4.2)
    localization_loss: str = "smooth_l1"
    box_coder_scales: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])
    post_processing: PostProcessConfig = field(
        default_factory=lambda: PostProcessConfig(score_threshold=0.0))


@dataclass
class TwoStageConfig:
    """What ``model.faster_rcnn`` and ``model.rfcn`` share: shorter edge M (longer edge at most
    ``max_image_size``), padded to a ``max_image_size`` square; the RPN; the box classifier's
    training and post-processing."""
    image_size: int = 600  # shorter edge M
    max_image_size: int = 1024  # longer-edge cap = the padded input's side
    first_stage: FirstStageConfig = field(default_factory=FirstStageConfig)
    second_stage: SecondStageConfig = field(default_factory=SecondStageConfig)


@dataclass
class FasterRcnnConfig(TwoStageConfig):
    """``model.faster_rcnn``: crops of the RPN map go through the extractor's remaining layers."""
    crop_size: int = 14  # crop_and_resize output, then a 2x2 max-pool
    maxpool_kernel_size: int = 2


@dataclass
class RfcnConfig(TwoStageConfig):
    """``model.rfcn``: the whole extractor at the RPN's stride, position-sensitive score maps."""
    depth: int = 1024  # 1x1 conv before the position-sensitive maps
    num_bins: int = 3  # k x k position-sensitive bins
    crop_size: int = 9  # samples per box side (crop_size / num_bins per bin)


SECTIONS = {"ssd": SSDConfig, "faster_rcnn": FasterRcnnConfig, "rfcn": RfcnConfig}


@dataclass
class ModelConfig:
    """``model``: the meta-architecture, the extractor, and ONE section with the
    meta-architecture's own settings (``model.ssd`` / ``model.faster_rcnn`` / ``model.rfcn``)."""
    meta_architecture: str = "ssd"
    num_classes: int = 0  # 0: taken from the dataset at training time
    feature_extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    ssd: SSDConfig | None = None
    faster_rcnn: FasterRcnnConfig | None = None
    rfcn: RfcnConfig | None = None

    def __post_init__(self):
        if self.meta_architecture in SECTIONS and getattr(self, self.meta_architecture) is None:
            setattr(self, self.meta_architecture, SECTIONS[self.meta_architecture]())

    @property
    def section(self):
        """The active meta-architecture's section (e.g. ``model.faster_rcnn``)."""
        return getattr(self, self.meta_architecture)


@dataclass
class OptimizerConfig:
    name: str = "rmsprop"  # rmsprop | momentum | adam
    learning_rate: float = 0.004
    momentum: float = 0.9
    warmup_steps: int = 100
    warmup_start_factor: float = 0.1
    schedule: str = "cosine"  # cosine | constant
    final_factor: float = 0.02  # cosine decays to learning_rate * final_factor
    clip_norm: float = 10.0


@dataclass
class AugmentConfig:
    horizontal_flip: bool = True
    random_crop: bool = True
    random_crop_probability: float = 1.0
    color: bool = True


@dataclass
class TrainConfig:
    batch_size: int = 32
    steps: int = 10000
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 20
    seed: int = 0
    # Images are decoded once and kept in memory (resized so the longer side is cache_size);
    # larger datasets are streamed from disk. 0 = image_size.
    cache_size: int = 0
    max_cache_gb: float = 6.0
    # Two-stage models get each image's ground truth padded to this many boxes; images with
    # more keep the largest ones (counted in train_log.json's "skipped").
    max_boxes_per_image: int = 100
    # Start from another model's weights (TF OD API fine_tune_checkpoint): a run or zoo
    # directory, a checkpoint prefix, or a Keras weights file (.h5 / .weights.h5).
    init_from: str = ""
    init_scope: str = "backbone"  # backbone | all
    # auto: mixed_float16 on a GPU (float16 compute, float32 weights, loss scaled), else
    # float32 (a CPU has no float16 speed-up)
    precision: str = "auto"  # auto | float32 | mixed_float16
    jit_compile: bool = False  # XLA for the forward and backward pass (GPU; ~30x slower on CPU)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for name in SECTIONS:  # only the active meta-architecture's section
            if data["model"][name] is None:
                del data["model"][name]
        return data


def _convert(cls, value, where: str, source: str):
    """Builds dataclass ``cls`` (or a plain typed value) from ``value``, checking keys and types."""
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where or '<root>'}' must be a mapping, got {_short(value)}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names, key=str)  # YAML keys may be numbers, null ...
        if unknown:
            raise ConfigError(
                f"{source}: unknown key '{_join(where, _key(unknown[0]))}'; valid keys here: "
                f"{', '.join(sorted(names))}")
        kwargs = {k: _convert(hints[k], v, _join(where, k), source) for k, v in value.items()}
        return cls(**kwargs)
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):  # "X | None": an optional section
        (inner,) = [a for a in typing.get_args(cls) if a is not type(None)]
        return None if value is None else _convert(inner, value, where, source)
    if origin is list:
        (item,) = typing.get_args(cls)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{where}' must be a list, got {_short(value)}")
        return [_convert(item, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if cls is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{source}: '{where}' must be a finite number, got {value!r}")
        return float(value)
    if cls is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if cls in (str, bool) and isinstance(value, cls):
        return value
    raise ConfigError(f"{source}: '{where}' must be {cls.__name__}, got {_short(value)}")


def _short(value) -> str:  # a whole mapping pasted in the wrong place stays one short line
    return reprlib.repr(value)


def _key(key) -> str:  # a key with a newline (or not a string) shown as its repr
    return key if isinstance(key, str) and key.isprintable() else _short(key)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _resolve_sections(model: dict, source: str) -> tuple[dict, SSDConfig | None]:
    """Checks ``model``'s meta-architecture sections; an old flat SSD layout (SSD keys directly
    under ``model``, as written before the sections existed) is returned apart, converted
    (its errors name the keys as written, e.g. ``model.anchors.min_scale``)."""
    model = dict(model)
    legacy = [k for k in model if k in {f.name for f in dataclasses.fields(SSDConfig)}]
    given = [k for k in SECTIONS if k in model]
    arch = model.get("meta_architecture")
    if arch is not None and (not isinstance(arch, str) or arch not in SECTIONS):
        raise ConfigError(f"{source}: unknown 'model.meta_architecture' {_short(arch)}; valid: "
                          f"{', '.join(SECTIONS)}")
    if legacy:
        if given or (arch not in (None, "ssd")):
            where = f"model.{given[0]}" if given else f"model.meta_architecture={arch!r}"
            raise ConfigError(f"{source}: 'model.{legacy[0]}' is an SSD setting: put it under "
                              f"'model.ssd' (it cannot be mixed with {where})")
        flat = _convert(SSDConfig, {k: model.pop(k) for k in legacy}, "model", source)
        model["meta_architecture"] = "ssd"
        return model, flat
    if len(given) > 1:
        raise ConfigError(f"{source}: 'model.{given[0]}' and 'model.{given[1]}' are sections of "
                          "two meta-architectures; a config describes one model: keep one")
    if arch is None:
        model["meta_architecture"] = given[0] if given else "ssd"
    elif given and given[0] != arch:
        raise ConfigError(f"{source}: 'model.{given[0]}' given but 'model.meta_architecture' is "
                          f"{arch!r}; rename the section to 'model.{arch}' or change the "
                          "meta-architecture")
    return model, None


def config_from_dict(data: dict, source: str = "<dict>") -> Config:
    if data is None:  # an empty file: all defaults
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping, got {_short(data)}")
    data, flat_ssd = dict(data), None
    if isinstance(data.get("model"), dict):
        data["model"], flat_ssd = _resolve_sections(data["model"], source)
    config = _convert(Config, data, "", source)
    if flat_ssd is not None:
        config.model.ssd = flat_ssd
    _check_values(config, source)
    return config


# ranges by field name, in every section (a list's items are checked like the list's field)
_AT_LEAST_ONE = {"batch_size", "checkpoint_every", "keep_checkpoints", "log_every", "image_size",
                 "max_image_size", "extra_depths", "head_kernel_size", "conv_depth",
                 "kernel_size", "pre_nms_top_k", "max_detections_per_class",
                 "max_total_detections", "crop_size", "maxpool_kernel_size", "depth",
                 "num_bins", "max_boxes_per_image"}
_POSITIVE = {"learning_rate", "depth_multiplier", "min_scale", "max_scale", "aspect_ratios",
             "interpolated_scale_aspect_ratio", "box_coder_scales", "base_size", "scales"}
_UNIT = {"batchnorm_momentum", "matched_threshold", "unmatched_threshold", "focal_alpha",
         "iou_threshold", "score_threshold", "nms_iou_threshold", "positive_fraction",
         "momentum", "warmup_start_factor", "final_factor", "random_crop_probability"}
_NON_NEGATIVE = {"num_classes", "weight_decay", "hard_negative_ratio", "min_negatives",
                 "localization_weight", "classification_weight", "objectness_weight",
                 "focal_gamma", "steps", "warmup_steps", "clip_norm", "cache_size",
                 "max_cache_gb"}
_RULES = {**dict.fromkeys(_AT_LEAST_ONE, (lambda v: v >= 1, "must be >= 1")),
          **dict.fromkeys(_POSITIVE, (lambda v: v > 0, "must be > 0")),
          **dict.fromkeys(_UNIT, (lambda v: 0 <= v <= 1, "must be in [0, 1]")),
          **dict.fromkeys(_NON_NEGATIVE, (lambda v: v >= 0, "must be >= 0"))}


LOCALIZATION_LOSSES = ("smooth_l1", "smooth_l1+iou")


def _check_ranges(obj, where: str, source: str) -> None:
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), _join(where, f.name)
        if dataclasses.is_dataclass(value):
            _check_ranges(value, key, source)
            continue
        if f.name not in _RULES or value is None:
            continue
        test, rule = _RULES[f.name]
        for v in value if isinstance(value, list) else [value]:
            if not test(v):
                raise ConfigError(f"{source}: '{key}' {rule}, got {v!r}")


def _check_values(config: Config, source: str) -> None:
    """Value checks that types cannot express, each naming its key."""
    _check_ranges(config, "", source)
    m, t = config.model, config.train
    if t.init_scope not in ("backbone", "all"):
        raise ConfigError(f"{source}: 'train.init_scope' must be 'backbone' or 'all', got "
                          f"{t.init_scope!r}")
    if t.precision not in ("auto", "float32", "mixed_float16"):
        raise ConfigError(f"{source}: 'train.precision' must be auto, float32 or mixed_float16, "
                          f"got {t.precision!r}")
    if m.meta_architecture == "ssd":
        return
    arch, key = m.section, f"model.{m.meta_architecture}"
    fs = arch.first_stage
    if not 1 <= fs.max_proposals <= fs.pre_nms_top_k:
        raise ConfigError(f"{source}: '{key}.first_stage.max_proposals' must be in 1.."
                          f"{key}.first_stage.pre_nms_top_k ({fs.pre_nms_top_k}), got "
                          f"{fs.max_proposals}")
    if arch.second_stage.localization_loss not in LOCALIZATION_LOSSES:
        raise ConfigError(f"{source}: '{key}.second_stage.localization_loss' must be one of "
                          f"{', '.join(LOCALIZATION_LOSSES)}, got "
                          f"{arch.second_stage.localization_loss!r}")
    if arch.image_size > arch.max_image_size:
        raise ConfigError(f"{source}: '{key}.image_size' ({arch.image_size}, the shorter edge) "
                          f"exceeds '{key}.max_image_size' ({arch.max_image_size})")


def load_config(path: str | os.PathLike) -> Config:
    """Reads a YAML config; a name without a path is looked up in ``train/configs/``."""
    path = str(path)
    if not os.path.exists(path):
        bundled = os.path.join(os.path.dirname(__file__), "configs", os.path.basename(path))
        for candidate in (bundled, bundled + ".yaml"):
            if os.path.exists(candidate):
                path = candidate
                break
        else:
            raise ConfigError(f"{path}: config file not found (bundled configs: "
                              f"{', '.join(sorted(bundled_configs()))})")
    try:
        with open(path, "rb") as f:  # bytes: YAML finds the encoding, a bad byte is a YAMLError
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    return config_from_dict(data, source=path)


def bundled_configs() -> list[str]:
    d = os.path.join(os.path.dirname(__file__), "configs")
    return [f[:-5] for f in os.listdir(d) if f.endswith(".yaml")]


def save_config(config: Config, path: str) -> None:
    from edge_runtime.files import write_text

    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
