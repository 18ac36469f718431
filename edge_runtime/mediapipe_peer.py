"""MediaPipe Tasks' ``ObjectDetector`` on an exported model, as a user of that API runs it.

The peer that the standard metadata (convert/tflite_metadata.py) is written for: it reads the
labels, normalisation and output meaning from the model alone. Its detections come back as
:class:`edge_runtime.detector.Detections`, so they can be paired with edge_runtime's
(tests/test_mediapipe.py, benchmarks/mediapipe_peer.py). MediaPipe is optional: ``pip install
mediapipe`` (setup.py's ``mediapipe`` extra; beside TensorFlow the Makefile installs it with
``--no-deps``, see convert/tflite_metadata.py).

What MediaPipe does that edge_runtime does not: it resizes the whole image to the input with
its own bilinear sampler (no aspect-kept letterbox for two-stage models: it stretches), rounds
boxes to whole pixels, and takes its CPU thread count from its own defaults.
"""
from __future__ import annotations

import numpy as np

from edge_runtime.detector import Detections


def available() -> str | None:
    """MediaPipe's version, or None if it does not import."""
    try:
        import mediapipe
    except ImportError:
        return None
    return mediapipe.__version__


class MediaPipeDetector:
    """``ObjectDetector.create_from_options`` on ``model_path`` (IMAGE mode, every detection
    at or above ``score_threshold``); ``detect(rgb)`` -> Detections with class indices into
    the model's own label file (``labels``)."""

    def __init__(self, model_path: str, labels: list[str], score_threshold: float = 0.0):
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        self.labels = {name: i for i, name in enumerate(labels)}
        options = vision.ObjectDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE, score_threshold=score_threshold,
            max_results=-1)
        try:
            self._detector = vision.ObjectDetector.create_from_options(options)
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"{model_path}: MediaPipe's ObjectDetector refuses it: "
                             f"{' '.join(str(e).split())}") from None

    def raw(self, rgb: np.ndarray):
        """MediaPipe's own result for an RGB uint8 image."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                               data=np.ascontiguousarray(rgb))
        return self._detector.detect(image)

    def detect(self, rgb: np.ndarray) -> Detections:
        h, w = rgb.shape[:2]
        boxes, classes, scores = [], [], []
        for d in self.raw(rgb).detections:
            b, c = d.bounding_box, d.categories[0]
            boxes.append([b.origin_y / h, b.origin_x / w, (b.origin_y + b.height) / h,
                          (b.origin_x + b.width) / w])
            classes.append(self.labels.get(c.category_name, -1) if c.index is None else c.index)
            scores.append(c.score)
        order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
        return Detections(np.asarray(boxes, np.float32).reshape(-1, 4)[order].clip(0, 1),
                          np.asarray(classes, np.int32)[order],
                          np.asarray(scores, np.float32)[order])

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pair(a: Detections, b: Detections, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one pairs ``(i, j, IoU)`` of same-class detections, best IoU first."""
    if not len(a) or not len(b):
        return []
    y0 = np.maximum(a.boxes[:, None, 0], b.boxes[None, :, 0])
    x0 = np.maximum(a.boxes[:, None, 1], b.boxes[None, :, 1])
    y1 = np.minimum(a.boxes[:, None, 2], b.boxes[None, :, 2])
    x1 = np.minimum(a.boxes[:, None, 3], b.boxes[None, :, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda d: (d.boxes[:, 2] - d.boxes[:, 0]) * (d.boxes[:, 3] - d.boxes[:, 1])  # noqa: E731
    iou = inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)
    iou = np.where(a.classes[:, None] == b.classes[None, :], iou, 0.0)
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < iou_threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j, float(iou[i, j])))
    return pairs
