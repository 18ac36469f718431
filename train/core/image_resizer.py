"""Image resizers: an image of any size -> the detector's fixed input, plus its true window.

* :class:`FixedShapeResizer` (SSD): stretch to ``M x M``; the window is the whole input.
* :class:`KeepAspectRatioResizer` (Faster R-CNN, R-FCN; paper Sec. 3.3): scale so the shorter
  edge is ``min_dimension`` unless the longer edge would pass ``max_dimension``, then pad at the
  bottom/right to a ``max_dimension`` square. Static shapes batch and export to TFLite; the
  window ``(h / H, w / W)`` says where the image is, in normalised input coordinates, so
  proposals and detections are clipped to it and boxes mapped back to the image.
"""
from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

from edge_runtime.images import keep_aspect_size


class FixedShapeResizer:
    keep_aspect_ratio = False

    def __init__(self, height: int, width: int | None = None):
        self.output_shape = (int(height), int(width or height))

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """The size ``(h, w)`` an image of ``height x width`` pixels gets inside the input."""
        return self.output_shape

    def resize(self, image):
        """``image [h, w, 3]`` float32 -> ``(image [H, W, 3], window [2] float32)``."""
        resized = tf.image.resize(image, self.output_shape)
        return resized, tf.ones([2], tf.float32)

    def resize_numpy(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``[h, w, 3]`` -> ``(uint8 [H, W, 3], window [2])`` with OpenCV (area filter)."""
        h, w = self.output_shape
        return (cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA),
                np.ones(2, np.float32))

    def __repr__(self):
        return f"{type(self).__name__}{self.output_shape}"


class KeepAspectRatioResizer(FixedShapeResizer):
    keep_aspect_ratio = True

    def __init__(self, min_dimension: int, max_dimension: int):
        if not 0 < min_dimension <= max_dimension:
            raise ValueError(f"image_resizer.py: need 0 < min_dimension <= max_dimension, got "
                             f"{min_dimension}, {max_dimension}")
        self.min_dimension, self.max_dimension = int(min_dimension), int(max_dimension)
        super().__init__(max_dimension, max_dimension)

    def scaled_size(self, height, width):
        return keep_aspect_size(height, width, self.min_dimension, self.max_dimension)

    def resize(self, image):
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.minimum(self.min_dimension / tf.reduce_min(shape),
                           self.max_dimension / tf.reduce_max(shape))
        size = tf.clip_by_value(tf.cast(tf.round(shape * scale), tf.int32), 1, self.max_dimension)
        resized = tf.image.resize(image, size)
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, *self.output_shape)
        return padded, tf.cast(size, tf.float32) / float(self.max_dimension)

    def resize_numpy(self, image):
        h, w = self.scaled_size(*image.shape[:2])
        canvas = np.zeros((*self.output_shape, 3), np.uint8)
        canvas[:h, :w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return canvas, np.array([h, w], np.float32) / float(self.max_dimension)

    def __repr__(self):
        return f"{type(self).__name__}({self.min_dimension}, {self.max_dimension})"
