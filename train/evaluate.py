"""``python -m train evaluate``: COCO metrics (pycocotools) of a trained run on a dataset split.

Writes ``eval.json`` (AP, AP50, AP75, AP_small, AP_medium, AP_large, AR1, AR10, AR100 as
fractions in 0..1, plus the step, image count and timing) and ``detections_<split>.json`` in the
COCO results format (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] pixels, ``score``).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf

from edge_runtime.coco import coco_metrics, to_coco_results
from edge_runtime.files import write_json
from train.builder import build_model
from train.config import load_config
from train.data import load_dataset
from train.data.pipeline import cache_images, eval_batches

def apply_overrides(config, num_proposals: int | None = None, image_size: int | None = None):
    """Evaluation-time knobs (paper Sec. 3.3-3.4), checked like config values: the number of
    proposals (two-stage) and the input resolution (SSD: M x M; two-stage: the shorter edge,
    the longer-edge cap scaled with it)."""
    from train.config import ConfigError

    section = config.model.section
    if num_proposals is not None:
        if config.model.meta_architecture == "ssd":
            raise ConfigError("--num-proposals applies to two-stage models (faster_rcnn, rfcn); "
                              "this run is an SSD")
        fs = section.first_stage
        if not 1 <= num_proposals <= fs.pre_nms_top_k:
            raise ConfigError(f"--num-proposals must be in 1..{fs.pre_nms_top_k} (the run's "
                              f"first_stage.pre_nms_top_k), got {num_proposals}")
        fs.max_proposals = num_proposals
    if image_size is not None:
        if image_size < 32:
            raise ConfigError(f"--image-size must be at least 32 pixels, got {image_size}")
        if config.model.meta_architecture != "ssd":  # the cap scales with it, rounded up to
            # the RPN stride's multiple (export needs a padded input divisible by it)
            step = max(16, config.model.feature_extractor.output_stride or 16)
            cap = section.max_image_size * image_size / section.image_size
            section.max_image_size = int(-(-round(cap) // step) * step)
        section.image_size = image_size
    return config


def load_run(run_dir: str, checkpoint: str | None = None, num_proposals: int | None = None,
             image_size: int | None = None):
    """Rebuilds the model of a run directory (with evaluation-time overrides) and restores its
    latest (or given) checkpoint -> (config, labels, model, checkpoint path)."""
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir}: no config.yaml; is this a `python -m train fit` --out?")
    config = apply_overrides(load_config(config_path), num_proposals, image_size)
    with open(os.path.join(run_dir, "labels.json")) as f:
        labels = json.load(f)
    model = build_model(config.model, len(labels["category_ids"]))
    ckpt = checkpoint or tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if not ckpt:  # a float16 package (train/package.py) holds its weights in an .npz
        from train.package import FLOAT16_WEIGHTS
        if os.path.isfile(os.path.join(run_dir, FLOAT16_WEIGHTS)):
            ckpt = os.path.join(run_dir, FLOAT16_WEIGHTS)
        else:
            raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint to evaluate")
    if ckpt.endswith(".npz"):
        from train.package import restore_float16_weights
        restore_float16_weights(model, ckpt)
        return config, labels, model, ckpt
    status = model.checkpoint().restore(ckpt)
    status.expect_partial().assert_existing_objects_matched()
    return config, labels, model, ckpt


def evaluate(run_dir: str, data: str, split: str = "val", checkpoint: str | None = None,
             out_dir: str | None = None, batch_size: int = 16, progress: bool = True,
             num_proposals: int | None = None, image_size: int | None = None) -> dict:
    from tqdm import tqdm

    config, labels, model, ckpt = load_run(run_dir, checkpoint, num_proposals, image_size)
    dataset = load_dataset(data, split)
    if dataset.category_ids != labels["category_ids"]:
        raise ValueError(f"{data} ({split}) has categories {dataset.category_ids}, but the model "
                         f"in {run_dir} was trained on {labels['category_ids']}")
    cache = cache_images(dataset, model.image_resizer, config.train.max_cache_gb,
                         progress=progress)
    detect = tf.function(model.detect)
    results, t0 = [], time.time()
    with tqdm(total=len(cache), desc=f"evaluating {split}", unit="img", disable=not progress) as bar:
        for start, images, windows in eval_batches(cache, batch_size):
            out = {k: v.numpy() for k, v in detect(tf.constant(images), tf.constant(windows)).items()}
            for i in range(len(images)):
                n = int(out["num_detections"][i])
                results += to_coco_results(cache.examples[start + i], out["boxes"][i, :n],
                                           out["scores"][i, :n], out["classes"][i, :n],
                                           labels["category_ids"])
            bar.update(len(images))
    seconds = time.time() - t0
    gt = dataset.to_coco_gt()
    kept = {e.image_id for e in cache.examples}
    gt["images"] = [im for im in gt["images"] if im["id"] in kept]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in kept]
    metrics, summary = coco_metrics(gt, results)
    out_dir = out_dir or run_dir
    os.makedirs(out_dir, exist_ok=True)
    step = int(ckpt.rsplit("-", 1)[-1]) if "-" in os.path.basename(ckpt) else None
    report = {**metrics, "split": split, "data": os.path.abspath(data), "checkpoint": ckpt,
              "step": step, "num_images": len(cache), "num_detections": len(results),
              "skipped": dict(dataset.warnings) | dict(cache.skipped),
              "seconds": seconds, "meta_architecture": config.model.meta_architecture,
              "input_shape": list(model.input_shape), "settings": _settings(config),
              "coco_summary": summary}
    write_json(os.path.join(out_dir, "eval.json"), report)
    write_json(os.path.join(out_dir, f"detections_{split}.json"), results)
    if config.model.meta_architecture != "ssd":  # one file per proposal count, for Fig. 6
        n = config.model.section.first_stage.max_proposals
        write_json(os.path.join(out_dir, f"eval_proposals_{n}.json"), report)
    return report


def _settings(config) -> dict:
    """The evaluation-time knobs a result depends on (recorded in eval.json)."""
    section = config.model.section
    out = {"image_size": section.image_size}
    if config.model.meta_architecture != "ssd":
        out.update(max_image_size=section.max_image_size,
                   num_proposals=section.first_stage.max_proposals)
    return out
