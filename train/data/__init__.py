"""Detection data: readers (COCO JSON, TF OD API TFRecord), image decoding, the synthetic
dataset generator. Importing this package does not import TensorFlow (tfrecord.py and the
input pipeline do, when used)."""
import os

# Legacy Keras must be chosen before TensorFlow is imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# DataError and the image decoder are edge_runtime's (one copy, TensorFlow-free): an
# ``except DataError`` catches the errors of both.
from edge_runtime.images import DataError, read_image as load_image  # noqa: E402
from train.data.dataset import (  # noqa: E402
    DetectionDataset, Example, load_dataset, log_warnings, summarize_warnings)
from train.data.shapes import CATEGORIES  # noqa: E402


def generate(out: str, size: str, seed: int = 0, workers: int | None = None, **kwargs):
    """Writes the synthetic COCO-format dataset (see train.data.generate.generate)."""
    from train.data.generate import generate as _generate
    return _generate(out, size, seed, workers, **kwargs)


def write_tfrecord(dataset, path: str, **kwargs):
    """Writes a dataset as a TF OD API TFRecord (see train.data.tfrecord.write_tfrecord)."""
    from train.data.tfrecord import write_tfrecord as _write
    return _write(dataset, path, **kwargs)


__all__ = ["CATEGORIES", "DataError", "DetectionDataset", "Example", "generate", "load_dataset",
           "load_image", "log_warnings", "summarize_warnings", "write_tfrecord"]
