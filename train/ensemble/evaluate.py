"""``python -m train ensemble``: choose members, run the ensemble on a split, score it.

Writes ``OUT/eval.json``: the COCO metrics of ``train evaluate`` (same names), plus
``ensemble``: members, the selection and why, combine / merge / multicrop, network
evaluations, each member's own scores on the same images (``members_alone``, with
``--score-members``) and the measured time per image (batch 1, this machine; median and p90 after one
untimed warm-up image). ``OUT/detections_{split}.json``: the COCO results.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np

from edge_runtime.coco import coco_metrics, to_coco_results
from edge_runtime.files import write_json
from edge_runtime.images import read_image
from train.ensemble import multicrop
from train.ensemble.combine import METHODS
from train.ensemble.ensemble import Ensemble, EnsembleError, check_runs, load_members
from train.ensemble.selection import greedy_select


def _images(dataset, limit: int | None):
    examples = dataset.examples[:limit] if limit else dataset.examples
    for e in examples:
        if e.encoded is not None:
            yield e, read_image(data=e.encoded, name=f"image {e.image_id}")
        else:
            yield e, read_image(e.file_name)


def score(detect, dataset, category_ids, limit=None, progress=True, desc="evaluating") -> dict:
    """COCO metrics (with per-category AP) of ``detect(image) -> (boxes, scores, classes)``
    over the first ``limit`` images, and its time per image (ms: median, p90, after one
    untimed image)."""
    from tqdm import tqdm

    results, times, kept = [], [], []
    n = min(limit or len(dataset.examples), len(dataset.examples))
    for i, (e, image) in enumerate(tqdm(_images(dataset, limit), total=n, desc=desc,
                                        unit="img", disable=not progress)):
        if i == 0:
            detect(image)  # traces the tf.functions: not timed
        t0 = time.perf_counter()
        boxes, scores, classes = detect(image)
        times.append((time.perf_counter() - t0) * 1e3)
        results += to_coco_results(e, boxes, scores, classes, category_ids)
        kept.append(e.image_id)
    gt = dataset.to_coco_gt()
    ids = set(kept)
    gt["images"] = [im for im in gt["images"] if im["id"] in ids]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids]
    metrics, summary = coco_metrics(gt, results, per_category=True)
    return {**metrics, "num_images": len(kept), "num_detections": len(results),
            "ms_per_image": {"median": float(np.median(times)),
                             "p90": float(np.percentile(times, 90))},
            "coco_summary": summary, "results": results}


def _dataset(data, split, category_ids, what):
    from train.data import load_dataset

    try:
        dataset = load_dataset(data, split)
    except (OSError, ValueError) as e:
        raise EnsembleError(f"{what} {data} ({split}): {e}") from None
    if dataset.category_ids != category_ids:
        raise EnsembleError(f"{what} {data} ({split}) has category ids {dataset.category_ids}; "
                            f"the members were trained on {category_ids}")
    return dataset


def run_ensemble(runs, data, split="val", images=None, select="none", max_models=5,
                 similarity=0.99, select_data=None, select_split="val", select_images=None,
                 combine="proposals", merge_method=None, multicrop_spec=None, out=None,
                 progress=True, score_members=False, num_proposals=None,
                 image_size=None, save_detections=True) -> dict:
    """The whole command (see the module docstring); every check runs before any model is
    evaluated."""
    labels = check_runs(runs, combine)
    multicrop.parse_spec(multicrop_spec)  # MulticropError (a ValueError) names the spec
    # measured on shapes_large val (benchmarks/results/ensemble): merging three members'
    # detections by WBF gave AP 0.529 vs 0.512 by NMS; under proposals, the paper's one NMS
    merge_method = merge_method or ("wbf" if combine == "detections" else "nms")
    if merge_method not in METHODS:
        raise EnsembleError(f"--merge must be one of {', '.join(METHODS)}, got {merge_method!r}")
    if select not in ("none", "greedy"):
        raise EnsembleError(f"--select must be none or greedy, got {select!r}")
    category_ids = labels[0]["category_ids"]
    dataset = _dataset(data, split, category_ids, "--data")
    held_out = None
    if select == "greedy":
        select_data = select_data or data
        if (os.path.abspath(select_data), select_split) == (os.path.abspath(data), split):
            raise EnsembleError(f"--select greedy on {data} ({split}), the split the scores are "
                                "reported on: give a held-out --select-data / --select-split")
        held_out = _dataset(select_data, select_split, category_ids, "--select-data")
    if num_proposals is not None and num_proposals < 1:
        raise EnsembleError(f"--num-proposals must be >= 1, got {num_proposals}")
    if image_size is not None and image_size < 32:
        raise EnsembleError(f"--image-size must be >= 32, got {image_size}")
    members = load_members(runs, combine, num_proposals, image_size)
    selection = None
    if held_out is not None:
        candidates = {}
        for m in members:
            single = Ensemble([m], combine="detections")
            s = score(single.detect, held_out, category_ids, select_images, progress,
                      desc=f"held-out AP of {m.name}")
            candidates[m.name] = {"AP": s["AP"], "per_category_AP": s["per_category_AP"]}
        chosen, decisions = greedy_select(candidates, max_models, similarity)
        selection = {"rule": "greedy by held-out AP, pruning cosine > similarity",
                     "similarity": similarity, "max_models": max_models,
                     "data": os.path.abspath(select_data), "split": select_split,
                     "images": min(select_images or len(held_out.examples),
                                                len(held_out.examples)),
                     "candidates": candidates, "decisions": decisions, "chosen": chosen}
        members = [m for name in chosen for m in members if m.name == name]
    singles = {}
    if score_members:  # each member alone, same images, same code path
        for m in members:
            s = score(Ensemble([m], combine="detections").detect, dataset, category_ids,
                      images, progress, desc=f"{m.name} alone on {split}")
            singles[m.name] = {k: s[k] for k in ("AP", "AP50", "AP_small", "AR100", "AR_small",
                                                 "ms_per_image")}
    ensemble = Ensemble(members, combine=combine, merge_method=merge_method,
                        multicrop_spec=multicrop_spec)
    s = score(ensemble.detect, dataset, category_ids, images, progress,
              desc=f"ensemble of {len(members)} on {split}")
    results = s.pop("results")
    report = {**s, "split": split, "data": os.path.abspath(data),
              "ensemble": {"members": [{"name": m.name, "run": os.path.abspath(m.run_dir),
                                        "meta_architecture": m.model.meta_architecture}
                                       for m in members],
                           "combine": combine, "merge": merge_method,
                           "multicrop": multicrop_spec or "none",
                           "crops_per_image": len(ensemble.windows),
                           "num_proposals": num_proposals, "image_size": image_size,
                           "network_evaluations_per_image": ensemble.evaluations_per_image,
                           "selection": selection, "members_alone": singles or None,
                           "timing": {"batch": 1, "machine": platform.processor()
                                      or platform.machine(), "cores": os.cpu_count()}}}
    if out:
        os.makedirs(out, exist_ok=True)
        write_json(os.path.join(out, "eval.json"), report)
        if save_detections:  # COCO results: ~40 MB per 1000 images at score threshold 0
            write_json(os.path.join(out, f"detections_{split}.json"), results)
    return report
