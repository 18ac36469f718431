"""Synthetic video clips of the bundled dataset's objects, and writers for them (no TensorFlow).

A clip is the "camera" for testing and benchmarking ``edge_runtime.camera``: a few large and
medium objects, drawn exactly as in the training images (``shapes.draw_object``), glide in
straight lines and bounce off the borders (by default each in its own strip, so they do not
occlude each other) over one fixed background. Each object is rasterised
once, so its shape, rotation and colours stay the same in every frame; only its position moves.
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

SIZE_RANGE = (60.0, 110.0)  # pixels across: COCO "medium"/"large", what the models find well
SPEED_RANGE = (1.5, 5.0)  # pixels per frame


def _bounce(start: float, velocity: float, t: int, span: float) -> float:
    """Position after ``t`` frames of motion reflected inside [0, span] (a triangle wave)."""
    if span <= 0:
        return 0.0
    p = (start + velocity * t) % (2 * span)
    return p if p <= span else 2 * span - p


def render_clip(num_frames: int = 48, size: tuple[int, int] = (256, 320), seed: int = 0,
                num_objects: int = 3, categories: tuple[int, ...] | None = None,
                overlap: bool = False, object_size: tuple[float, float] = SIZE_RANGE
                ) -> tuple[list[np.ndarray], list[list[tuple]]]:
    """Renders a clip of ``num_frames`` frames of ``size = (h, w)`` pixels.

    Objects have distinct categories (drawn from ``categories``, default all 8), so an object is
    identified by its category. With ``overlap=False`` each object bounces inside its own
    vertical strip of the frame, so objects do not occlude each other (the clip then tests
    detection, not occlusion; an object wider than its strip sits at the strip's left edge);
    with ``overlap=True`` they roam the whole frame. ``object_size`` is the (min, max) size in
    pixels, capped at 70% of the strip.

    Returns ``(frames, truth)``: ``frames`` a list of RGB uint8 ``[h, w, 3]``; ``truth[t]`` the
    list of ``(category_id, box)`` visible in frame ``t``, ``category_id`` in 1..8 (CATEGORIES)
    and ``box`` float32 ``[4]`` normalised ``[ymin, xmin, ymax, xmax]``.
    """
    h, w = size
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))  # 7919: not a dataset split
    base = np.ascontiguousarray(background(rng, h, w), np.float32)
    pool = np.asarray(categories or range(1, len(CATEGORIES) + 1))
    strip = w if overlap else w / num_objects
    sprites, motion = [], []
    for i, category in enumerate(rng.choice(pool, num_objects, replace=False)):
        obj_size = min(rng.uniform(*object_size), 0.7 * strip, 0.7 * h)
        obj = draw_object(rng, int(category), 0.0, 0.0, obj_size)
        ph, pw = obj.mask.shape
        offset = np.array([0.0 if overlap else i * strip, 0.0])
        span = np.maximum([strip - pw, h - ph], 0)  # top-left corner range: object stays inside
        start = rng.uniform(0, 1, 2) * span
        speed, angle = rng.uniform(*SPEED_RANGE), rng.uniform(0, 2 * np.pi)
        sprites.append(obj)
        motion.append((start, speed * np.array([np.cos(angle), np.sin(angle)]), span, offset))
    frames, truth = [], []
    for t in range(num_frames):
        img = base.copy()
        moved = []
        for obj, (p0, v, span, offset) in zip(sprites, motion):
            x, y = (_bounce(p0[k], v[k], t, span[k]) + offset[k] for k in (0, 1))
            moved.append(DrawnObject(obj.category, int(round(x)), int(round(y)), obj.patch,
                                     obj.mask))
        annotations = paste_objects(img, moved)
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
