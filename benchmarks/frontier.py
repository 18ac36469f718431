"""The speed/accuracy optimality frontier (paper Fig. 2) and its critical points; pure Python.

A point (time, AP) is on the frontier when no other point is both faster-or-equal and
more-accurate-or-equal with at least one of the two strict: better accuracy there can only be
had by spending time. Two identical points do not dominate each other, so both stay on it.
The critical points are the frontier's points; three are named as in the paper: the fastest,
the most accurate and the "sweet spot" (the elbow: the frontier point farthest above the chord
from the fastest to the most accurate, in log-time, as the figures draw time).
"""
from __future__ import annotations

import math

SHORT_META = {"ssd": "SSD", "faster_rcnn": "FRCNN", "rfcn": "R-FCN"}
SHORT_EXTRACTOR = {"mobilenet_v1": "MNv1", "mobilenet_v2": "MNv2", "inception_v2": "Incv2",
                   "inception_v3": "Incv3", "inception_resnet_v2": "IncRes", "resnet101": "R101",
                   "vgg16": "VGG16"}


def dominates(a, b) -> bool:
    """``a`` = (time, ap) dominates ``b``: no slower, no less accurate, better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points) -> list[int]:
    """Indices of the frontier's points among ``points`` [(time, ap), ...], fastest first.
    Points with a non-finite coordinate are never on it (and dominate nothing)."""
    ok = [i for i, p in enumerate(points) if all(math.isfinite(v) for v in p)]
    front = [i for i in ok if not any(dominates(points[j], points[i]) for j in ok if j != i)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def sweet_spot(points, front: list[int]) -> int | None:
    """The elbow of ``front`` (indices into ``points``, fastest first); None under 3 points."""
    if len(front) < 3 or points[front[0]][0] <= 0:
        return None
    xy = [(math.log(points[i][0]), points[i][1]) for i in front]
    (x0, y0), (x1, y1) = xy[0], xy[-1]
    if x1 == x0:
        return None
    # height above the chord, in AP units: AP(point) - AP(chord at the same log-time)
    rise = [y - (y0 + (y1 - y0) * (x - x0) / (x1 - x0)) for x, y in xy]
    k = max(range(1, len(front) - 1), key=lambda j: rise[j])
    return front[k] if rise[k] > 0 else None


def critical_points(points, front: list[int]) -> dict[int, str]:
    """{index: role} for the fastest, the most accurate and the sweet spot of ``front``."""
    if not front:
        return {}
    roles = {front[0]: "fastest"}
    best = max(front, key=lambda i: points[i][1])
    roles[best] = "most accurate" if best != front[0] else "fastest, most accurate"
    elbow = sweet_spot(points, front)
    if elbow is not None and elbow not in roles:
        roles[elbow] = "sweet spot"
    return roles


def short_name(cell: dict) -> str:
    """'FRCNN R101 600 p50 s8' from a cell key (the parts that are set)."""
    parts = [SHORT_META.get(cell["meta_architecture"], cell["meta_architecture"]),
             SHORT_EXTRACTOR.get(cell["extractor"], cell["extractor"]), str(cell["resolution"])]
    if cell.get("num_proposals") is not None:
        parts.append(f"p{cell['num_proposals']}")
    if cell.get("stride") is not None:
        parts.append(f"s{cell['stride']}")
    return " ".join(parts)
