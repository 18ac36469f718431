"""Image files -> RGB uint8 [H, W, 3] with OpenCV, with errors that name the file.

OpenCV's ``IMREAD_COLOR`` already turns grey, grey + alpha, RGBA (alpha dropped) and 16-bit
files into 8-bit colour; ``IMREAD_IGNORE_ORIENTATION`` keeps the stored pixel grid (no EXIF
rotation), which is the grid COCO boxes refer to -- the same pixels ``train`` decodes.
"""
from __future__ import annotations

import cv2
import numpy as np

_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class DataError(ValueError):
    """An image or annotation file is missing, unreadable or malformed; the message names it."""


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
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS)
    except cv2.error as e:
        raise DataError(f"{name}: cannot decode image ({str(e).strip().splitlines()[-1]})") from None
    if bgr is None or bgr.size == 0:
        raise DataError(f"{name}: cannot decode image (corrupt, truncated or unsupported format, "
                        f"{len(data)} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
