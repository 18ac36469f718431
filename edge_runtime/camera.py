"""Live detection from a camera, a video file or a network stream (OpenCV + LiteRT, no TF).

Three stages overlap, each in its own thread, so the frame rate is set by the slowest one::

    capture ──▶ LatestFrame (one slot) ──▶ inference ──▶ Queue(2) ──▶ main thread
    reads the   a newer frame replaces     Detector on the          draws boxes + overlay,
    source      one not yet taken (drop)   latest frame             shows / writes the video

A live source never waits for the detector: when inference is slower than the camera, older
frames are dropped (and counted) instead of queued, so latency stays at about one frame plus
one inference instead of growing without bound. A video *file* is read only as fast as the
pipeline consumes it (every frame processed, in order: a repeatable "camera" for benchmarks),
unless ``realtime=True`` paces reading at the file's FPS, and then frames drop as from a camera.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_runtime.draw import draw_detections, draw_status
from edge_runtime.files import write_json

DEFAULT_FPS = 30.0  # when the source does not report one
_TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]


class CameraError(OSError):
    """A source that cannot be opened or read. ``summary`` holds what was measured before a
    stream was lost (its outputs are written too); the CLI prints the message, exit code 2."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Frame:
    index: int  # position in the source (dropped frames leave gaps)
    time: float  # time.perf_counter() when it was read
    rgb: np.ndarray  # uint8 [H, W, 3]


