"""Image files -> RGB uint8 [H, W, 3] with OpenCV, with errors that name the file.

The one image decoder of the project: ``train`` reads its training and evaluation images with it
too, so a model is scored on the edge on exactly the pixels it was trained and scored on.
``IMREAD_UNCHANGED`` keeps the stored pixel grid (no EXIF rotation), which is the grid COCO
boxes refer to, and lets us handle grey, grey+alpha, RGBA, 16-bit and float files explicitly
instead of letting the codec guess.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["DataError", "read_image", "to_rgb_uint8"]


class DataError(ValueError):
    """A data file (annotations, image, TFRecord) is missing, unreadable or malformed.

    The message always names the file and the problem. ``train.data.DataError`` is this class.
    """


def keep_aspect_size(height: int, width: int, min_dimension: int,
                     max_dimension: int) -> tuple[int, int]:
    """The size ``(h, w)`` an image of ``height x width`` gets when scaled so its shorter edge is
    ``min_dimension`` unless its longer edge would pass ``max_dimension`` (the two-stage
    resizer, train/core/image_resizer.py, and edge_runtime's letterbox share this rule)."""
    scale = min(min_dimension / min(height, width), max_dimension / max(height, width))
    return (min(max(int(round(height * scale)), 1), max_dimension),
            min(max(int(round(width * scale)), 1), max_dimension))


def to_rgb_uint8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Converts a decoded OpenCV array (BGR order, any depth, 1-4 channels) to RGB uint8."""
    if img.dtype == np.uint16:
        # 0..65535 -> 0..255, rounded (65535 / 257 = 255)
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        scale = 255.0 if float(np.nanmax(img, initial=0.0)) <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img) * scale + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{name}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    channels = img.shape[2]
    if channels in (1, 2):  # grey, grey + alpha: alpha dropped
        return np.ascontiguousarray(np.repeat(img[..., :1], 3, axis=2))
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:  # alpha dropped, not blended: boxes refer to the stored colour pixels
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise DataError(f"{name}: unsupported image with {channels} channels")


def read_image(path: str | None = None, data: bytes | None = None, name: str = "") -> np.ndarray:
    """Decodes an image file (``path``) or encoded bytes (``data``) to RGB uint8 [H, W, 3].

    ``name`` labels ``data`` in error messages. Raises DataError for a missing, unreadable,
    empty, corrupt or truncated image.
    """
    if (path is None) == (data is None):
        raise ValueError("read_image needs exactly one of path= or data=")
    name = name or path or "<image bytes>"
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise DataError(f"{path}: image file not found") from None
        except OSError as e:
            raise DataError(f"{path}: cannot read image file ({e.strerror or e})") from None
    if not data:
        raise DataError(f"{name}: image file is empty")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise DataError(f"{name}: cannot decode image ({str(e).strip().splitlines()[-1]})") from None
    if img is None or img.size == 0:
        raise DataError(f"{name}: cannot decode image (corrupt, truncated or unsupported format, "
                        f"{len(data)} bytes)")
    return to_rgb_uint8(img, name)
