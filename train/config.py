"""Typed, validated configuration: one YAML file names a whole model and how to train it.

Every section is a dataclass, so a model can also be built from keyword arguments without a
file. Unknown keys and wrong types are errors that name the file and the key path.
"""
from __future__ import annotations

import dataclasses
import os
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
class ModelConfig:
    meta_architecture: str = "ssd"
    num_classes: int = 0  # 0: taken from the dataset at training time
    image_size: int = 300  # SSD: fixed M x M input
    feature_extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    extra_depths: list[int] = field(default_factory=lambda: [512, 256, 256, 128])
    use_depthwise: bool = False  # SSDLite: depthwise-separable extra layers and heads
    head_kernel_size: int = 3
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    box_coder_scales: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])
    loss: LossConfig = field(default_factory=LossConfig)
    post_processing: PostProcessConfig = field(default_factory=PostProcessConfig)


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


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _convert(cls, value, where: str, source: str):
    """Builds dataclass ``cls`` (or a plain typed value) from ``value``, checking keys and types."""
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where or '<root>'}' must be a mapping, got {value!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key '{_join(where, unknown[0])}'; valid keys here: "
                f"{', '.join(sorted(names))}")
        kwargs = {k: _convert(hints[k], v, _join(where, k), source) for k, v in value.items()}
        return cls(**kwargs)
    origin = typing.get_origin(cls)
    if origin is list:
        (item,) = typing.get_args(cls)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{where}' must be a list, got {value!r}")
        return [_convert(item, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if cls is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if cls is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if cls in (str, bool) and isinstance(value, cls):
        return value
    raise ConfigError(f"{source}: '{where}' must be {cls.__name__}, got {value!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def config_from_dict(data: dict, source: str = "<dict>") -> Config:
    return _convert(Config, data or {}, "", source)


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
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return config_from_dict(data, source=path)


def bundled_configs() -> list[str]:
    d = os.path.join(os.path.dirname(__file__), "configs")
    return [f[:-5] for f in os.listdir(d) if f.endswith(".yaml")]


def save_config(config: Config, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
    os.replace(tmp, path)
