"""One synthetic detection image: background + 0-15 shapes + camera artefacts + its COCO boxes.

Every image is a pure function of (seed, split, index), so a dataset comes out identical
whatever the number of worker processes. Objects are pasted in order, so later ones occlude
earlier ones; an object's box is the tight box of its pixels that are still *visible* in the
final image (after occlusion and truncation at the border), as a human annotator would draw it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from train.data.backgrounds import background
from train.data.shapes import CATEGORIES, DrawnObject, draw_object

SPLITS = {"train": 0, "val": 1}
MIN_VISIBLE_FRACTION = 0.3  # objects more hidden than this are not annotated
MIN_VISIBLE_AREA = 16  # pixels
# COCO size buckets on the annotation's area (here: visible pixel count)
SMALL_AREA, LARGE_AREA = 32 ** 2, 96 ** 2
# (probability, min, max) of an object's size in pixels, before occlusion; tuned so that
# annotated objects come out about 30% small / 45% medium / 25% large by COCO's buckets.
_SIZE_MIX = ((0.20, 7.0, 32.0), (0.42, 32.0, 130.0), (0.38, 130.0, 300.0))


@dataclass
class Annotation:
    category_id: int  # 1..len(CATEGORIES)
    bbox: tuple[int, int, int, int]  # pixel x, y, w, h of the visible pixels
    area: int  # visible pixel count


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index]))


def _object_size(rng, h, w) -> float:
    probs = [p for p, _, _ in _SIZE_MIX]
    _, lo, hi = _SIZE_MIX[rng.choice(len(_SIZE_MIX), p=probs)]
    hi = min(hi, 0.8 * min(h, w))
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _artefacts(rng, img: np.ndarray) -> np.ndarray:
    """Contrast/brightness jitter, blur and sensor noise on a float32 image; -> uint8."""
    if rng.random() < 0.5:
        img = (img - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
    if rng.random() < 0.4:
        img = img + rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def paste_objects(img: np.ndarray, objects: list[DrawnObject]) -> list[Annotation]:
    """Pastes ``objects`` in order onto ``img`` (float32 [H, W, 3], modified in place) and
    returns the annotations of those still visible enough, boxes tight on visible pixels."""
    h, w = img.shape[:2]
    owner = np.full((h, w), -1, np.int16)  # index of the object that shows at each pixel
    windows = []
    for i, obj in enumerate(objects):
        ph, pw = obj.mask.shape
        x0, y0 = max(obj.x0, 0), max(obj.y0, 0)  # the patch's intersection with the image
        x1, y1 = min(obj.x0 + pw, w), min(obj.y0 + ph, h)
        windows.append((x0, y0, x1, y1))
        if x1 <= x0 or y1 <= y0:
            continue
        inside = (slice(y0 - obj.y0, y1 - obj.y0), slice(x0 - obj.x0, x1 - obj.x0))
        m = obj.mask[inside]
        img[y0:y1, x0:x1][m] = obj.patch[inside][m]
        owner[y0:y1, x0:x1][m] = i
    annotations = []
    for i, (obj, (x0, y0, x1, y1)) in enumerate(zip(objects, windows)):
        if x1 <= x0 or y1 <= y0:
            continue
        visible = owner[y0:y1, x0:x1] == i
        area = int(visible.sum())
        if area < MIN_VISIBLE_AREA or area < MIN_VISIBLE_FRACTION * int(obj.mask.sum()):
            continue
        bx, by, bw, bh = cv2.boundingRect(visible.astype(np.uint8))
        if bw < 2 or bh < 2:
            continue
        annotations.append(Annotation(obj.category, (x0 + bx, y0 + by, bw, bh), area))
    return annotations


def render_image(seed: int, split: str, index: int
                 ) -> tuple[np.ndarray, list[Annotation], int]:
    """Renders image ``index`` of ``split``.

    Returns (image uint8 [H, W, 3] RGB with 256 <= H, W <= 384, its annotations, the JPEG
    quality to save it with).
    """
    rng = image_rng(seed, split, index)
    h, w = (int(v) for v in rng.integers(256, 385, size=2))
    img = np.ascontiguousarray(background(rng, h, w), np.float32)
    n = 0 if rng.random() < 0.08 else int(rng.integers(1, 16))
    objects = []
    for _ in range(n):
        size = _object_size(rng, h, w)
        margin = 0.15 * size  # centres slightly outside the image: truncated objects
        cx, cy = rng.uniform(-margin, w + margin), rng.uniform(-margin, h + margin)
        objects.append(draw_object(rng, int(rng.integers(1, len(CATEGORIES) + 1)), cx, cy, size))
    annotations = paste_objects(img, objects)
    quality = int(rng.integers(30, 96))
    return _artefacts(rng, img), annotations, quality


def size_bucket(area: float) -> str:
    """COCO's size bucket of an annotation area in pixels: 'small' | 'medium' | 'large'."""
    return "small" if area < SMALL_AREA else "large" if area > LARGE_AREA else "medium"
