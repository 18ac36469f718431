"""Image decoding: edge_runtime's decoder (one copy, TensorFlow-free), under train's names.

Kept only for the modules that import ``train.data.images``; new code imports
``edge_runtime.images`` (``read_image``) or ``train.data`` (``load_image``).
"""
from edge_runtime.images import DataError, read_image as load_image, to_rgb_uint8

__all__ = ["DataError", "load_image", "to_rgb_uint8"]
