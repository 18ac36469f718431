"""``python -m train fit``: trains a detector with tf.distribute, checkpoints, resumes.

Run directory layout (the contract with ``evaluate``, ``convert`` and ``benchmarks``)::

    runs/NAME/config.yaml        the resolved config (num_classes filled in)
    runs/NAME/labels.json        {"category_ids": [...], "category_names": [...]}; label k <-> [k-1]
    runs/NAME/checkpoints/       tf.train.Checkpoint files (model, optimizer, step)
    runs/NAME/logs/              TensorBoard summaries
    runs/NAME/train_log.json     steps done, losses, images/s, wall time, machine

Under ``--strategy multi_worker`` (train/distribute.py) every worker runs this same loop on its
shard of each global batch; the chief alone writes the files above. The others save their
(identical) checkpoints to a temporary folder they delete (every worker must take part in a
save) and read the chief's on resume, so ``out`` must be a folder they all see (one machine,
or a shared file system / bucket on a real cluster). Fault tolerance is the CheckpointManager's
(not Keras' BackupAndRestore, which belongs to ``model.fit``): a cluster restarted with the
same command resumes from the chief's last checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import tempfile
import time

import tensorflow as tf
import tf_keras as keras

from edge_runtime.files import write_json
from train.builder import build_model
from train import distribute
from train.config import Config, save_config
from train.data import load_dataset
from train.data.pipeline import cache_images, train_dataset
from train.schedules import build_optimizer, build_schedule

log = logging.getLogger(__name__)


def make_strategy(name: str = "auto", cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """The strategy of ``--strategy name`` (train/distribute.py)."""
    return distribute.make_strategy(name, cpu_replicas)[0]


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

    def __init__(self, config: Config, num_classes: int, out_dir: str, strategy=None,
                 checkpoint_dir: str | None = None):
        self.config, self.out_dir = config, out_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        tc = config.train
        self.precision = distribute.resolve_precision(tc.precision)
        with self.strategy.scope(), distribute.precision_policy(self.precision):
            self.model = build_model(config.model, num_classes)
            self.schedule = build_schedule(tc.optimizer, tc.steps)
            self.optimizer = build_optimizer(tc.optimizer, self.schedule)
            if self.precision == "mixed_float16":  # float16 gradients underflow unscaled
                self.optimizer = keras.mixed_precision.LossScaleOptimizer(self.optimizer)
            self.checkpoint = self.model.checkpoint(optimizer=self.optimizer)
        if tc.jit_compile:
            self._gradients = tf.function(self._gradients, jit_compile=True)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, checkpoint_dir or os.path.join(out_dir, "checkpoints"),
            max_to_keep=tc.keep_checkpoints)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self, directory: str | None = None) -> int:
        """Restores the newest readable checkpoint, if any, of ``directory`` (default: the
        manager's); returns the step it was taken at.

        A SIGKILL between writing ckpt-N and updating the state file leaves a complete ckpt-N that
        the manager does not list, so the directory is scanned too; a checkpoint that fails to
        read (killed mid-write) is skipped with a warning for the one before it.
        """
        directory = directory or self.manager.directory
        for prefix in _checkpoints_on_disk(directory):
            try:
                self.checkpoint.restore(prefix).expect_partial()
            except (tf.errors.OpError, ValueError) as e:
                log.warning("skipping unreadable checkpoint %s: %s", prefix, str(e).splitlines()[0])
                continue
            # let the manager track and rotate it (a worker reading the chief's leaves it)
            if directory == self.manager.directory and prefix != self.manager.latest_checkpoint:
                paths = [p for p in self.manager.checkpoints if p != prefix] + [prefix]
                tf.compat.v1.train.update_checkpoint_state(directory, prefix, paths)
                self.manager = tf.train.CheckpointManager(
                    self.checkpoint, directory, max_to_keep=self.config.train.keep_checkpoints)
            log.info("resumed from %s (step %d)", prefix, self.step)
            break
        return self.step

    def save(self) -> str:
        return self.manager.save(checkpoint_number=self.step)

    def _gradients(self, images, targets):
        """-> (losses, gradients of this replica's share of the total loss)."""
        model, replicas = self.model, self.strategy.num_replicas_in_sync
        mixed = self.precision == "mixed_float16"
        with tf.GradientTape() as tape:
            predictions = model.predict(images, targets.get("windows"), targets, training=True)
            if mixed:  # losses in float32
                predictions = tf.nest.map_structure(
                    lambda v: tf.cast(v, tf.float32) if getattr(v, "dtype", None) == tf.float16
                    else v, predictions)
            losses = model.loss(predictions, targets)
            losses["regularization"] = tf.cast(model.regularization_loss(), tf.float32)
            losses["total"] = losses["total"] + losses["regularization"]
            scaled = losses["total"] / replicas  # gradients are summed over replicas
            if mixed:
                scaled = self.optimizer.get_scaled_loss(scaled)
        grads = tape.gradient(scaled, model.trainable_variables)
        if mixed:
            grads = self.optimizer.get_unscaled_gradients(grads)
        return losses, grads

    def _step_fn(self, images, targets):
        variables = self.model.trainable_variables
        losses, grads = self._gradients(images, targets)
        clip = self.config.train.optimizer.clip_norm
        if clip:
            grads, _ = tf.clip_by_global_norm(grads, clip)
        self.optimizer.apply_gradients(zip(grads, variables))
        return losses

    @tf.function
    def train_step(self, iterator, stop):
        """One step -> (losses averaged over replicas, stop summed over them): ``stop`` (1.0
        if this process was asked to stop) goes through the same all-reduce, so every worker
        of a cluster agrees to stop after the same step."""
        images, targets = next(iterator)
        per_replica = self.strategy.run(self._step_fn, args=(images, targets))
        losses = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                  for k, v in per_replica.items()}
        stops = self.strategy.run(lambda: tf.identity(stop))
        return losses, self.strategy.reduce(tf.distribute.ReduceOp.SUM, stops, axis=None)


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
            "devices": [d.name for d in tf.config.list_logical_devices()]}


