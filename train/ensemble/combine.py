"""Merging detections of several models or crops, per class (``--combine detections`` and
multicrop). Shapes: N detections, ``boxes [N, 4]`` normalised (ymin, xmin, ymax, xmax) to the
image, ``scores [N]``, ``classes [N]`` int in 1..K.

- ``nms``: greedy non-maximum suppression per class over everything (the highest-scoring box
  of a cluster survives as it is).
- ``wbf``: weighted box fusion (Solovyev et al. 2021): a cluster's box is the score-weighted
  mean of its boxes and its score the mean score times ``min(count, sources) / sources`` --
  agreement between models counts, a box only one of M models found is discounted.
"""
from __future__ import annotations

import numpy as np

METHODS = ("nms", "wbf")


def iou_one_to_many(box, boxes) -> np.ndarray:
    y0 = np.maximum(box[0], boxes[:, 0])
    x0 = np.maximum(box[1], boxes[:, 1])
    y1 = np.minimum(box[2], boxes[:, 2])
    x1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _clusters(boxes, scores, iou_threshold):
    """Greedy by score: each cluster = its best box and every remaining box overlapping it at
    IoU > ``iou_threshold`` -> list of index arrays, best first."""
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        best, rest = order[0], order[1:]
        overlap = iou_one_to_many(boxes[best], boxes[rest]) > iou_threshold
        out.append(np.concatenate([[best], rest[overlap]]))
        order = rest[~overlap]
    return out


def merge(boxes, scores, classes, method: str = "nms", iou_threshold: float = 0.6,
          max_detections: int = 100, sources: int = 1) -> tuple:
    """Per class, ``method`` over all the given detections; the best ``max_detections`` by
    score -> (boxes, scores, classes). ``sources``: how many models/crops contributed (WBF)."""
    if method not in METHODS:
        raise ValueError(f"combine method must be one of {', '.join(METHODS)}, got {method!r}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    out_b, out_s, out_c = [], [], []
    for c in np.unique(classes):
        idx = np.nonzero(classes == c)[0]
        for cluster in _clusters(boxes[idx], scores[idx], iou_threshold):
            members = idx[cluster]
            if method == "nms":
                out_b.append(boxes[members[0]])
                out_s.append(scores[members[0]])
            else:
                w = scores[members]
                out_b.append((boxes[members] * w[:, None]).sum(0) / max(w.sum(), 1e-12))
                out_s.append(w.mean() * min(len(members), sources) / sources)
            out_c.append(c)
    if not out_s:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int32)
    s = np.asarray(out_s)
    keep = np.argsort(-s, kind="stable")[:max_detections]
    return np.asarray(out_b)[keep], s[keep], np.asarray(out_c, np.int32)[keep]
