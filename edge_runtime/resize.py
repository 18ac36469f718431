"""The ways edge_runtime resizes an RGB frame to a model's input, by name.

Each resizer maps RGB uint8 ``[H, W, 3]`` and ``(width, height)`` to RGB uint8
``[height, width, 3]``, written into ``dst`` when given one of that shape (the model's input
tensor: no copy). Which pixels come out matters beyond accuracy: a Pi should give the
desktop's detections, so the default must compute the same integers on every CPU.

- ``linear``: OpenCV's INTER_LINEAR_EXACT run on RGBA. INTER_LINEAR_EXACT computes its weights
  with software floating point (``cv::softdouble``) and interpolates in fixed point (8-bit
  weights, one rounding at the end), so every ISA's SIMD path gives the same integers
  (:func:`bilinear_reference` is that arithmetic in numpy; tests/test_resize.py holds OpenCV
  to it). Its horizontal pass is much slower on 3 channels than on 4, so the frame goes through
  RGBA (two copies) and comes out with the very pixels of ``linear_exact``, sooner from
  640x480 (from 1280x720 the copy eats the gain; benchmarks/resize_cost.py).
- ``linear_exact``: INTER_LINEAR_EXACT on the 3-channel frame (the default before).
- ``nearest``: INTER_NEAREST_EXACT: integer source offsets, the cheapest, but it costs AP.
- ``linear_fast``: INTER_LINEAR; its SIMD rounding differs between x86 and ARM (one pixel in
  six off by one), which changed detections on a Pi.
- ``area``: INTER_AREA, what training and ``evaluate`` use; float arithmetic, and up to 0.2%
  of the values came out 1 off between x86 and emulated arm64.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np


def _flag(flag: int):
    def resize(image: np.ndarray, size: tuple[int, int], dst=None) -> np.ndarray:
        return cv2.resize(image, size, dst=dst, interpolation=flag)
    return resize


class LinearExactRGBA:
    """INTER_LINEAR_EXACT through RGBA: the same pixels as on RGB (each channel is
    interpolated alone), with OpenCV's vectorised 4-channel pass. The two RGBA images live in
    buffers kept per thread and reused while the sizes stay (allocating them per frame cost
    ~0.05 ms of ~0.25 right after an invoke)."""

    def __init__(self):
        self._local = threading.local()

    def _buffer(self, role: str, shape: tuple) -> np.ndarray:
        buf = getattr(self._local, role, None)
        if buf is None or buf.shape != shape:
            buf = np.empty(shape, np.uint8)
            setattr(self._local, role, buf)
        return buf

    def __call__(self, image: np.ndarray, size: tuple[int, int], dst=None) -> np.ndarray:
        rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA,
                            dst=self._buffer("source", image.shape[:2] + (4,)))
        small = cv2.resize(rgba, size, dst=self._buffer("resized", (size[1], size[0], 4)),
                           interpolation=cv2.INTER_LINEAR_EXACT)
        return cv2.cvtColor(small, cv2.COLOR_RGBA2RGB, dst=dst)


RESIZERS = {
    "linear": LinearExactRGBA(),
    "linear_exact": _flag(cv2.INTER_LINEAR_EXACT),
    "nearest": _flag(cv2.INTER_NEAREST_EXACT),
    "linear_fast": _flag(cv2.INTER_LINEAR),
    "area": _flag(cv2.INTER_AREA),
}


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``dst`` output positions: the first source index ``i0 [dst]``, the second
    ``i1 [dst]`` and the second one's weight in 1/256 ``w1 [dst]`` (int64), as
    INTER_LINEAR_EXACT derives them: pixel centres, ``x = (d + 0.5) * src / dst - 0.5`` in
    IEEE double, weight rounded half to even; outside the image the edge pixel, weight 0."""
    scale = 1.0 / (dst / src)  # OpenCV: softdouble(1) / inv_scale, inv_scale = dst / src
    x = scale * (np.arange(dst, dtype=np.float64) + 0.5) - 0.5
    i0 = np.floor(x).astype(np.int64)
    w1 = np.rint((x - i0) * 256.0).astype(np.int64)
    inside = (i0 >= 0) & (i0 < src - 1)
    w1 = np.where(inside, w1, 0)
    i0 = np.clip(i0, 0, src - 1)
    return i0, np.minimum(i0 + 1, src - 1), w1


def bilinear_reference(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """INTER_LINEAR_EXACT's arithmetic in numpy integers: RGB uint8 ``[H, W, 3]`` ->
    ``[height, width, 3]`` for ``size = (width, height)``. Each output is
    ``(sum of wy * wx * pixel + 2**15) >> 16`` over its 2x2 source pixels, with 8-bit weights
    ``wx``, ``wy`` (pairs summing to 256): integers only, so any CPU gets the same result. Slow
    (a test oracle, not a resizer)."""
    width, height = size
    x0, x1, wx1 = _linear_taps(image.shape[1], width)
    y0, y1, wy1 = _linear_taps(image.shape[0], height)
    p = image.astype(np.int64)
    rows = (256 - wx1)[None, :, None] * p[:, x0] + wx1[None, :, None] * p[:, x1]  # [H, w, C]
    out = (256 - wy1)[:, None, None] * rows[y0] + wy1[:, None, None] * rows[y1]
    return np.clip((out + (1 << 15)) >> 16, 0, 255).astype(np.uint8)

