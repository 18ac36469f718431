"""android_demo in a real browser: headless Chromium with a fake camera playing a rendered clip.

The app is built (android_demo/build.py) with the int8 test model, served on 127.0.0.1, and
opened in Debian's Chromium, whose fake camera plays a ``.y4m`` clip of the bundled dataset's
objects. Checked: the page detects the clip's objects; on a still frame the first
``num_detections`` outputs of LiteRT.js equal ai-edge-litert's, and the page's parsing (clip,
drop zero-area boxes) equals edge_runtime's, there and on hand-made op outputs; the benchmark
button downloads JSON in edge_runtime's benchmark schema; bad files and a refused camera give a
message while the app keeps running; the service worker serves the app offline. A screenshot is kept in the test's
tmp dir and in ``android_demo/test-artifacts/screenshot.png``.
Skips (with the reason) only where Chromium, chromedriver, selenium or npm are missing.
"""
from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import json
import os
import shutil
import signal
import threading
import time

import cv2
import numpy as np
import pytest

from tests.helpers import write_classifier_tflite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
ARTIFACTS = os.path.join(ROOT, "android_demo", "test-artifacts")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--window-size=900,1000")
WATCHDOG_S = 150  # the whole module's browser session; nothing may hang the suite


def _find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc), deepest last."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(pid: int) -> None:
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(directory: str):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=directory))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _iou(a, b) -> float:
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _wait(driver, script: str, timeout: float, what: str):
    """Polls ``return <script>`` until truthy; fails naming ``what`` and the page's messages."""
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.25)
    messages = driver.execute_script("return window.frontier && window.frontier.messages")
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page messages: {messages}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 48-frame 640x480 clip of two large objects (they bounce around) and its truth."""
    from train.data.video import render_clip, write_y4m
    frames, truth = render_clip(48, size=(480, 640), seed=1, num_objects=2,
                                object_size=(160, 220))
    path = str(tmp_path_factory.mktemp("android_clip") / "clip.y4m")
    write_y4m(frames, path, fps=15)
    return path, frames, truth


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The built app (int8 test model) served on 127.0.0.1: (url, dist folder)."""
    if not os.path.isdir(os.path.join(ROOT, "android_demo", "node_modules", "@litertjs")) \
            and not _find("npm"):
        pytest.skip("npm not found: Node.js 20+ with npm is needed to install LiteRT.js for "
                    "android_demo")
    spec = importlib.util.spec_from_file_location(  # not `import build`: other packages say build
        "android_demo_build", os.path.join(ROOT, "android_demo", "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    dist = build.build(str(tmp_path_factory.mktemp("android_build") / "dist"), model_files=[MODEL])
    server = _serve(dist)
    yield f"http://127.0.0.1:{server.server_address[1]}/", dist
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(app, clip, tmp_path_factory):
    """Headless Chromium (selenium + chromedriver) on the app, its fake camera playing the clip."""
    chromium = os.environ.get("FRONTIER_CHROMIUM") or _find("chromium", "chromium-browser")
    driver_path = _find("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Chromium / chromedriver not found: install the Debian packages `chromium "
                    "chromium-driver` (.ci/run does) to run the android_demo browser test")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed "
                                    "(pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    tmp = tmp_path_factory.mktemp("android_browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--use-file-for-fake-video-capture={clip[0]}",
                 f"--user-data-dir={tmp / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(driver_path, log_output=str(tmp / "chromedriver.log"))
    driver = None
    watchdog = threading.Timer(WATCHDOG_S, lambda: service.process and _kill_tree(service.process.pid))
    watchdog.daemon = True
    watchdog.start()
    try:
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(60)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(tmp / "downloads")})
        driver.get(app[0])
        _wait(driver, "window.frontier && window.frontier.ready", 60, "the app to start")
        driver.tmp = tmp
        yield driver
    finally:
        watchdog.cancel()
        pid = service.process.pid if getattr(service, "process", None) else None
        try:
            if driver is not None:
                quit_ = threading.Thread(target=driver.quit, daemon=True)
                quit_.start()
                quit_.join(15)
        finally:
            if pid:
                _kill_tree(pid)


