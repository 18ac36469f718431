"""Learning-rate schedule: linear warm-up, then cosine decay (or constant).

A ``LearningRateSchedule`` is evaluated from ``optimizer.iterations``, which is checkpointed, so
a resumed run continues on exactly the same curve.
"""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0,
                 warmup_start_factor: float = 0.1, final_factor: float = 0.0,
                 schedule: str = "cosine"):
        if schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown learning-rate schedule {schedule!r} (cosine | constant)")
        self.base_lr, self.total_steps = float(base_lr), int(total_steps)
        self.warmup_steps, self.warmup_start_factor = int(warmup_steps), float(warmup_start_factor)
        self.final_factor, self.schedule = float(final_factor), schedule

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup_steps, 1))
        warm_factor = self.warmup_start_factor + (1 - self.warmup_start_factor) * step / warm
        if self.schedule == "constant":
            decay = tf.constant(1.0)
        else:
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
            decay = self.final_factor + (1 - self.final_factor) * cosine
        return self.base_lr * tf.where(step < self.warmup_steps, warm_factor, decay)

    def get_config(self):
        return dict(base_lr=self.base_lr, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, warmup_start_factor=self.warmup_start_factor,
                    final_factor=self.final_factor, schedule=self.schedule)


def build_schedule(cfg, total_steps: int) -> WarmupCosine:
    """cfg: train.config.OptimizerConfig."""
    return WarmupCosine(cfg.learning_rate, total_steps, cfg.warmup_steps, cfg.warmup_start_factor,
                        cfg.final_factor, cfg.schedule)


def build_optimizer(cfg, lr: WarmupCosine):
    """cfg: train.config.OptimizerConfig; lr: the schedule from :func:`build_schedule`."""
    if cfg.name == "rmsprop":  # the paper's SSD optimizer
        return keras.optimizers.RMSprop(lr, rho=0.9, momentum=cfg.momentum, epsilon=1.0)
    if cfg.name == "momentum":  # the paper's Faster R-CNN / R-FCN optimizer
        return keras.optimizers.SGD(lr, momentum=cfg.momentum)
    if cfg.name == "adam":
        return keras.optimizers.Adam(lr)
    raise ValueError(f"unknown optimizer {cfg.name!r} (rmsprop | momentum | adam)")
