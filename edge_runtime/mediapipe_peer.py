"""MediaPipe Tasks' ``ObjectDetector`` on an exported model, as a user of that API runs it.

The peer that the standard metadata (convert/tflite_metadata.py) is written for: it reads the
labels, normalisation and output meaning from the model alone. Its detections come back as
:class:`edge_runtime.detector.Detections`, so they can be paired with edge_runtime's
(tests/test_mediapipe.py, benchmarks/mediapipe_peer.py). MediaPipe is optional: ``pip install
mediapipe`` (setup.py's ``mediapipe`` extra; beside TensorFlow the Makefile installs it with
``--no-deps``, see convert/tflite_metadata.py).

What MediaPipe does that edge_runtime does not: it resizes the whole image to the input with
its own bilinear sampler (no aspect-kept letterbox for two-stage models: it stretches), rounds
boxes to whole pixels, merges detections of one box for several classes into one detection with
several categories, and takes its CPU thread count from its own defaults.
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
            b = d.bounding_box
            for c in d.categories:  # one box kept for several classes comes back once
                boxes.append([b.origin_y / h, b.origin_x / w, (b.origin_y + b.height) / h,
                              (b.origin_x + b.width) / w])
                classes.append(self.labels.get(c.category_name, -1) if c.index is None
                               else c.index)
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


def as_mediapipe_reports(outputs: dict, height: int, width: int) -> set:
    """The detections MediaPipe reports for a model's raw four outputs on an image of the
    input's size, each as ``(origin_x, origin_y, width, height, score)``: its pixel boxes are
    ``max(0, int(xmin * W))`` and ``int((xmax - xmin) * W)`` of the unclipped box (so a box
    reaching past the left edge keeps its width and shifts right), scores as they are. With
    these, MediaPipe's detections of our exports are reproduced exactly (tests/test_convert*.py)."""
    n = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
    rows = np.asarray(outputs["detection_boxes"], np.float32).reshape(-1, 4)[:n]
    scores = np.asarray(outputs["detection_scores"], np.float32).reshape(-1)[:n]
    out = set()
    for (y0, x0, y1, x1), s in zip(rows.tolist(), scores.tolist()):
        out.add((max(int(x0 * width), 0), max(int(y0 * height), 0), int((x1 - x0) * width),
                 int((y1 - y0) * height), round(s, 5)))
    return out


def reports(peer: MediaPipeDetector, rgb: np.ndarray) -> set:
    """MediaPipe's detections of ``rgb`` in the form of :func:`as_mediapipe_reports`."""
    return {(d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width,
             d.bounding_box.height, round(c.score, 5))
            for d in peer.raw(rgb).detections for c in d.categories}
