"""``python -m edge_runtime evaluate``: COCO AP of a ``.tflite`` detector, interpreter only.

Writes the same keys as ``python -m train evaluate``'s ``eval.json`` (AP, AP50, ..., AR100 as
fractions) against the same cleaned ground truth (see edge_runtime/coco.py), so TensorFlow and
TFLite scores of one model sit side by side in the reports.
"""
from __future__ import annotations

import os
import time
from types import SimpleNamespace

from edge_runtime.coco import coco_metrics, read_ground_truth, to_coco_results
from edge_runtime.detector import Detector
from edge_runtime.files import write_json
from edge_runtime.images import DataError, read_image


def evaluate(model_path: str, data: str, split: str = "val", json_path: str | None = None,
             detections_path: str | None = None, num_threads: int | None = None,
             max_images: int | None = None, progress: bool = True,
             detector: Detector | None = None, use_xnnpack: bool = True,
             delegate: str | None = None, runtime: str | None = None,
             interpolation: str = "area") -> dict:
    """Scores ``model_path`` on ``data``: a COCO root (``annotations/instances_{split}.json``)
    or an instances ``.json``; images are found beside it as ``train`` finds them.
    ``num_threads``, ``use_xnnpack``, ``delegate``, ``runtime``: the interpreter's, as for
    :class:`Detector` (unused when ``detector`` is given). ``interpolation``: "area" resizes as
    ``train evaluate`` does (the same pixels, so the same COCO scores as TensorFlow); the other
    names of edge_runtime/resize.py score what ``detect`` and ``camera`` would see.

    Category ids come from the model's metadata; a dataset with other categories is an error.
    """
    from tqdm import tqdm

    det = detector or Detector(model_path, num_threads=num_threads, use_xnnpack=use_xnnpack,
                               delegate=delegate, runtime=runtime, interpolation=interpolation)
    truth = read_ground_truth(data, split)
    category_ids = det.metadata.get("category_ids") or truth.category_ids
    if list(category_ids) != list(truth.category_ids):
        raise ValueError(f"{data} ({split}) has categories {truth.category_ids}, but "
                         f"{model_path} was exported for {category_ids}")
    images = truth.coco["images"][:max_images] if max_images else truth.coco["images"]
    results, kept, skipped, t0 = [], set(), {}, time.time()
    for im in tqdm(images, desc=f"evaluating {os.path.basename(model_path)}", unit="img",
                   disable=not progress):
        try:
            image = read_image(truth.files[im["id"]])
        except DataError as e:  # counted and left out, as `train evaluate` does
            skipped[str(e)] = skipped.get(str(e), 0) + 1
            continue
        d = det.detect(image)
        if len(d.classes) and not 0 <= d.classes.min() <= d.classes.max() < len(category_ids):
            raise ValueError(f"{model_path}: detects class index {int(d.classes.max())}, but "
                             f"{data} ({split}) has {len(category_ids)} categories")
        # pixels of the grid the ground-truth boxes refer to; 0-based classes as labels 1..K
        size = SimpleNamespace(image_id=im["id"], height=im["height"], width=im["width"])
        results += to_coco_results(size, d.boxes, d.scores, d.classes + 1, category_ids)
        kept.add(im["id"])
    seconds = time.time() - t0
    gt = dict(truth.coco, images=[im for im in images if im["id"] in kept],
              annotations=[a for a in truth.coco["annotations"] if a["image_id"] in kept])
    metrics, summary = coco_metrics(gt, results)
    report = {**metrics, "split": split, "data": os.path.abspath(data),
              "model": os.path.abspath(model_path), "runtime": det.runtime,
              "interpolation": det.interpolation,
              "num_images": len(kept), "skipped": dict(truth.warnings) | skipped,
              "num_detections": len(results), "seconds": seconds, "coco_summary": summary}
    if json_path:
        write_json(json_path, report)
    if detections_path:
        write_json(detections_path, results)
    return report