def test_page_detects_the_clip_objects_and_keeps_a_screenshot(browser, clip):
    _, _, truth = clip
    model = browser.execute_script("return window.frontier.model")
    assert model and model["dtype"] == "uint8" and model["numBoxes"] == 100, \
        browser.execute_script("return window.frontier.messages")
    assert browser.execute_script("return window.frontier.cameraError") is None
    _wait(browser, "window.frontier.frames >= 12", 60, "12 processed camera frames")
    history = browser.execute_script("return window.frontier.history")
    found = {}
    for dets in history:
        for d in dets:
            assert 0 <= d["box"][0] <= d["box"][2] <= 1 and 0 <= d["box"][1] <= d["box"][3] <= 1
            # a detection of a clip object: right class, on that object in some frame of the clip
            for frame in truth:
                for cat, box in frame:
                    if d["classId"] == cat - 1 and d["score"] >= 0.5 and _iou(d["box"], box) >= 0.5:
                        found.setdefault(cat, d["label"])
    categories = {cat for frame in truth for cat, _ in frame}
    assert set(found) == categories, (found, categories, history[-3:])
    stats = browser.find_element("id", "stats").text
    assert "FPS" in stats and "ms/frame" in stats and "invoke" in stats, stats
    _wait(browser, "window.frontier.lastDetections.length > 0", 20, "boxes on the last frame")
    shot = os.path.join(str(browser.tmp), "screenshot.png")
    assert browser.save_screenshot(shot)
    os.makedirs(ARTIFACTS, exist_ok=True)
    shutil.copy(shot, os.path.join(ARTIFACTS, "screenshot.png"))
    image = cv2.imread(shot)
    assert image is not None and image.shape[0] > 400 and image.std() > 10  # not a blank page


def test_still_frame_outputs_equal_ai_edge_litert(browser, clip):
    from edge_runtime import Detector
    det = Detector(MODEL)
    for frame in clip[1][:40:13]:  # 3 frames: the objects in different places
        rgb = cv2.resize(frame, (det.width, det.height), interpolation=cv2.INTER_AREA)
        det.invoke(det.preprocess(rgb))
        ref = det.raw_outputs()
        got = browser.execute_async_script(
            "window.frontier.detectRgb(arguments[0]).then(arguments[1], "
            "e => arguments[1]({error: String(e)}))", base64.b64encode(rgb.tobytes()).decode())
        assert "error" not in got, got
        n = int(ref["num_detections"].reshape(-1)[0])
        assert n > 0 and int(got["num_detections"][0]) == n
        np.testing.assert_array_equal(np.asarray(got["detection_classes"])[:n],
                                      ref["detection_classes"].reshape(-1)[:n])
        np.testing.assert_allclose(np.asarray(got["detection_scores"])[:n],
                                   ref["detection_scores"].reshape(-1)[:n], atol=1e-4)
        np.testing.assert_allclose(np.asarray(got["detection_boxes"]).reshape(-1, 4)[:n],
                                   ref["detection_boxes"].reshape(-1, 4)[:n], atol=1e-4)
        _assert_same_detections(_page_parse(browser, got), det.parse(ref))


