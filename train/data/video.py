"""Synthetic video clips of the bundled dataset's objects, and writers for them (no TensorFlow).

A clip is the "camera" for testing and benchmarking ``edge_runtime.camera``: a few large and
medium objects, drawn exactly as in the training images (``shapes.draw_object``), glide in
straight lines and bounce off the borders and off each other (so they rarely occlude one
another) over one fixed background. Each object is rasterised once, so its shape, rotation and
colours stay the same in every frame; only its position moves.
Ground truth comes from ``synthetic.paste_objects``: boxes are tight on the *visible* pixels, and
objects hidden behind others (more than 70%) are not annotated, as in the dataset.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from train.data.backgrounds import background
from train.data.shapes import CATEGORIES, DrawnObject, draw_object
from train.data.synthetic import paste_objects

SIZE_RANGE = (60.0, 110.0)  # pixels across: COCO "medium"/"large" objects
SPEED_RANGE = (1.5, 5.0)  # pixels per frame


def _trajectories(rng: np.random.Generator, extents: np.ndarray, h: int, w: int,
                  num_frames: int) -> np.ndarray:
    """Top-left corners, float ``[num_frames, n, 2]`` (x, y), of ``n`` boxes of ``extents
    [n, 2]`` (w, h) moving in straight lines and bouncing off the borders and off each other
    (elastic: two boxes that touch exchange their velocities along the axis they meet on)."""
    n = len(extents)
    span = np.maximum(np.array([w, h]) - extents, 0)  # top-left range that keeps a box inside

    def touching(p, i, j):
        return bool(np.all((p[i] < p[j] + extents[j]) & (p[j] < p[i] + extents[i])))

    pos = np.zeros((n, 2))
    for i in range(n):  # a start where no two overlap, if a few tries find one
        for _ in range(100):
            pos[i] = rng.uniform(0, 1, 2) * span[i]
            if not any(touching(pos, i, j) for j in range(i)):
                break
    angle = rng.uniform(0, 2 * np.pi, n)
    vel = rng.uniform(*SPEED_RANGE, (n, 1)) * np.stack([np.cos(angle), np.sin(angle)], 1)
    out = []
    for _ in range(num_frames):
        out.append(pos.copy())
        pos += vel
        vel[(pos < 0) | (pos > span)] *= -1
        pos = np.clip(pos, 0, span)
        for i in range(n):
            for j in range(i + 1, n):
                if touching(pos, i, j):
                    d = (pos[j] + extents[j] / 2) - (pos[i] + extents[i] / 2)  # centre to centre
                    k = int(np.argmin((extents[i] + extents[j]) / 2 - np.abs(d)))  # least depth
                    if (vel[j, k] - vel[i, k]) * d[k] < 0:  # approaching: exchange, so they part
                        vel[i, k], vel[j, k] = vel[j, k], vel[i, k]
    return np.array(out)


def render_clip(num_frames: int = 48, size: tuple[int, int] = (256, 320), seed: int = 0,
                num_objects: int = 3, categories: tuple[int, ...] | None = None,
                object_size: tuple[float, float] = SIZE_RANGE
                ) -> tuple[list[np.ndarray], list[list[tuple]]]:
    """Renders a clip of ``num_frames`` frames of ``size = (h, w)`` pixels.

    Objects have distinct categories (drawn from ``categories``, default all 8), so an object is
    identified by its category across the clip; ``object_size`` is the (min, max) size in
    pixels (at most 60% of the frame's shorter side, so that a rotated object fits).

    Returns ``(frames, truth)``: ``frames`` a list of RGB uint8 ``[h, w, 3]``; ``truth[t]`` the
    list of ``(category_id, box)`` visible in frame ``t``, ``category_id`` in 1..8 (CATEGORIES)
    and ``box`` float32 ``[4]`` normalised ``[ymin, xmin, ymax, xmax]``.
    """
    h, w = size
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))  # 7919: not a dataset split
    base = np.ascontiguousarray(background(rng, h, w), np.float32)
    pool = np.asarray(categories or range(1, len(CATEGORIES) + 1))
    sprites = [draw_object(rng, int(c), 0.0, 0.0,
                           min(rng.uniform(*object_size), 0.6 * min(h, w)))
               for c in rng.choice(pool, num_objects, replace=False)]
    extents = np.array([obj.mask.shape[::-1] for obj in sprites], np.float64)
    corners = np.round(_trajectories(rng, extents, h, w, num_frames)).astype(int)
    frames, truth = [], []
    for xy in corners:
        img = base.copy()
        annotations = paste_objects(img, [DrawnObject(o.category, int(x), int(y), o.patch, o.mask)
                                          for o, (x, y) in zip(sprites, xy)])
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
        truth.append([(a.category_id, np.array([a.bbox[1] / h, a.bbox[0] / w,
                                                (a.bbox[1] + a.bbox[3]) / h,
                                                (a.bbox[0] + a.bbox[2]) / w], np.float32))
                      for a in annotations])
    return frames, truth


def write_video(frames: list[np.ndarray], path: str, fps: float = 15) -> str:
    """Writes RGB uint8 ``[h, w, 3]`` frames as an MPEG-4 (``mp4v``) ``.mp4``/``.avi`` file."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open a video writer (fourcc mp4v, {w}x{h} at "
                      f"{fps} fps); check the extension (.mp4/.avi) and that OpenCV has FFMPEG")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return str(path)


def write_y4m(frames: list[np.ndarray], path: str, fps: int = 15) -> str:
    """Writes RGB uint8 ``[h, w, 3]`` frames (h, w even) as raw YUV4MPEG2 4:2:0, a lossless
    format that ffmpeg, GStreamer and most codecs' test tools read directly."""
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"{path}: YUV 4:2:0 needs an even width and height, got {w}x{h}")
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            f.write(b"FRAME\n")  # then the Y, U, V planes: [h * w], [h/2 * w/2], [h/2 * w/2]
            f.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    os.replace(tmp, path)
    return str(path)
