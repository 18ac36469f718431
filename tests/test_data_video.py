"""Synthetic clips (train/data/video.py): determinism, smooth motion, truth inside the frame,
and the two writers (YUV4MPEG2 byte layout, an mp4 that OpenCV reads back)."""
import os

import cv2
import numpy as np
import pytest

from train.data.video import SPEED_RANGE, render_clip, write_video, write_y4m


def test_clip_is_deterministic_and_well_formed():
    frames, truth = render_clip(12, size=(128, 160), seed=3)
    again, truth2 = render_clip(12, size=(128, 160), seed=3)
    other, _ = render_clip(12, size=(128, 160), seed=4)
    assert len(frames) == len(truth) == 12
    assert all(f.shape == (128, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    assert all(np.array_equal(a[1], b[1]) for ta, tb in zip(truth, truth2) for a, b in zip(ta, tb))
    assert not np.array_equal(frames[0], other[0])
    categories = {c for t in truth for c, _ in t}
    assert len(categories) == 3 and categories <= set(range(1, 9))  # distinct categories
    for t in truth:
        for _, box in t:
            assert box.dtype == np.float32 and box.shape == (4,)
            assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1


def test_one_object_moves_smoothly_with_a_constant_box():
    """Alone and always inside the frame, the object's box keeps its size in pixels and its
    centre moves at most the top speed (+1 px of rounding) per frame."""
    h, w = 200, 240
    _, truth = render_clip(40, size=(h, w), seed=5, num_objects=1, object_size=(50, 60))
    assert all(len(t) == 1 for t in truth)
    px = np.array([t[0][1] for t in truth]) * [h, w, h, w]
    sizes = np.round(px[:, 2:] - px[:, :2])
    assert (sizes == sizes[0]).all()
    centres = (px[:, :2] + px[:, 2:]) / 2
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() <= SPEED_RANGE[1] + 1.5 and steps.sum() > 20  # it does move


def test_y4m_header_and_planes(tmp_path):
    frames, _ = render_clip(3, size=(64, 80), seed=1, num_objects=1, object_size=(20, 30))
    path = str(tmp_path / "clip.y4m")
    write_y4m(frames, path, fps=25)
    data = open(path, "rb").read()
    header = b"YUV4MPEG2 W80 H64 F25:1 Ip A1:1 C420jpeg\n"
    frame_bytes = 64 * 80 * 3 // 2  # Y [64, 80] + U, V [32, 40]
    assert data.startswith(header)
    assert len(data) == len(header) + 3 * (len(b"FRAME\n") + frame_bytes)
    second = len(header) + (6 + frame_bytes)
    assert data[second:second + 6] == b"FRAME\n"
    yuv = np.frombuffer(data[second + 6:second + 6 + frame_bytes], np.uint8).reshape(96, 80)
    assert np.array_equal(yuv, cv2.cvtColor(frames[1], cv2.COLOR_RGB2YUV_I420))
    with pytest.raises(ValueError, match="even"):
        write_y4m([np.zeros((63, 80, 3), np.uint8)], str(tmp_path / "odd.y4m"))


def test_mp4_reads_back(tmp_path):
    frames, _ = render_clip(10, size=(96, 128), seed=2, num_objects=2, object_size=(30, 40))
    path = write_video(frames, str(tmp_path / "clip.mp4"), fps=15)
    cap = cv2.VideoCapture(path)
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(15)
    read = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        read.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(read) == 10 and read[0].shape == (96, 128, 3)
    # lossy, but the same pictures in the same order (and not BGR-swapped)
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(read, frames)]
    swapped = [np.abs(a.astype(int) - b[..., ::-1]).mean() for a, b in zip(read, frames)]
    assert max(errors) < 12 and np.mean(errors) < np.mean(swapped)
    with pytest.raises(OSError, match="cannot open a video writer"):
        write_video(frames, os.path.join(str(tmp_path), "no_such_dir", "x.mp4"))
