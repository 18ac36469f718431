"""Shared test fixtures' building blocks: a tiny generated dataset and a tiny SSD config."""
from __future__ import annotations

import os

from train.config import config_from_dict


def tiny_config(**train_overrides) -> "train.config.Config":
    """A small, fast SSD (MobileNet v1 x0.25, 128 px) that can overfit a few images in seconds."""
    train = {"batch_size": 8, "steps": 200, "checkpoint_every": 50, "log_every": 10,
             "optimizer": {"name": "adam", "learning_rate": 0.003, "warmup_steps": 10},
             "augment": {"horizontal_flip": False, "random_crop": False, "color": False}}
    train.update(train_overrides)
    return config_from_dict({
        "model": {"image_size": 128, "extra_depths": [64, 64],
                  "feature_extractor": {"name": "mobilenet_v1", "depth_multiplier": 0.25,
                                        "batchnorm_momentum": 0.9},
                  "use_depthwise": True,
                  "anchors": {"min_scale": 0.15, "max_scale": 0.9},
                  "matcher": {"matched_threshold": 0.5, "unmatched_threshold": 0.4},
                  "loss": {"classification": "focal"}},
        "train": train})


def make_dataset(root: str, train: int = 8, val: int = 4, seed: int = 0) -> str:
    from train.data.generate import generate

    if not os.path.exists(os.path.join(root, "annotations", "instances_train.json")):
        generate(root, "tiny", seed=seed, workers=1, progress=False, _counts=(train, val))
    return root
