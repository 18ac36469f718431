"""Converter settings per ``--quantize`` mode, and the calibration (representative) images.

    float32  no quantization; float input, normalised
    float16  weights stored as float16 (about half the size), float compute on CPUs
    dynamic  int8 weights, activations quantized on the fly; float input
    int8     full-integer post-training quantization calibrated on training images;
             uint8 input (raw camera pixels, the normalisation is inside the graph), float
             outputs from the post-processing op
    qat      int8 as above after quantization-aware fine-tuning (convert/qat.py)
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from convert.sources import ExportError

MODES = ("float32", "float16", "dynamic", "int8", "qat")
INTEGER_MODES = ("int8", "qat")
GRANULARITIES = ("per-channel", "per-tensor")


def calibration_images(data: str, split: str, count: int, resizer, seed: int = 0):
    """``count`` images of ``data`` (``split``) as the model's input, uint8 ``[H, W, 3]``,
    drawn at random (seeded). ``resizer``: the model's train.core.image_resizer (SSD: stretched
    to M x M; two-stage: aspect kept, padded). Unreadable images are skipped; none readable is
    an error."""
    from train.data import DataError, load_dataset, load_image

    if count < 1:
        raise ExportError(f"--calibration-images must be at least 1, got {count}")
    try:
        dataset = load_dataset(data, split)
    except DataError as e:
        raise ExportError(f"representative dataset: {e}") from None
    if not dataset.examples:
        raise ExportError(f"representative dataset {data} ({split}) has no images")
    order = np.random.default_rng(seed).permutation(len(dataset.examples))
    images, errors = [], []
    for i in order:
        ex = dataset.examples[int(i)]
        try:
            image = (load_image(data=ex.encoded, name=ex.file_name) if ex.encoded is not None
                     else load_image(ex.file_name))
        except DataError as e:
            errors.append(str(e))
            continue
        images.append(resizer.resize_numpy(image)[0])
        if len(images) == count:
            break
    if not images:
        raise ExportError(f"representative dataset {data} ({split}): no readable image "
                          f"({errors[0] if errors else 'none listed'})")
    return np.stack(images)


def representative_dataset(images: np.ndarray, pixel_input: bool, mean=127.5, std=127.5):
    """The converter's calibration generator: one ``[1, M, M, 3]`` float32 input at a time.

    The first image gets one black and one white pixel so the uint8 input is calibrated to
    exactly 0..255 (scale 1, zero point 0): raw pixels go in unchanged.
    """
    def generate():
        for i, image in enumerate(images):
            x = image.astype(np.float32)
            if i == 0:
                x[0, 0], x[0, 1] = 0.0, 255.0
            yield [(x if pixel_input else (x - mean) / std)[None]]
    return generate


def make_converter(concrete_fn, trackable, mode: str, images=None, pixel_input=False,
                   granularity: str = "per-channel"):
    """A TFLiteConverter configured for ``mode`` (see the module docstring).

    ``granularity`` of the int8 weights: per-channel (TFLite's default, most accurate) or
    per-tensor: one scale per weight tensor instead of a float32 scale and an int64 zero point
    per output channel -- for a small model (the 0.5-wide demo: ~28k channels for ~0.9M
    weights) that overhead is a quarter of the file; per-tensor is also what older NPU
    delegates accept.
    """
    if granularity not in GRANULARITIES:
        raise ExportError(f"unknown --granularity {granularity!r}; choose from "
                          f"{', '.join(GRANULARITIES)}")
    if mode not in MODES:
        raise ExportError(f"unknown --quantize {mode!r}; choose from {', '.join(MODES)}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], trackable)
    # Builtin ops only: a model that needs Flex (Select TF) ops does not run on LiteRT as
    # shipped for a Pi or phone, so conversion fails and we report it instead.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in INTEGER_MODES:
        if images is None or not len(images):
            raise ExportError(f"--quantize {mode} needs calibration images (--data)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(images, pixel_input)
        # int8 kernels where they exist, float kernels (e.g. the post-processing op's float
        # outputs) elsewhere.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.uint8
    if mode != "float32" and granularity == "per-tensor":
        converter._experimental_disable_per_channel = True  # no public switch as of TF 2.21
    return converter


def convert_model(converter, float_ops=()) -> bytes:
    """``converter.convert()``, except that an integer converter leaves the TFLite operators
    named in ``float_ops`` (e.g. "BATCH_MATMUL") in float, with quantize/dequantize around them.

    TFLite's public API has no per-op switch; this runs its own two steps (calibrate, then the
    MLIR quantizer, which takes a denylist) with the settings ``convert()`` would use.
    """
    if not float_ops or converter.representative_dataset is None:
        return converter.convert()
    from tensorflow.lite.python.convert import mlir_quantize  # TF 2.21 (pinned in setup.py)

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    return mlir_quantize(calibrated, disable_per_channel=converter._experimental_disable_per_channel,
                         input_data_type=converter.inference_input_type or tf.float32,
                         output_data_type=tf.float32, denylisted_ops=list(float_ops))
