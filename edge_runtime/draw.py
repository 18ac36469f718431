"""Draws detections on images (OpenCV): boxes, ``label score`` tags and a status line."""
from __future__ import annotations

import cv2
import numpy as np

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def color(c: int) -> tuple[int, int, int]:
    """An RGB colour per class index, stable across frames."""
    return _PALETTE[int(c) % len(_PALETTE)]


def draw_detections(image: np.ndarray, detections, label_fn, score_threshold: float = 0.0
                    ) -> np.ndarray:
    """Returns a copy of RGB ``image [H, W, 3]`` with the detections above the threshold."""
    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    for (x0, y0, x1, y1), c, s in zip(detections.pixel_boxes(h, w), detections.classes,
                                      detections.scores):
        if s < score_threshold:
            continue
        p0, p1 = (int(x0), int(y0)), (int(x1), int(y1))
        rgb = color(c)
        cv2.rectangle(out, p0, p1, rgb, thickness)
        text = f"{label_fn(int(c))} {s:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        ty = max(p0[1], th + base + 2)
        cv2.rectangle(out, (p0[0], ty - th - base - 2), (p0[0] + tw + 2, ty), rgb, -1)
        cv2.putText(out, text, (p0[0] + 1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_status(image: np.ndarray, text: str) -> np.ndarray:
    """Writes ``text`` (e.g. FPS and latency) in the top-left corner, in place."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(image, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image