def _page_parse(browser, outputs: dict, frame: dict | None = None) -> list:
    """detector.js's parseOutputs on ``outputs`` (flattened) in the page."""
    flat = {k: np.asarray(v, np.float64).reshape(-1).tolist() for k, v in outputs.items()}
    got = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('./detector.js').then(m => done(m.parseOutputs(arguments[0], 0, arguments[1] "
        "|| undefined)), e => done({error: String(e)}))", flat, frame)
    assert isinstance(got, list), got
    return got


def _assert_same_detections(page: list, ref) -> None:
    """The page's parsed detections equal edge_runtime's :class:`Detections` ``ref``."""
    assert len(page) == len(ref), (page, ref)
    if not page:
        return
    np.testing.assert_array_equal([d["classId"] for d in page], ref.classes)
    np.testing.assert_allclose([d["score"] for d in page], ref.scores, atol=1e-4)
    np.testing.assert_allclose([d["box"] for d in page], ref.boxes, atol=1e-4)


def test_page_drops_zero_area_boxes_as_edge_runtime_does(browser):
    from edge_runtime.detector import parse_outputs
    from tests.test_edge_runtime import op_outputs  # the hand-made op outputs of that test
    outputs = op_outputs()
    page = _page_parse(browser, outputs)
    _assert_same_detections(page, parse_outputs(outputs))
    assert [d["score"] for d in page] == pytest.approx([0.9, 0.7, 0.2])
    # letterboxed (a 4:3 frame in a square input: grey bars on the left and right): a box
    # wholly on a bar is empty in the source frame and dropped too
    bars = {"detection_boxes": [[0.2, 0.02, 0.6, 0.1], [0.2, 0.1, 0.6, 0.5]],
            "detection_classes": [0, 1], "detection_scores": [0.9, 0.8], "num_detections": [2]}
    page = _page_parse(browser, bars, {"x0": 0.125, "y0": 0.0, "sx": 4 / 3, "sy": 1.0})
    assert [d["classId"] for d in page] == [1]
    np.testing.assert_allclose(page[0]["box"], [0.2, 0.0, 0.6, 0.5], atol=1e-6)


def test_benchmark_button_downloads_edge_runtime_json(browser):
    from edge_runtime.benchmark import compare, format_table
    browser.execute_script("document.getElementById('bench-runs').value = '15'")
    browser.find_element("id", "bench").click()
    report = _wait(browser, "window.frontier.lastBenchmark", 60, "the benchmark")
    downloads = os.path.join(str(browser.tmp), "downloads")
    end = time.time() + 10
    files = []
    while time.time() < end and not files:
        files = [f for f in os.listdir(downloads) if f.endswith(".json")] \
            if os.path.isdir(downloads) else []
        time.sleep(0.2)
    assert files, "the benchmark JSON was not downloaded"
    with open(os.path.join(downloads, files[0])) as f:
        saved = json.load(f)
    assert saved["results"][0]["stages_ms"] == report["results"][0]["stages_ms"]
    r = saved["results"][0]
    assert r["runtime"]["runtime"] == "litert.js" and r["runtime"]["version"].startswith("2.5.")
    assert r["runs"] == 15 and r["model"] == os.path.basename(MODEL)
    assert r["input"] == {"shape": [1, 256, 256, 3], "dtype": "uint8"}
    for stage in ("preprocess", "invoke", "postprocess", "end_to_end"):
        s = r["stages_ms"][stage]
        assert s["n"] == 15 and 0 <= s["min"] <= s["median"] <= s["p90"] <= s["p99"]
    assert r["stages_ms"]["invoke"]["median"] > 0
    assert "Chrome" in saved["machine"]["user_agent"] and saved["machine"]["os"]
    assert "litert.js" in format_table(saved)  # readable by the edge_runtime tools
    row = compare(saved, saved)[0]
    assert row["invoke"]["ratio"] == 1.0


def test_bad_files_and_refused_camera_give_messages_and_the_app_keeps_running(browser, tmp_path):
    classifier = tmp_path / "classifier.tflite"
    write_classifier_tflite(classifier)
    not_tflite = tmp_path / "photo.tflite"
    not_tflite.write_text("hello, not a model")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(open(MODEL, "rb").read()[:50000])
    expected = {not_tflite: "not a .tflite model", truncated: "truncated.tflite",
                classifier: "not the four-output detection layout"}
    file_input = browser.find_element("id", "file")
    for path, text in expected.items():
        before = len(browser.execute_script("return window.frontier.messages"))
        file_input.send_keys(str(path))
        _wait(browser, f"window.frontier.messages.length > {before}", 30, f"a message on {path.name}")
        last = browser.execute_script("return window.frontier.messages.slice(-1)[0]")
        assert last["level"] == "error" and path.name in last["text"] and text in last["text"], last
        assert last["text"] in browser.find_element("id", "messages").text
    assert browser.execute_script("return window.frontier.model.name") == os.path.basename(MODEL)
    frames = browser.execute_script("return window.frontier.frames")
    _wait(browser, f"window.frontier.frames > {frames + 3}", 30, "frames after the bad files")

    # The camera is refused (as when the user says no): a message, and the model still works.
    browser.execute_script(
        "navigator.mediaDevices.getUserMedia = () => Promise.reject("
        "new DOMException('Permission denied', 'NotAllowedError'));"
        "document.getElementById('switch').click();")
    error = _wait(browser, "window.frontier.cameraError", 15, "the camera error")
    assert "permission refused" in error.lower()
    assert error in browser.find_element("id", "messages").text
    report = browser.execute_async_script(
        "window.frontier.runBenchmark(3, 1).then(arguments[0])")
    assert report and report["results"][0]["runs"] == 3


def test_service_worker_serves_the_app_offline(browser, app):
    cached = browser.execute_async_script(  # ready: installed (everything cached) and active

        "navigator.serviceWorker.ready.then(() => caches.keys()).then(k => Promise.all("
        "k.map(n => caches.open(n).then(c => c.keys())))).then(r => arguments[0](r.flat().length))")
    assert cached >= 15  # page, scripts, WebAssembly, models, icons
    dist = app[1]
    offline = dist + ".offline"
    os.rename(dist, offline)  # the server now answers 404 to everything
    try:
        browser.refresh()
        _wait(browser, "window.frontier && window.frontier.ready", 60, "the app to start offline")
        model = browser.execute_script("return window.frontier.model")
        assert model and model["name"] == os.path.basename(MODEL), \
            browser.execute_script("return window.frontier.messages")
    finally:
        os.rename(offline, dist)
