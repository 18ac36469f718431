"""edge_runtime.camera: a rendered clip as the camera; every frame processed and its objects
found; frames dropped (never queued) when a paced source outruns inference; bad sources and
lost streams end with a clear CameraError (CLI: exit code 2)."""
from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest

from edge_runtime import Detector
from edge_runtime import camera
from edge_runtime.__main__ import main
from edge_runtime.camera import CameraError, run_camera
from train.data.video import render_clip, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
NUM_FRAMES, FPS = 40, 30


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 40-frame, 30 fps mp4 of two large objects (100-130 px in 320 x 256, the sizes this
    small model finds reliably) and its per-frame truth."""
    frames, truth = render_clip(NUM_FRAMES, size=(256, 320), seed=1, num_objects=2,
                                object_size=(100, 130))
    path = write_video(frames, str(tmp_path_factory.mktemp("clip") / "clip.mp4"), fps=FPS)
    return path, truth


@pytest.fixture(scope="module")
def detector():
    return Detector(MODEL, num_threads=1)


class SlowDetector:
    """The real detector, 50 ms slower per invoke: slower than a 30 fps source."""

    def __init__(self, detector, delay=0.05):
        self.detector, self.delay = detector, delay

    def invoke(self, tensor=None):
        time.sleep(self.delay)
        self.detector.invoke(tensor)

    def __getattr__(self, name):
        return getattr(self.detector, name)


def _iou(a, b):
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _frame_count(path):
    cap, n = cv2.VideoCapture(path), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_file_source_processes_every_frame_and_finds_the_objects(clip, detector, tmp_path):
    path, truth = clip
    seen = {}
    out, js = str(tmp_path / "annotated.mp4"), str(tmp_path / "latency.json")
    summary = run_camera(detector, path, out_video=out, json_path=js, score_threshold=0.3,
                         progress=False, callback=lambda i, rgb, d: seen.setdefault(i, d))
    assert summary["frames_processed"] == summary["frames_captured"] == NUM_FRAMES
    assert summary["frames_dropped"] == 0 and summary["ended"] == "end of source"
    assert sorted(seen) == list(range(NUM_FRAMES))
    assert _frame_count(out) == NUM_FRAMES and not os.path.exists(out.replace(".mp4",
                                                                             ".partial.mp4"))
    report = json.load(open(js))
    assert report["summary"] == summary
    records = report["frames"]
    assert [r["frame"] for r in records] == list(range(NUM_FRAMES))
    assert all(0 < r["invoke_ms"] <= r["latency_ms"] for r in records)
    assert [r["detections"] for r in records] == [len(seen[i]) for i in range(NUM_FRAMES)]
    # each object (category ids are distinct in a clip) is found in most of its frames
    found, visible = {}, {}
    for i, objects in enumerate(truth):
        d = seen[i]
        for category, box in objects:
            visible[category] = visible.get(category, 0) + 1
            found[category] = found.get(category, 0) + any(
                c + 1 == category and s >= 0.3 and _iou(b, box) >= 0.5
                for b, c, s in zip(d.boxes, d.classes, d.scores))
    assert len(visible) == 2
    assert all(found.get(c, 0) >= 0.7 * n for c, n in visible.items()), (found, visible)


def test_slow_inference_on_a_file_still_processes_every_frame(clip, detector):
    summary = run_camera(SlowDetector(detector, 0.02), clip[0], max_frames=8, progress=False)
    assert summary["frames_processed"] == 8 and summary["frames_dropped"] == 0
    assert summary["invoke_ms_median"] >= 20


def test_realtime_source_drops_frames_instead_of_queueing(clip, detector, tmp_path):
    """30 fps pacing, ~50 ms inference: about every other frame is dropped; the one slot
    between capture and inference never holds more than one frame."""
    indices = []
    out = str(tmp_path / "rt.mp4")
    summary = run_camera(SlowDetector(detector), clip[0], realtime=True, out_video=out,
                         progress=False, callback=lambda i, rgb, d: indices.append(i))
    assert summary["frames_captured"] == NUM_FRAMES
    assert summary["frames_dropped"] > 0
    assert summary["frames_processed"] + summary["frames_dropped"] == NUM_FRAMES
    assert summary["frames_buffered_max"] == 1
    assert indices == sorted(indices) and len(indices) == summary["frames_processed"]
    assert indices[-1] == NUM_FRAMES - 1  # the last frame is not lost at the end of the video
    # the annotated video repeats frames for the dropped ones: it keeps the source's length
    assert _frame_count(out) == NUM_FRAMES


def test_bad_sources_give_clear_errors(detector, tmp_path, capsys):
    with pytest.raises(CameraError, match="nope.mp4: no such video file"):
        run_camera(detector, str(tmp_path / "nope.mp4"), progress=False)
    with pytest.raises(CameraError, match="camera 99 could not be opened"):
        run_camera(detector, "99", progress=False)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(CameraError, match="notes.mp4"):
        run_camera(detector, str(text), progress=False)
    assert main(["camera", MODEL, "--source", "99", "--no-progress"]) == 2
    assert "error: camera 99 could not be opened" in capsys.readouterr().err
    assert main(["camera", MODEL, "--source", str(tmp_path / "nope.mp4")]) == 2
    assert "no such video file" in capsys.readouterr().err


def test_display_without_a_gui_is_a_clear_error(clip, detector):
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has a GUI")
    except cv2.error:
        pass
    with pytest.raises(CameraError, match="--display needs OpenCV with GUI"):
        run_camera(detector, clip[0], display=True, progress=False)


def test_a_failing_detector_stops_the_pipeline_with_its_error(clip, detector, tmp_path):
    class Broken(SlowDetector):  # fails on the 6th frame, after 5 were written
        calls = 0

        def invoke(self, tensor=None):
            Broken.calls += 1
            if Broken.calls > 5:
                raise RuntimeError("delegate crashed")
            self.detector.invoke(tensor)

    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="delegate crashed"):
        run_camera(Broken(detector), clip[0], out_video=str(out), progress=False)
    assert list(tmp_path.iterdir()) == []  # no half-written video


class FakeStream:
    """A network stream: 5 frames, drops, comes back on the first reconnect with 3 more
    frames, then drops for good."""
    kind, name, fps, frame_count = "stream", "rtsp://fake/stream", 30.0, None

    def __init__(self):
        self.left, self.reconnects = [5, 3], 0
        self.image = np.zeros((64, 80, 3), np.uint8)

    def read(self):
        if self.left and self.left[0] > 0:
            self.left[0] -= 1
            return True, self.image
        return False, None

    def reopen(self):
        self.reconnects += 1
        if len(self.left) > 1:
            self.left.pop(0)
            return True
        return False

    def release(self):
        pass


def test_lost_stream_reconnects_then_gives_up(detector, tmp_path, monkeypatch):
    stream = FakeStream()
    monkeypatch.setattr(camera, "open_source", lambda source: stream)
    js = str(tmp_path / "lost.json")
    with pytest.raises(CameraError, match="stream was lost and 2 reconnection attempts failed"
                       ) as info:
        run_camera(detector, stream.name, json_path=js, reconnect_tries=2, progress=False)
    assert stream.reconnects == 3  # one that worked, then two that failed
    assert info.value.summary["frames_captured"] == 8
    assert json.load(open(js))["summary"]["frames_processed"] == info.value.summary[
        "frames_processed"] > 0  # what was measured before the loss is kept