class LatestFrame:
    """One-slot buffer from the capture thread to the inference thread.

    ``put(frame)`` replaces a frame not yet taken, counting it in ``dropped``; ``put(frame,
    wait=True)`` waits for the slot to empty instead (file sources: nothing is dropped).
    ``get()`` blocks for the next frame and returns None once ``close()``d and empty.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.closed = False
        self.error: BaseException | None = None  # why the capture stopped, if not a clean end
        self.captured = self.dropped = self._taken = 0
        self.peak = 0  # most frames held at once (1: frames are never queued)

    def put(self, frame: Frame, wait: bool = False) -> None:
        with self._cond:
            while wait and self._frame is not None and not self.closed:
                self._cond.wait()
            if self.closed:
                return
            self.captured += 1
            self.dropped += self._frame is not None
            self._frame = frame
            self.peak = max(self.peak, self.captured - self.dropped - self._taken)
            self._cond.notify_all()

    def get(self) -> Frame | None:
        with self._cond:
            while self._frame is None and not self.closed:
                self._cond.wait()
            frame, self._frame = self._frame, None
            self._taken += frame is not None
            self._cond.notify_all()
            return frame

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self.closed = True
            self.error = self.error or error
            self._cond.notify_all()


class _OpenCVSource:
    """A camera index ("0"), a video file or an rtsp/http URL through cv2.VideoCapture."""

    def __init__(self, source: str):
        self.name = source
        self.kind = "camera" if source.isdigit() else "stream" if "://" in source else "file"
        if self.kind == "file" and not os.path.isfile(source):
            raise CameraError(f"{source}: no such video file (a camera is an index like 0; "
                              "a stream a URL like rtsp://host/path)")
        self.cap = self._open()
        if not self.cap.isOpened():
            what = {"camera": f"camera {source} could not be opened (no such device, or busy)",
                    "stream": f"{source}: cannot connect to the stream",
                    "file": f"{source}: OpenCV cannot open this file as a video"}[self.kind]
            raise CameraError(what)
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or None
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if self.kind == "file" and count > 0 else None
        ok, first = self.cap.read()
        if not ok and self.kind == "file":
            raise CameraError(f"{source}: no decodable video frames")
        self._pending = first if ok else None  # read to check the source; handed out first

    def _open(self) -> cv2.VideoCapture:
        if self.kind == "camera":
            return cv2.VideoCapture(int(self.name))
        if self.kind == "stream":  # bounded waits: a dead stream must not hang the thread
            return cv2.VideoCapture(self.name, cv2.CAP_FFMPEG, _TIMEOUTS)
        return cv2.VideoCapture(self.name)

    def read(self) -> tuple[bool, np.ndarray | None]:
        """(ok, RGB uint8 [H, W, 3])."""
        frame, self._pending = self._pending, None
        if frame is None:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return False, None
        return True, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def reopen(self) -> bool:
        self.cap.release()
        self.cap = self._open()
        return self.cap.isOpened()

    def release(self) -> None:
        self.cap.release()


class _PiCameraSource:
    """The Raspberry Pi camera through Picamera2 (libcamera)."""
    kind, name, fps, frame_count = "camera", "picamera", None, None

    def __init__(self, size: tuple[int, int] = (640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError("source 'picamera' needs the picamera2 package (Raspberry Pi OS: "
                              "sudo apt install python3-picamera2)") from None
        try:
            self.cam = Picamera2()
            self.cam.configure(self.cam.create_video_configuration(
                main={"size": size, "format": "RGB888"}))
            self.cam.start()
        except Exception as e:  # noqa: BLE001 - libcamera errors have many types
            raise CameraError(f"picamera: cannot start the camera ({e})") from None

    def read(self):
        try:  # libcamera's "RGB888" is stored B, G, R: reverse to RGB
            return True, np.ascontiguousarray(self.cam.capture_array()[..., ::-1])
        except Exception:  # noqa: BLE001
            return False, None

    def reopen(self) -> bool:
        return False

    def release(self) -> None:
        self.cam.stop()


def open_source(source) -> _OpenCVSource | _PiCameraSource:
    """``source``: camera index (int or digits), video file path, rtsp/http URL or "picamera"."""
    source = str(source)
    return _PiCameraSource() if source == "picamera" else _OpenCVSource(source)


def _capture(src, slot: LatestFrame, stop: threading.Event, pace_fps: float | None,
             wait: bool, max_frames: int | None, reconnect_tries: int) -> None:
    """Capture thread: reads frames into ``slot`` until the source ends or ``stop`` is set."""
    index, start = 0, time.perf_counter()
    try:
        while not stop.is_set() and not (wait and max_frames and index >= max_frames):
            if pace_fps:  # a file played back like a camera: frame i is due at start + i / fps
                stop.wait(max(0.0, start + index / pace_fps - time.perf_counter()))
            ok, rgb = src.read()
            if ok:
                slot.put(Frame(index, time.perf_counter(), rgb), wait=wait)
                index += 1
            elif src.kind == "file":
                break  # the normal end of a video
            elif not _reconnect(src, stop, reconnect_tries):
                raise CameraError(f"{src.name}: the stream was lost and {reconnect_tries} "
                                  "reconnection attempts failed")
    except BaseException as e:  # noqa: BLE001 - handed to the main thread, which reports it
        slot.close(e)
    finally:  # released here, not by the main thread, so never while a read is in progress
        src.release()
        slot.close()


def _reconnect(src, stop: threading.Event, tries: int) -> bool:
    for k in range(tries):
        if stop.wait(min(0.5 * 2 ** k, 8.0)):  # backoff 0.5, 1, 2, 4, 8, 8 ... s
            return True
        if src.reopen():
            return True
    return False


def _infer(detector, slot: LatestFrame, results: queue.Queue, stop: threading.Event,
           score_threshold: float) -> None:
    """Inference thread: the detector on the latest frame; (frame, detections, invoke ms) out."""
    try:
        while (frame := slot.get()) is not None:
            detector.load(frame.rgb)
            t0 = time.perf_counter()
            detector.invoke()
            invoke_ms = 1000 * (time.perf_counter() - t0)
            detections = detector.parse(detector.raw_outputs(), score_threshold)
            _put(results, (frame, detections, invoke_ms), stop)
        _put(results, slot.error, stop)  # None: the source ended
    except BaseException as e:  # noqa: BLE001
        _put(results, e, stop)


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():  # blocking, but gives up once the main thread has stopped
        try:
            return q.put(item, timeout=0.1)
        except queue.Full:
            pass


def _open_writer(path: str, fps: float, shape) -> cv2.VideoWriter:
    h, w = shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise CameraError(f"{path}: OpenCV cannot write a video here (mp4v, {w}x{h}); "
                          "use a .mp4 or .avi name in a writable folder")
    return writer


def _check_display() -> None:
    try:
        cv2.namedWindow("frontier", cv2.WINDOW_NORMAL)
    except cv2.error:
        raise CameraError("--display needs OpenCV with GUI support (opencv-python, not "
                          "opencv-python-headless) and a screen; use --out video.mp4") from None


def _rate(times: list[float]) -> float:
    """Frames per second over a list of completion times."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] \
        else 0.0


def _percentiles(values) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(float(np.median(values)), 3), round(float(np.percentile(values, 90)), 3)


