"""``python -m edge_runtime evaluate``: COCO AP of a ``.tflite`` detector, interpreter only.

Writes the same keys as ``python -m train evaluate``'s ``eval.json`` (AP, AP50, ..., AR100 as
fractions), so TensorFlow and TFLite scores of one model sit side by side in the reports.
"""
from __future__ import annotations

import json
import os
import time

from edge_runtime.detector import Detector
from train.coco_metrics import coco_metrics, to_coco_results  # TF-free
from train.data import DataError, load_dataset, load_image  # TF-free readers


def image_of(example):
    """RGB uint8 [H, W, 3] of a dataset example (file or TFRecord bytes)."""
    if example.encoded is not None:
        return load_image(data=example.encoded, name=example.file_name or str(example.image_id))
    return load_image(example.file_name)


def _write_json(path: str, data) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def evaluate(model_path: str, data: str, split: str = "val", json_path: str | None = None,
             detections_path: str | None = None, num_threads: int | None = None,
             max_images: int | None = None, progress: bool = True,
             detector: Detector | None = None) -> dict:
    """Scores ``model_path`` on ``data`` (any COCO-format dataset, see train.data.load_dataset).

    Category ids come from the model's metadata; a dataset with other categories is an error.
    """
    from tqdm import tqdm

    # "area" resizing, as `train evaluate` does: the same pixels, so the same COCO scores
    det = detector or Detector(model_path, num_threads=num_threads, interpolation="area")
    dataset = load_dataset(data, split)
    category_ids = det.metadata.get("category_ids") or dataset.category_ids
    if list(category_ids) != list(dataset.category_ids):
        raise ValueError(f"{data} ({split}) has categories {dataset.category_ids}, but "
                         f"{model_path} was exported for {category_ids}")
    examples = dataset.examples[:max_images] if max_images else dataset.examples
    results, kept, skipped, t0 = [], set(), {}, time.time()
    for ex in tqdm(examples, desc=f"evaluating {os.path.basename(model_path)}", unit="img",
                   disable=not progress):
        try:
            image = image_of(ex)
        except DataError as e:  # counted and left out, as `train evaluate` does
            skipped[str(e)] = skipped.get(str(e), 0) + 1
            continue
        d = det.detect(image)
        results += to_coco_results(ex, d.boxes, d.scores, d.classes + 1, category_ids)
        kept.add(ex.image_id)
    seconds = time.time() - t0
    gt = dataset.to_coco_gt()
    gt["images"] = [im for im in gt["images"] if im["id"] in kept]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in kept]
    metrics, summary = coco_metrics(gt, results)
    report = {**metrics, "split": split, "data": os.path.abspath(data),
              "model": os.path.abspath(model_path), "runtime": det.runtime,
              "num_images": len(kept), "skipped": dict(dataset.warnings) | skipped, "num_detections": len(results),
              "seconds": seconds, "coco_summary": summary}
    if json_path:
        _write_json(json_path, report)
    if detections_path:
        _write_json(detections_path, results)
    return report