def _check_batch(tc, strategy) -> int:
    """-> the per-replica batch; the global batch must split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if tc.batch_size % replicas:
        raise distribute.ClusterError(
            f"train.batch_size={tc.batch_size} (the global batch) does not divide over "
            f"{replicas} replicas; use a multiple of {replicas}")
    return tc.batch_size // replicas


def fit(config: Config, data: str, out_dir: str, strategy: str = "auto",
        progress: bool = True, cpu_replicas: int = 0) -> dict:
    """Trains ``config`` on ``data`` (train split) into ``out_dir``; resumes if it has checkpoints.

    A fresh run (step 0) first loads ``model.feature_extractor.weights`` (``imagenet`` | a
    weights file; summary in ``weights.json``), then ``train.init_from`` (``init_from.json``),
    so init_from overrides what both set. A resumed run reloads neither. ``strategy``: see
    train/distribute.py; in a cluster every worker calls this with the same arguments."""
    tc = config.train
    strategy_obj, cluster = distribute.make_strategy(strategy, cpu_replicas)  # before any TF op
    chief = cluster is None or cluster.is_chief
    per_replica = _check_batch(tc, strategy_obj)
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
    distribute.check_same_config(strategy_obj, distribute.config_digest(config))
    if chief:
        save_config(config, os.path.join(out_dir, "config.yaml"))
        write_json(labels_path, labels)
    own_dir = None if chief else tempfile.mkdtemp(prefix=f"frontier-worker{cluster.rank}-")
    try:
        return _fit(config, dataset, out_dir, strategy_obj, cluster, per_replica,
                    progress and chief, own_dir)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


def _fit(config, dataset, out_dir, strategy, cluster, per_replica, progress, own_dir):
    """The loop of :func:`fit`; ``own_dir``: a non-chief worker's throw-away folder."""
    from tqdm import tqdm

    tc = config.train
    chief = own_dir is None
    tf.random.set_seed(tc.seed)
    trainer = Trainer(config, dataset.num_classes, out_dir, strategy,
                      checkpoint_dir=None if chief else os.path.join(own_dir, "checkpoints"))
    start = trainer.restore(os.path.join(out_dir, "checkpoints"))
    weights = config.model.feature_extractor.weights
    if start == 0 and weights:  # ImageNet (or a file) into the backbone; resumed runs keep theirs
        from train.feature_extractors.weights import load_weights
        summary = load_weights(trainer.model, weights)
        if chief:
            write_json(os.path.join(out_dir, "weights.json"), summary)
    if start == 0 and tc.init_from:  # a resumed run keeps its own weights
        from train.init_from import initialize_from
        summary = initialize_from(trainer.model, tc.init_from, tc.init_scope)
        if chief:
            write_json(os.path.join(out_dir, "init_from.json"), summary)
    if start >= tc.steps:
        if chief:
            print(f"{out_dir}: already trained for {start}/{tc.steps} steps; nothing to do")
        return {"steps": start, "chief": chief}

    cache = cache_images(dataset, trainer.model.image_resizer, tc.max_cache_gb,
                         progress=progress, square_size=tc.cache_size,
                         max_boxes=tc.max_boxes_per_image)

    def dataset_fn(context: tf.distribute.InputContext):
        return train_dataset(cache, trainer.model, batch_size=per_replica,
                             augment_config=tc.augment, seed=tc.seed, start_step=start,
                             global_batch=tc.batch_size, shard=context.input_pipeline_id,
                             num_shards=context.num_input_pipelines)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    writer = (tf.summary.create_file_writer(os.path.join(out_dir, "logs")) if chief
              else tf.summary.create_noop_writer())

    log_path = os.path.join(out_dir, "train_log.json")
    history = []
    if start and chief and os.path.exists(log_path):  # keep the curve of earlier invocations
        with open(log_path) as f:
            history = [h for h in json.load(f).get("history", []) if h["step"] <= start]
    t0, last_saved = time.time(), start
    bar = tqdm(total=tc.steps, initial=start, desc="training", unit="step", dynamic_ncols=True,
               disable=not progress)
    window_t, window_steps = time.time(), 0
    stopped_by_signal = False
    with _StopFlag() as stop, writer.as_default():
        while trainer.step < tc.steps:
            losses, stops = trainer.train_step(iterator, tf.constant(float(stop.requested)))
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
            if float(stops) > 0:  # this worker or another was asked to stop: all stop here
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
               "replicas": strategy.num_replicas_in_sync,
               "workers": cluster.num_workers if cluster else 1, "chief": chief,
               "skipped": dict(dataset.warnings) | dict(cache.skipped),
               "interrupted": stopped_by_signal, "machine": _machine(), "history": history}
    if chief:
        write_json(log_path, summary)
    if stopped_by_signal and chief:
        print(f"stopped at step {trainer.step}; checkpoint saved, run the same command to resume")
    return summary
