"""edge_runtime/resize.py: the default resize gives the integer reference's pixels.

Why this stands for "the same detections on ARM and x86": ``bilinear_reference`` is numpy
integer arithmetic (8-bit weights from IEEE double positions, one rounding), which every CPU
computes alike; OpenCV's INTER_LINEAR_EXACT promises that arithmetic on every ISA and this test
holds it to it here (benchmarks/pi_check.py runs detect under emulated arm64 when a root and
qemu are at hand). INTER_LINEAR, by contrast, misses the reference on this machine.
"""
from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.__main__ import INTERPOLATIONS, build_parser
from edge_runtime.detector import Detector
from edge_runtime.resize import RESIZERS, bilinear_reference

# (source H, W) -> (output width, height): camera frames to SSD inputs, the bundled dataset's
# sizes, 2x (OpenCV then averages 2x2 blocks), upscaling, one-pixel and tiny edges
CASES = [((480, 640), (256, 256)), ((480, 640), (300, 300)), ((720, 1280), (300, 300)),
         ((321, 322), (256, 256)), ((480, 640), (320, 240)), ((37, 53), (256, 300)),
         ((5, 7), (3, 11)), ((1, 9), (4, 4)), ((9, 1), (3, 5))]


def test_reference_is_hand_checked_integer_arithmetic():
    # a 1x2 row [0, 255] widened to 4: positions -0.25 (edge), 0.25, 0.75, 1.25 (edge);
    # weights 64/256 and 192/256: (64 * 255 * 256 + 2**15) >> 16 = 64, (192 * ...) >> 16 = 191
    row = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    assert bilinear_reference(row, (4, 1))[0, :, 0].tolist() == [0, 64, 191, 255]


@pytest.mark.parametrize("shape,size", CASES)
def test_linear_is_the_integer_reference(shape, size):
    image = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = bilinear_reference(image, size)
    assert ref.shape == (size[1], size[0], 3)
    np.testing.assert_array_equal(RESIZERS["linear"](image, size), ref)
    np.testing.assert_array_equal(RESIZERS["linear_exact"](image, size), ref)


def test_linear_takes_views_and_a_real_frame():
    from benchmarks.frames import dataset_frame
    frame = dataset_frame(480, 640)
    crop = frame[10:400, 7:600]  # not contiguous
    np.testing.assert_array_equal(RESIZERS["linear"](crop, (256, 256)),
                                  bilinear_reference(crop, (256, 256)))
    # INTER_LINEAR rounds its own way (and differently on ARM): what the default avoids
    assert not np.array_equal(RESIZERS["linear_fast"](frame, (300, 300)),
                              bilinear_reference(frame, (300, 300)))


def test_detector_and_cli_name_the_same_resizers():
    assert set(INTERPOLATIONS) == set(RESIZERS) == set(Detector.INTERPOLATIONS)
    parser = build_parser()
    for command in ("detect", "camera"):
        args = parser.parse_args([command, "m.tflite"] + (["x.jpg"] if command == "detect"
                                                          else []))
        assert args.interpolation == "linear"
    assert parser.parse_args(["benchmark", "m.tflite"]).interpolation == "linear"
    assert parser.parse_args(["evaluate", "m.tflite", "--data", "d"]).interpolation == "area"
