"""``python -m train fit``: trains a detector with tf.distribute, checkpoints, resumes.

Run directory layout (the contract with ``evaluate``, ``convert`` and ``benchmarks``)::

    runs/NAME/config.yaml        the resolved config (num_classes filled in)
    runs/NAME/labels.json        {"category_ids": [...], "category_names": [...]}; label k <-> [k-1]
    runs/NAME/checkpoints/       tf.train.Checkpoint files (model, optimizer, step)
    runs/NAME/logs/              TensorBoard summaries
    runs/NAME/train_log.json     steps done, losses, images/s, wall time, machine
"""
from __future__ import annotations

import json
import logging
import os
import platform
import signal
import time

import tensorflow as tf

from edge_runtime.files import write_json
from train.builder import build_model
from train.config import Config, save_config
from train.data import load_dataset
from train.data.pipeline import cache_images, train_dataset
from train.schedules import build_optimizer, build_schedule

log = logging.getLogger(__name__)


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every local GPU; without GPUs, every logical CPU device
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    raise ValueError(f"unknown strategy {name!r} (default | mirrored)")


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop after the current step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _checkpoints_on_disk(directory: str) -> list:
    """Prefixes of the ckpt-N checkpoints in `directory` that have an index, newest first."""
    if not tf.io.gfile.isdir(directory):
        return []
    steps = []
    for name in tf.io.gfile.listdir(directory):
        stem = name[:-len(".index")] if name.endswith(".index") else ""
        if stem.startswith("ckpt-") and stem[5:].isdigit():
            steps.append(int(stem[5:]))
    return [os.path.join(directory, f"ckpt-{n}") for n in sorted(steps, reverse=True)]


class Trainer:
    """Owns the model, optimizer, checkpoint manager and the distributed training step."""

    def __init__(self, config: Config, num_classes: int, out_dir: str, strategy=None):
        self.config, self.out_dir = config, out_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        tc = config.train
        with self.strategy.scope():
            self.model = build_model(config.model, num_classes)
            self.schedule = build_schedule(tc.optimizer, tc.steps)
            self.optimizer = build_optimizer(tc.optimizer, self.schedule)
            self.checkpoint = self.model.checkpoint(optimizer=self.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(out_dir, "checkpoints"), max_to_keep=tc.keep_checkpoints)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> int:
        """Restores the newest readable checkpoint, if any; returns the step it was taken at.

        A SIGKILL between writing ckpt-N and updating the state file leaves a complete ckpt-N that
        the manager does not list, so the directory is scanned too; a checkpoint that fails to
        read (killed mid-write) is skipped with a warning for the one before it.
        """
        directory = self.manager.directory
        for prefix in _checkpoints_on_disk(directory):
            try:
                self.checkpoint.restore(prefix).expect_partial()
            except (tf.errors.OpError, ValueError) as e:
                log.warning("skipping unreadable checkpoint %s: %s", prefix, str(e).splitlines()[0])
                continue
            if prefix != self.manager.latest_checkpoint:  # let the manager track and rotate it
                paths = [p for p in self.manager.checkpoints if p != prefix] + [prefix]
                tf.compat.v1.train.update_checkpoint_state(directory, prefix, paths)
                self.manager = tf.train.CheckpointManager(
                    self.checkpoint, directory, max_to_keep=self.config.train.keep_checkpoints)
            log.info("resumed from %s (step %d)", prefix, self.step)
            break
        return self.step

    def save(self) -> str:
        return self.manager.save(checkpoint_number=self.step)

    def _step_fn(self, images, targets):
        model, replicas = self.model, self.strategy.num_replicas_in_sync
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            predictions = model.predict(images, targets.get("windows"), targets, training=True)
            losses = model.loss(predictions, targets)
            losses["regularization"] = model.regularization_loss()
            losses["total"] = losses["total"] + losses["regularization"]
            scaled = losses["total"] / replicas  # gradients are summed over replicas
        grads = tape.gradient(scaled, variables)
        clip = self.config.train.optimizer.clip_norm
        if clip:
            grads, _ = tf.clip_by_global_norm(grads, clip)
        self.optimizer.apply_gradients(zip(grads, variables))
        return losses

    @tf.function
    def train_step(self, iterator):
        images, targets = next(iterator)
        per_replica = self.strategy.run(self._step_fn, args=(images, targets))
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
            "devices": [d.name for d in tf.config.list_logical_devices()]}


