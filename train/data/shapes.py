"""The eight object categories of the synthetic dataset and how one object is drawn.

A shape is a list of closed contours in unit coordinates (roughly [-1, 1]^2, y down); the
first contour is filled, later ones are holes (the ring). ``draw_object`` rasterises a shape
with a random fill (solid, gradient or texture) and an optional outline into a small local
canvas, returning the colour patch and the boolean mask of the pixels it covers.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CATEGORIES = ("circle", "triangle", "square", "star", "cross", "ring", "hexagon", "heart")

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel vertex positions keep small shapes faithful


def _polygon(n: int, phase: float = 0.0, radius: float = 1.0) -> np.ndarray:
    t = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(t), np.sin(t)], 1) * radius


def _star(rng) -> list[np.ndarray]:
    outer = _polygon(5, -np.pi / 2)
    inner = _polygon(5, -np.pi / 2 + np.pi / 5, rng.uniform(0.38, 0.5))
    return [np.stack([outer, inner], 1).reshape(-1, 2)]


def _cross(rng) -> list[np.ndarray]:
    a = rng.uniform(0.28, 0.4)  # half-width of an arm
    return [np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                      [-a, a], [-1, a], [-1, -a], [-a, -a]], np.float64)]


def _heart(rng) -> list[np.ndarray]:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y + 2.5], 1) / 16.5
    return [pts]


def _triangle(rng) -> list[np.ndarray]:
    apex = rng.uniform(-0.6, 0.6)  # not always isosceles
    return [np.array([[apex, -1.0], [1.0, 0.8], [-1.0, 0.8]])]


def shape_contours(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Contours (float64 [P, 2] each, x/y in about [-1, 1]) of one instance of ``name``."""
    if name == "circle":
        return [_polygon(64)]
    if name == "ring":
        return [_polygon(64), _polygon(64, radius=rng.uniform(0.45, 0.7))]
    if name == "square":
        return [_polygon(4, np.pi / 4, np.sqrt(2))]
    if name == "hexagon":
        return [_polygon(6)]
    if name == "star":
        return _star(rng)
    if name == "cross":
        return _cross(rng)
    if name == "heart":
        return _heart(rng)
    if name == "triangle":
        return _triangle(rng)
    raise ValueError(f"unknown shape {name!r}; known: {', '.join(CATEGORIES)}")


def random_color(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour, float32 [3]; saturated or greyish, light or dark."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(40, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _fill(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Colour of an object's pixels: float32 [h, w, 3]."""
    c1 = random_color(rng)
    kind = rng.choice(["solid", "gradient", "texture"], p=[0.5, 0.25, 0.25])
    if kind == "solid":
        return np.broadcast_to(c1, (h, w, 3))
    c2 = random_color(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    proj = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == "gradient":
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    else:  # stripes or checker, two colours
        period = rng.uniform(3, 12)
        t = (np.floor(proj / period) % 2).astype(np.float32)
        if rng.random() < 0.4:
            other = -xx * np.sin(angle) + yy * np.cos(angle)
            t = np.abs(t - (np.floor(other / period) % 2))
    return c1 + t[..., None] * (c2 - c1)


@dataclass
class DrawnObject:
    """One rasterised object: ``patch`` float32 [h, w, 3] and ``mask`` bool [h, w] placed with
    their top-left pixel at (x0, y0) in image coordinates (may be negative = truncated)."""
    category: int  # 1-based index into CATEGORIES
    x0: int
    y0: int
    patch: np.ndarray
    mask: np.ndarray


def draw_object(rng: np.random.Generator, category: int, cx: float, cy: float, size: float
                ) -> DrawnObject:
    """Draws CATEGORIES[category - 1] centred at (cx, cy), about ``size`` pixels across, with a
    random aspect ratio, rotation, fill and (sometimes) an outline of another colour."""
    contours = shape_contours(CATEGORIES[category - 1], rng)
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
    scale = np.array([np.sqrt(aspect), 1 / np.sqrt(aspect)]) * size / 2
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = [(c * scale) @ rot.T + (cx, cy) for c in contours]
    outline = int(rng.integers(1, max(2, int(size / 12)) + 1)) if rng.random() < 0.35 else 0
    lo = np.floor(pts[0].min(0)).astype(int) - outline - 1
    hi = np.ceil(pts[0].max(0)).astype(int) + outline + 2
    w, h = hi - lo
    fixed = [np.round((p - lo) * (1 << _SHIFT)).astype(np.int32) for p in pts]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, fixed[:1], 1, cv2.LINE_8, _SHIFT)
    if len(fixed) > 1:
        cv2.fillPoly(mask, fixed[1:], 0, cv2.LINE_8, _SHIFT)
    patch = np.array(_fill(rng, h, w), np.float32)
    if outline:
        line = np.zeros((h, w), np.uint8)
        cv2.polylines(line, fixed, True, 1, outline, cv2.LINE_8, _SHIFT)
        patch[line > 0] = random_color(rng)
        mask |= line
    return DrawnObject(category, int(lo[0]), int(lo[1]), patch, mask.astype(bool))
