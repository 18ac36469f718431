"""The frame the benchmark scripts time: a rendered image of the bundled dataset at camera size.

The fused post-processing op's work depends on how many boxes pass its score threshold, so the
benchmarks feed a frame with the objects the detectors were trained on (the results in
benchmarks/results were measured on exactly this frame).
"""
from __future__ import annotations

import numpy as np


def dataset_frame(height: int = 480, width: int = 640) -> np.ndarray:
    """RGB uint8 [height, width, 3]: image 0 of the bundled dataset's val split (seed 0)."""
    import cv2

    from train.data.synthetic import render_image
    image = render_image(0, "val", 0)[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
