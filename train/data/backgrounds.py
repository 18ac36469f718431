"""Backgrounds for the synthetic dataset: procedural textures and crops of real photographs.

The photographs are the public-domain images bundled inside scikit-image (``skimage.data``);
only those that load offline are used, and they are loaded once per process.
"""
from __future__ import annotations

import cv2
import numpy as np

from train.data.shapes import random_color

# skimage.data images shipped inside the wheel (the others need a download: never used).
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins",
               "immunohistochemistry", "hubble_deep_field", "moon", "page", "text", "grass", "gravel", "brick", "cell",
               "retina", "colorwheel", "clock", "stereo_motorcycle")
_PHOTOS: list[np.ndarray] | None = None


def photos() -> list[np.ndarray]:
    """The bundled photographs as uint8 [H, W, 3] RGB arrays (cached per process)."""
    global _PHOTOS
    if _PHOTOS is None:
        import skimage.data

        loaded = []
        for name in PHOTO_NAMES:
            try:
                img = getattr(skimage.data, name)()
            except Exception:  # noqa: BLE001 - an image that needs a download is simply not used
                continue
            if isinstance(img, tuple):  # stereo pairs: take the left view
                img = img[0]
            img = np.asarray(img)
            if img.dtype != np.uint8:
                continue
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            loaded.append(np.ascontiguousarray(img[..., :3]))
        _PHOTOS = loaded
    return _PHOTOS


def _photo(rng, h, w):
    pool = photos()
    if not pool:
        return _smooth_noise(rng, h, w)
    src = pool[rng.integers(len(pool))]
    sh, sw = src.shape[:2]
    # random crop with the target aspect, 25%..100% of the largest one that fits, then rescale
    frac = rng.uniform(0.25, 1.0)
    ch = int(min(sh, sw * h / w) * frac)
    cw = max(8, int(ch * w / h))
    ch = max(8, ch)
    y, x = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    img = cv2.resize(src[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img.astype(np.float32)
    if rng.random() < 0.3:  # tint, so grey photos are not always grey
        img = img * (random_color(rng) / 255.0 * 0.6 + 0.4)
    return img


def _smooth_noise(rng, h, w):
    out = np.zeros((h, w, 3), np.float32)
    for cells in rng.choice([2, 4, 8, 16, 32], size=3, replace=False):
        coarse = rng.uniform(-1, 1, (int(cells), int(cells), 3)).astype(np.float32)
        out += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(20, 70)
    return out + random_color(rng)


def _stripes(rng, h, w, checker=False):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 60)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    if checker:
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        t = (np.floor(u / period) + np.floor(v / period)) % 2
    elif rng.random() < 0.5:
        t = 0.5 + 0.5 * np.sin(u * 2 * np.pi / period)
    else:
        t = np.floor(u / period) % 2
    c1, c2 = random_color(rng), random_color(rng)
    return c1 + t[..., None] * (c2 - c1)


def _gradient(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        t = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    c1, c2 = random_color(rng), random_color(rng)
    return c1 + t[..., None] * (c2 - c1)


def _blobs(rng, h, w):
    """Blurred ellipses: shape-like clutter that is *not* an object."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = random_color(rng)
    for _ in range(int(rng.integers(5, 25))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(5, w // 3)), int(rng.integers(5, h // 3)))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    random_color(rng).tolist(), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(1, 6))


_KINDS = {"photo": 0.45, "noise": 0.12, "stripes": 0.09, "checker": 0.07, "gradient": 0.12,
          "blobs": 0.15}


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random background, float32 [h, w, 3] RGB (roughly 0..255, not yet clipped)."""
    kind = rng.choice(list(_KINDS), p=list(_KINDS.values()))
    if kind == "photo":
        return _photo(rng, h, w)
    if kind == "noise":
        return _smooth_noise(rng, h, w)
    if kind in ("stripes", "checker"):
        return _stripes(rng, h, w, checker=kind == "checker")
    if kind == "gradient":
        return _gradient(rng, h, w)
    return _blobs(rng, h, w)