def run_camera(detector, source, *, display: bool = False, out_video: str | None = None,
               json_path: str | None = None, score_threshold: float = 0.5,
               max_frames: int | None = None, realtime: bool = False, reconnect_tries: int = 5,
               progress: bool = True, callback=None) -> dict:
    """Runs ``detector`` (an :class:`edge_runtime.Detector`) on ``source`` until it ends, the
    user presses q/Esc (``display``) or Ctrl-C, or ``max_frames`` frames were processed.

    ``out_video``: the annotated video (mp4v), at the source's FPS; with drops a frame is
    repeated for each frame dropped after it, so the video keeps the source's timing.
    ``json_path``: ``{"summary": ..., "frames": [{frame, capture_s, invoke_ms, latency_ms,
    detections}]}``; latency is capture -> annotated frame shown/written. ``callback(index,
    rgb, detections)``, if given, is called in the main thread for every processed frame.
    Returns the summary.
    Raises :class:`CameraError` for a source that cannot be opened or is lost.
    """
    if getattr(detector, "raw", False):
        raise ValueError(f"{detector.model_path} has no fused post-processing (raw outputs); "
                         "export it without --no-postprocess")
    src = open_source(source)
    if display:
        try:
            _check_display()
        except CameraError:
            src.release()
            raise
    wait = src.kind == "file" and not realtime  # a file read at the pipeline's pace
    fps = src.fps or DEFAULT_FPS
    slot, results, stop = LatestFrame(), queue.Queue(maxsize=2), threading.Event()
    threads = [threading.Thread(target=_capture, daemon=True, args=(
                   src, slot, stop, fps if realtime and src.kind == "file" else None, wait,
                   max_frames, reconnect_tries)),
               threading.Thread(target=_infer, daemon=True,
                                args=(detector, slot, results, stop, score_threshold))]
    tmp_video = None if out_video is None else "{}.partial{}".format(*os.path.splitext(out_video))
    writer, records, done_times, error, ended = None, [], [], None, "end of source"
    from tqdm import tqdm
    bar = tqdm(total=max_frames or (src.frame_count if wait else None), unit="frame",
               disable=not progress)
    start = time.perf_counter()
    try:
        for t in threads:
            t.start()
        last_index = -1
        while True:
            item = results.get()
            if item is None or isinstance(item, BaseException):
                error = item
                break
            frame, detections, invoke_ms = item
            if callback is not None:
                callback(frame.index, frame.rgb, detections)
            if display or tmp_video is not None:  # headless JSON-only runs draw nothing
                image = draw_detections(frame.rgb, detections, detector.label)
                draw_status(image, f"FPS {_rate(done_times[-30:]):.1f} | invoke "
                                   f"{invoke_ms:.1f} ms | dropped {slot.dropped}")
                bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if tmp_video is not None:
                writer = writer or _open_writer(tmp_video, fps, bgr.shape)
                for _ in range(frame.index - last_index):  # repeats stand for dropped frames
                    writer.write(bgr)
            last_index = frame.index
            if display:
                cv2.imshow("frontier", bgr)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    ended = "stopped by the user"
            done = time.perf_counter()
            done_times.append(done)
            records.append({"frame": frame.index, "capture_s": round(frame.time - start, 6),
                            "invoke_ms": round(invoke_ms, 3),
                            "latency_ms": round(1000 * (done - frame.time), 3),
                            "detections": len(detections)})
            bar.update()
            if max_frames and len(records) >= max_frames:
                ended = "max frames"
            if ended != "end of source":
                break
    except KeyboardInterrupt:  # Ctrl-C is how a headless live run ends: keep its outputs
        ended = "interrupted"
    except BaseException:
        if writer is not None:  # no half-written outputs left behind
            writer.release()
            os.remove(tmp_video)
            writer = None
        raise
    finally:
        stop.set()
        slot.close()
        for t in threads:
            t.join(timeout=2.0)
        bar.close()
        if writer is not None:
            writer.release()
        if display:
            cv2.destroyAllWindows()
    if error is not None and not isinstance(error, CameraError):
        if writer is not None:  # a failure in the detector or OpenCV: no half-written outputs
            os.remove(tmp_video)
        raise error
    invoke = _percentiles([r["invoke_ms"] for r in records])
    latency = _percentiles([r["latency_ms"] for r in records])
    elapsed = (done_times[-1] - start) if done_times else 0.0
    summary = {
        "source": str(source), "source_kind": src.kind, "source_fps": src.fps,
        "model": getattr(detector, "model_path", None),
        "runtime": getattr(detector, "runtime", None),
        "realtime": realtime, "score_threshold": score_threshold,
        "frames_captured": slot.captured, "frames_processed": len(records),
        "frames_dropped": slot.dropped, "frames_buffered_max": slot.peak,
        "seconds": round(elapsed, 3),
        "fps": round(len(records) / elapsed, 2) if elapsed > 0 else None,
        "invoke_ms_median": invoke[0], "invoke_ms_p90": invoke[1],
        "latency_ms_median": latency[0], "latency_ms_p90": latency[1],
        "ended": str(error) if error is not None else ended}
    if writer is not None:
        os.replace(tmp_video, out_video)
    if json_path:
        write_json(json_path, {"summary": summary, "frames": records}, indent=1)
    if error is not None:
        raise CameraError(f"{error} ({len(records)} frames processed before; outputs written)"
                          if records else str(error), summary)
    return summary
