"""COCO metrics with pycocotools, shared by ``train evaluate`` and the edge runtime.

No TensorFlow here: the edge runtime scores ``.tflite`` models on a device without it.
"""
from __future__ import annotations

import contextlib
import io

STAT_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


def coco_metrics(gt: dict, detections: list[dict]) -> tuple[dict, str]:
    """Runs COCOeval (bbox) on a COCO ground-truth dict and a results list.

    Returns ({name: value}, the printed summary). Absent size buckets give -1 as in COCOeval.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not detections:  # loadRes refuses an empty list; nothing found means zero
            return {k: 0.0 for k in STAT_NAMES}, "no detections\n"
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: float(v) for k, v in zip(STAT_NAMES, evaluator.stats)}, text.getvalue()


def to_coco_results(example, boxes, scores, classes, category_ids) -> list[dict]:
    """Detections of one image (normalised yxyx, 1..K labels) -> COCO result dicts in pixels."""
    h, w = example.height, example.width
    results = []
    for (y0, x0, y1, x1), s, c in zip(boxes, scores, classes):
        results.append({"image_id": int(example.image_id),
                        "category_id": int(category_ids[int(c) - 1]),
                        "bbox": [round(float(x0 * w), 2), round(float(y0 * h), 2),
                                 round(float((x1 - x0) * w), 2), round(float((y1 - y0) * h), 2)],
                        "score": round(float(s), 5)})
    return results
