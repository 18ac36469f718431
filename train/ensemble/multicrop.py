"""Multicrop inference: the whole image plus overlapping crops, each run through the model at
its full input size (so a crop's small objects get more pixels), the detections mapped back
to the image and merged (the paper's COCO entry used multicrop, Sec. 4.2).

A spec ``"GxG:F"`` (e.g. ``2x2:0.6``): a G x G grid of crops, each F of the image's height and
width, the outer ones flush with the image's edges, evenly spaced between (overlapping when
G x F > 1). ``"none"``: the whole image only. Network evaluations per image per model: 1 + G^2.

Shape shorthand: C crops, N boxes; windows and boxes are normalised corners
(ymin, xmin, ymax, xmax), boxes of a crop relative to that crop.
"""
from __future__ import annotations

import re

import numpy as np


class MulticropError(ValueError):
    pass


def parse_spec(spec: str | None) -> tuple[int, float] | None:
    """``"GxG:F"`` -> (G, F); ``None``/``"none"`` -> None."""
    if spec is None or str(spec).strip().lower() in ("", "none"):
        return None
    m = re.fullmatch(r"\s*(\d+)x(\d+):([0-9.]+)\s*", str(spec))
    if not m or m.group(1) != m.group(2):
        raise MulticropError(f"multicrop spec {spec!r}: expected 'GxG:F' (e.g. 2x2:0.6) or "
                             "'none'")
    grid, fraction = int(m.group(1)), float(m.group(3))
    if not 1 <= grid <= 8 or not 0.0 < fraction < 1.0 or grid * fraction < 1.0:
        raise MulticropError(f"multicrop spec {spec!r}: G must be 1..8 and F in (0, 1) with "
                             "G x F >= 1 (the crops must cover the image)")
    return grid, fraction


def windows(spec: str | None) -> np.ndarray:
    """``[C, 4]`` float64 crop windows, the whole image first."""
    parsed = parse_spec(spec)
    out = [(0.0, 0.0, 1.0, 1.0)]
    if parsed:
        grid, f = parsed
        starts = [0.0] if grid == 1 else [i * (1.0 - f) / (grid - 1) for i in range(grid)]
        out += [(y, x, y + f, x + f) for y in starts for x in starts]
    return np.asarray(out, np.float64)


def evaluations(spec: str | None) -> int:
    """Network evaluations per image per model."""
    return len(windows(spec))


def pixel_window(window, height: int, width: int) -> tuple[int, int, int, int]:
    """A normalised window -> whole pixels (y0, x0, y1, x1), at least one pixel each way."""
    y0, x0 = int(round(window[0] * height)), int(round(window[1] * width))
    y1 = max(int(round(window[2] * height)), y0 + 1)
    x1 = max(int(round(window[3] * width)), x0 + 1)
    return y0, x0, min(y1, height), min(x1, width)


def crop(image: np.ndarray, window) -> tuple[np.ndarray, np.ndarray]:
    """``image [H, W, 3]`` -> (the crop, its exact window ``[4]`` in the image's normalised
    coordinates: whole pixels, so mapping back is exact)."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = pixel_window(window, h, w)
    return image[y0:y1, x0:x1], np.array([y0 / h, x0 / w, y1 / h, x1 / w], np.float64)


def to_image(boxes, window) -> np.ndarray:
    """``boxes [N, 4]`` normalised to a crop -> ``[N, 4]`` normalised to the image."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    y0, x0, y1, x1 = (float(v) for v in window)
    scale = np.array([y1 - y0, x1 - x0, y1 - y0, x1 - x0])
    return b * scale + np.array([y0, x0, y0, x0])


def cut_by_crop(boxes, window, margin: float = 0.01) -> np.ndarray:
    """``[N]`` bool: boxes (crop-normalised) within ``margin`` of a crop edge that lies inside
    the image -- objects the crop cuts, whose box would be the cut part; the whole image or
    another crop sees them whole."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    y0, x0, y1, x1 = (float(v) for v in window)
    inner = [y0 > 0, x0 > 0, y1 < 1, x1 < 1]  # which crop edges are inside the image
    cut = np.zeros(len(b), bool)
    if inner[0]:
        cut |= b[:, 0] <= margin
    if inner[1]:
        cut |= b[:, 1] <= margin
    if inner[2]:
        cut |= b[:, 2] >= 1 - margin
    if inner[3]:
        cut |= b[:, 3] >= 1 - margin
    return cut