def fit(config: Config, data: str, out_dir: str, strategy: str = "default",
        progress: bool = True) -> dict:
    """Trains ``config`` on ``data`` (train split) into ``out_dir``; resumes if it has checkpoints.

    A fresh run (step 0) first loads ``model.feature_extractor.weights`` (``imagenet`` | a
    weights file; summary in ``weights.json``), then ``train.init_from`` (``init_from.json``),
    so init_from overrides what both set. A resumed run reloads neither."""
    from tqdm import tqdm

    tc = config.train
    os.makedirs(out_dir, exist_ok=True)
    dataset = load_dataset(data, "train")
    labels_path = os.path.join(out_dir, "labels.json")
    labels = {"category_ids": dataset.category_ids, "category_names": dataset.category_names}
    if os.path.exists(labels_path):
        with open(labels_path) as f:
            previous = json.load(f)
        if previous["category_ids"] != labels["category_ids"]:
            raise ValueError(f"{out_dir} was trained on other categories ({labels_path}); "
                             f"use a new --out for this dataset")
    config.model.num_classes = dataset.num_classes
    save_config(config, os.path.join(out_dir, "config.yaml"))
    write_json(labels_path, labels)

    tf.random.set_seed(tc.seed)
    trainer = Trainer(config, dataset.num_classes, out_dir, make_strategy(strategy))
    start = trainer.restore()
    weights = config.model.feature_extractor.weights
    if start == 0 and weights:  # ImageNet (or a file) into the backbone; resumed runs keep theirs
        from train.feature_extractors.weights import load_weights
        write_json(os.path.join(out_dir, "weights.json"), load_weights(trainer.model, weights))
    if start == 0 and tc.init_from:  # a resumed run keeps its own weights
        from train.init_from import initialize_from
        write_json(os.path.join(out_dir, "init_from.json"),
                   initialize_from(trainer.model, tc.init_from, tc.init_scope))
    if start >= tc.steps:
        print(f"{out_dir}: already trained for {start}/{tc.steps} steps; nothing to do")
        return {"steps": start}

    cache = cache_images(dataset, trainer.model.image_resizer, tc.max_cache_gb,
                         progress=progress, square_size=tc.cache_size,
                         max_boxes=tc.max_boxes_per_image)
    ds = train_dataset(cache, trainer.model, batch_size=tc.batch_size,
                       augment_config=tc.augment, seed=tc.seed, start_step=start)
    iterator = iter(trainer.strategy.experimental_distribute_dataset(ds))
    writer = tf.summary.create_file_writer(os.path.join(out_dir, "logs"))

    log_path = os.path.join(out_dir, "train_log.json")
    history = []
    if start and os.path.exists(log_path):  # keep the curve of earlier invocations
        with open(log_path) as f:
            history = [h for h in json.load(f).get("history", []) if h["step"] <= start]
    t0, last_saved = time.time(), start
    bar = tqdm(total=tc.steps, initial=start, desc="training", unit="step", dynamic_ncols=True,
               disable=not progress)
    window_t, window_steps = time.time(), 0
    stopped_by_signal = False
    with _StopFlag() as stop, writer.as_default():
        while trainer.step < tc.steps:
            losses = trainer.train_step(iterator)
            step = trainer.step
            window_steps += 1
            bar.update(1)
            if step % tc.log_every == 0 or step == tc.steps:
                values = {k: float(v) for k, v in losses.items()}
                ips = window_steps * tc.batch_size / max(time.time() - window_t, 1e-9)
                window_t, window_steps = time.time(), 0
                lr = float(trainer.schedule(step))
                bar.set_postfix(loss=f"{values['total']:.3f}", img_s=f"{ips:.1f}", lr=f"{lr:.2g}")
                for k, v in values.items():
                    tf.summary.scalar(f"loss/{k}", v, step=step)
                tf.summary.scalar("learning_rate", lr, step=step)
                tf.summary.scalar("images_per_second", ips, step=step)
                history.append({"step": step, **values, "images_per_second": ips, "lr": lr})
            if step % tc.checkpoint_every == 0:
                trainer.save()
                last_saved = step
            if stop.requested:
                stopped_by_signal = True
                break
    bar.close()
    if trainer.step != last_saved:
        trainer.save()
    wall = time.time() - t0
    done = trainer.step - start
    summary = {"steps": trainer.step, "steps_this_run": done, "wall_seconds": wall,
               "images_per_second": done * tc.batch_size / max(wall, 1e-9),
               "batch_size": tc.batch_size, "num_train_images": len(cache),
               "skipped": dict(dataset.warnings) | dict(cache.skipped),
               "interrupted": stopped_by_signal, "machine": _machine(), "history": history}
    write_json(log_path, summary)
    if stopped_by_signal:
        print(f"stopped at step {trainer.step}; checkpoint saved, run the same command to resume")
    return summary
