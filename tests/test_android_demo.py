"""android_demo in a real browser: headless Chromium with a fake camera playing a rendered clip.

The app is built (android_demo/build.py) with the int8 test model carrying the standard TFLite
metadata, as every export now does, and no sidecar; served on 127.0.0.1 and opened in Debian's
Chromium, whose fake camera plays a ``.y4m`` clip of the bundled dataset's objects. Checked:
the page detects the clip's objects and names them from the embedded labels; on a still frame
the first ``num_detections`` outputs of LiteRT.js equal ai-edge-litert's, and the page's
detections (clip, drop zero-area boxes, labels) equal edge_runtime's, there and on hand-made op
outputs; the page's metadata reader gives edge_runtime's dict (Frontier's metadata, MediaPipe's
stock metadata with per-channel normalisation, deflated associated files); a model made
elsewhere gets its class names; a sidecar that disagrees is named, one that agrees or stands
alone (older exports) is read; the benchmark button downloads JSON in edge_runtime's benchmark
schema; bad files and a refused camera give a message while the app keeps running; the service
worker serves the app offline. A tiny Faster R-CNN ("resize": "keep_aspect_ratio"; trained 30
steps, exported to float32) is loaded into the same page too, without its sidecar (the resize
rule comes from its embedded frontier.json): on frames scaled and padded by edge_runtime its
outputs equal ai-edge-litert's and the page maps the boxes back through the window as
edge_runtime does; the page's own keep_aspect_ratio preprocess puts the frame top-left on black,
and its scaled size equals ``Detector.scaled_size``; (slow) the int8 export runs too.
Screenshots are kept in the test's tmp dir and in ``android_demo/test-artifacts/``.
Skips (with the reason) only where Chromium, chromedriver, selenium or npm are missing.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import importlib.util
import io
import json
import os
import shutil
import signal
import threading
import time
import types
import zipfile

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
WATCHDOG_S = 150  # the module's browser session, less model training; nothing may hang the suite
ELSEWHERE = ["cat", "dog", "bird", "fish", "cow", "hen", "fox", "owl"]  # another tool's names


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


class _Watchdog:
    """Calls ``action`` unless cancelled within ``seconds``; time spent in
    :func:`_watchdogs_paused` (training a model while the browser waits) does not count."""
    paused = 0

    def __init__(self, seconds: float, action):
        self.deadline = time.monotonic() + seconds
        self.action = action
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        last = time.monotonic()
        while not self.done.wait(0.5):
            now = time.monotonic()
            if _Watchdog.paused:
                self.deadline += now - last
            last = now
            if now > self.deadline:
                self.action()
                return

    def cancel(self):
        self.done.set()


@contextlib.contextmanager
def _watchdogs_paused():
    _Watchdog.paused += 1
    try:
        yield
    finally:
        _Watchdog.paused -= 1


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


def _asset_sidecar() -> dict:
    with open(os.path.splitext(MODEL)[0] + ".json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The test model with the standard TFLite metadata embedded: ``embedded`` as convert/
    embeds it (labels.txt, frontier.json from the model's sidecar), alone in its folder;
    ``elsewhere`` with MediaPipe's stock detector metadata only (another tool's labels, no
    frontier.json, no sidecar); ``per_channel`` likewise with one mean/std per channel;
    ``deflated``: ``embedded`` with its associated files re-zipped compressed."""
    import io
    import zipfile

    from convert import tflite_metadata as writer
    from convert.export_tflite import _embed_metadata  # the exporter's own step, read back

    _, _, mw = writer._writer_modules()  # first: it supplies MediaPipe's missing helper
    from mediapipe.tasks.python.metadata.metadata_writers import object_detector

    root = tmp_path_factory.mktemp("android_models")
    with open(MODEL, "rb") as f:
        model = f.read()
    os.makedirs(root / "embedded")
    out = types.SimpleNamespace(embedded=str(root / "embedded" / os.path.basename(MODEL)))
    embedded = _embed_metadata(model, _asset_sidecar(), out.embedded, out.embedded,
                               version="test", author="tests", licence="Apache-2.0")
    for name, mean, std in (("elsewhere", [0.0], [1.0]),
                            ("per_channel", [127.5, 120.0, 110.25], [127.5, 60.0, 50.0])):
        stock, _ = object_detector.MetadataWriter.create_for_models_with_nms(
            bytearray(model), mean, std, mw.Labels().add(ELSEWHERE)).populate()
        setattr(out, name, str(root / f"{name}.tflite"))
        with open(getattr(out, name), "wb") as f:
            f.write(bytes(stock))
    with zipfile.ZipFile(io.BytesIO(embedded)) as z:
        start = min(i.header_offset for i in z.infolist())
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as w:
            for name in z.namelist():
                w.writestr(name, z.read(name))
    out.deflated = str(root / "deflated.tflite")
    with open(out.deflated, "wb") as f:
        f.write(embedded[:start] + packed.getvalue())
    return out


def _build_module():
    """android_demo/build.py as a module (not `import build`: other packages say build)."""
    spec = importlib.util.spec_from_file_location(
        "android_demo_build", os.path.join(ROOT, "android_demo", "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_build_without_models_says_what_to_run(tmp_path, monkeypatch):
    """No exported model: an error naming the folder and what to run, never a test fixture."""
    build = _build_module()
    monkeypatch.setattr(build, "ROOT", str(tmp_path))  # default runs/demo: empty here
    for models_dir in (None, str(tmp_path)):
        with pytest.raises(SystemExit) as e:
            build.find_models(models_dir, [])
        message = str(e.value)
        assert (models_dir or os.path.join(str(tmp_path), "runs", "demo")) in message
        assert "make demo" in message and "ANDROID_MODELS=DIR" in message


@pytest.fixture(scope="module")
def app(tmp_path_factory, models):
    """The built app (the int8 test model with embedded metadata, no sidecar) served on
    127.0.0.1: (url, dist folder)."""
    if not os.path.isdir(os.path.join(ROOT, "android_demo", "node_modules", "@litertjs")) \
            and not _find("npm"):
        pytest.skip("npm not found: Node.js 20+ with npm is needed to install LiteRT.js for "
                    "android_demo")
    dist = _build_module().build(str(tmp_path_factory.mktemp("android_build") / "dist"),
                                 model_files=[models.embedded])  # named explicitly
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
    watchdog = _Watchdog(WATCHDOG_S, lambda: service.process and _kill_tree(service.process.pid))
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


def test_page_detects_the_clip_objects_and_keeps_a_screenshot(browser, clip, app):
    _, _, truth = clip
    with open(os.path.join(app[1], "build-info.json")) as f:
        bundled = json.load(f)["models"][0]  # the model alone: no sidecar needed
    assert bundled["meta"] is None and sorted(bundled["embedded"]) == ["frontier.json",
                                                                       "labels.txt"]
    assert bundled["label"].startswith("int8 · ")  # from its frontier.json
    model = browser.execute_script("return window.frontier.model")
    assert model and model["dtype"] == "uint8" and model["numBoxes"] == 100, \
        browser.execute_script("return window.frontier.messages")
    labels = _asset_sidecar()["labels"]  # from the model alone: the build bundled no sidecar
    assert model["metadata"] == "embedded" and model["labels"] == labels
    assert model["categoryIds"] == list(range(1, 9)) and model["title"].startswith("SSD")
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
    assert all(label == labels[cat - 1] for cat, label in found.items()), found
    stats = browser.find_element("id", "stats").text
    assert "FPS" in stats and "ms/frame" in stats and "invoke" in stats, stats
    _wait(browser, "window.frontier.lastDetections.length > 0", 20, "boxes on the last frame")
    shot = os.path.join(str(browser.tmp), "screenshot.png")
    assert browser.save_screenshot(shot)
    os.makedirs(ARTIFACTS, exist_ok=True)
    shutil.copy(shot, os.path.join(ARTIFACTS, "screenshot.png"))
    image = cv2.imread(shot)
    assert image is not None and image.shape[0] > 400 and image.std() > 10  # not a blank page


def _assert_same_outputs(got: dict, ref: dict) -> None:
    """The page's first num_detections outputs equal ai-edge-litert's (``ref``), and there
    are some. Rows of equal score may come in either order (CI: two shifted boxes of one score,
    swapped), so each ref row must have its own got row of the same class, score and box."""
    n = int(ref["num_detections"].reshape(-1)[0])
    assert n > 0 and int(got["num_detections"][0]) == n
    rows = {name: np.c_[np.asarray(d["detection_classes"]).reshape(-1)[:n],
                        np.asarray(d["detection_scores"]).reshape(-1)[:n],
                        np.asarray(d["detection_boxes"]).reshape(-1, 4)[:n]]
            for name, d in (("got", got), ("ref", ref))}
    np.testing.assert_allclose(rows["got"][:, 1], rows["ref"][:, 1], atol=1e-4)  # score order
    free = np.ones(n, bool)
    for i, row in enumerate(rows["ref"]):
        close = free & (rows["got"][:, 0] == row[0]) & (
            np.abs(rows["got"][:, 1:] - row[1:]).max(axis=1) <= 1e-4)
        assert close.any(), (i, row, rows["got"][max(i - 2, 0):i + 3])
        free[np.flatnonzero(close)[0]] = False


def test_still_frame_outputs_equal_ai_edge_litert(browser, clip, models):
    """... and the page's detections, labels included, equal edge_runtime's on the model with
    embedded metadata and no sidecar."""
    from edge_runtime import Detector
    det = Detector(models.embedded)
    assert det.labels == _asset_sidecar()["labels"]
    for frame in clip[1][:40:13]:  # 4 frames: the objects in different places
        rgb = cv2.resize(frame, (det.width, det.height), interpolation=cv2.INTER_AREA)
        det.invoke(det.preprocess(rgb))
        ref = det.raw_outputs()
        got = browser.execute_async_script(
            "window.frontier.detectRgb(arguments[0]).then(arguments[1], "
            "e => arguments[1]({error: String(e)}))", base64.b64encode(rgb.tobytes()).decode())
        assert "error" not in got, got
        _assert_same_outputs(got, ref)
        _assert_same_detections(_page_parse(browser, got), det.parse(ref))
        _assert_same_detections(_page_detections(browser, rgb), det.parse(ref), det)


def _page_detections(browser, rgb: np.ndarray) -> list:
    """The app's current model on ``rgb`` (the model's size): its detections, labels too."""
    got = browser.execute_async_script(
        "window.frontier.detectionsRgb(arguments[0]).then(arguments[1], "
        "e => arguments[1]({error: String(e)}))", base64.b64encode(rgb.tobytes()).decode())
    assert isinstance(got, list), got
    return got


def _page_parse(browser, outputs: dict, frame: dict | None = None) -> list:
    """detector.js's parseOutputs on ``outputs`` (flattened) in the page."""
    flat = {k: np.asarray(v, np.float64).reshape(-1).tolist() for k, v in outputs.items()}
    got = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('./detector.js').then(m => done(m.parseOutputs(arguments[0], 0, arguments[1] "
        "|| undefined)), e => done({error: String(e)}))", flat, frame)
    assert isinstance(got, list), got
    return got


def _assert_same_detections(page: list, ref, det=None) -> None:
    """The page's parsed detections equal edge_runtime's :class:`Detections` ``ref`` (and
    their labels and category ids those of edge_runtime's Detector ``det``, when given)."""
    assert len(page) == len(ref), (page, ref)
    if not page:
        return
    np.testing.assert_array_equal([d["classId"] for d in page], ref.classes)
    if det is not None:
        assert [d["label"] for d in page] == [det.label(int(c)) for c in ref.classes]
        ids = det.metadata.get("category_ids")
        assert [d["categoryId"] for d in page] == [ids[c] if ids else int(c) + 1
                                                  for c in ref.classes]
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


def _page_metadata(browser, path: str) -> dict:
    """metadata.js on the bytes of ``path`` in the page: {meta: embeddedMetadata, parsed:
    parseMetadata of its TFLITE_METADATA buffer (or None)} or {error}."""
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return browser.execute_async_script(
        "const [b64, name, done] = arguments; import('./metadata.js').then(async (m) => {"
        "  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));"
        "  const buf = m.metadataBuffer(bytes);"
        "  done({meta: await m.embeddedMetadata(bytes, name),"
        "        parsed: buf && m.parseMetadata(buf)});"
        "}).catch((e) => done({error: String(e.message || e)}))", data, os.path.basename(path))


def test_page_reads_the_embedded_metadata_as_edge_runtime_does(browser, models, tmp_path):
    """metadata.js gives edge_runtime's embedded_metadata (and parse) dict, key for key: on
    Frontier's metadata, on MediaPipe's stock metadata with a mean/std per channel, with the
    associated files deflated, and None for a model without metadata; damaged label bytes
    are named; per-channel normalisation feeds the input as edge_runtime's to_input does."""
    from edge_runtime import Detector
    from edge_runtime import tflite_metadata as standard
    from edge_runtime.metadata import embedded_metadata

    for path in (models.embedded, models.per_channel, models.deflated, MODEL):
        got = _page_metadata(browser, path)
        assert "error" not in got, (path, got)
        assert got["meta"] == embedded_metadata(path), path
        with open(path, "rb") as f:
            buf = standard.metadata_buffer(f.read())
        assert got["parsed"] == (buf and standard.parse(buf)), path
    got = _page_metadata(browser, models.per_channel)["meta"]
    assert got["labels"] == ELSEWHERE and "category_ids" not in got
    assert got["input"] == {"mean": [127.5, 120.0, 110.25], "std": [127.5, 60.0, 50.0],
                            "color": "RGB"}
    with open(models.embedded, "rb") as f:
        damaged = bytearray(f.read())
    at = damaged.rfind(b"circle\ntriangle")  # the stored labels.txt
    damaged[at] = ord("C")
    (tmp_path / "damaged.tflite").write_bytes(bytes(damaged))
    error = _page_metadata(browser, str(tmp_path / "damaged.tflite")).get("error", "")
    assert "damaged.tflite: embedded TFLite metadata" in error and "labels.txt" in error \
        and "CRC-32" in error, error

    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), np.uint8)
    ref = types.SimpleNamespace(input_dtype=np.float32, height=4, width=5,
                                mean=np.asarray(got["input"]["mean"], np.float32),
                                std=np.asarray(got["input"]["std"], np.float32))
    page = browser.execute_async_script(
        "const [px, mean, std, done] = arguments; import('./detector.js').then((m) => {"
        "  const out = new Float32Array(px.length); m.toInput(px, 3, out, mean, std);"
        "  done(Array.from(out)); })", rgb.reshape(-1).tolist(), got["input"]["mean"],
        got["input"]["std"])
    np.testing.assert_allclose(page, Detector.to_input(ref, rgb).reshape(-1), rtol=1e-6,
                               atol=1e-6)


def test_page_names_the_model_for_byte_mutated_metadata(browser, models):
    """400 copies of the embedded model with 1-4 bytes changed in its metadata flatbuffer or
    its appended zip (derandomized): metadata.js ends each with a result or an Error naming the
    model, never another exception or a hang (the phone side of tests/test_fuzz_*)."""
    from edge_runtime import tflite_metadata as standard
    with open(models.embedded, "rb") as f:
        model = f.read()
    buf = standard.metadata_buffer(model)
    with zipfile.ZipFile(io.BytesIO(model)) as z:
        archive = min(i.header_offset for i in z.infolist())  # the zip, to the end
    regions = [(model.find(buf), len(buf)), (archive, len(model) - archive)]
    assert regions[0][0] > 0 and archive >= regions[0][0] + regions[0][1]
    rng = np.random.default_rng(23)
    cases = []
    for k in range(400):
        start, size = regions[k % 2]
        cases.append([[int(start + rng.integers(size)), int(rng.integers(256))]
                      for _ in range(rng.integers(1, 5))])
    got = browser.execute_async_script(
        "const [b64, cases, done] = arguments; import('./metadata.js').then(async (m) => {"
        "  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));"
        "  const out = {ok: 0, named: 0, other: []};"
        "  for (const edits of cases) {"
        "    const old = edits.map(([p]) => bytes[p]);"
        "    for (const [p, v] of edits) bytes[p] = v;"
        "    try { await m.embeddedMetadata(bytes, 'fuzzed.tflite'); out.ok++; }"
        "    catch (e) {"
        "      if (e instanceof Error && e.message.startsWith('fuzzed.tflite: ')) out.named++;"
        "                else out.other.push([edits, String(e)]); }"
        "    for (let k = edits.length - 1; k >= 0; k--) bytes[edits[k][0]] = old[k];"
        "  }"
        "  done(out);"
        "}).catch((e) => done({error: String(e)}))",
        base64.b64encode(model).decode(), cases)
    assert "error" not in got and not got["other"], got
    assert got["ok"] + got["named"] == 400 and got["named"] > 50 and got["ok"] > 50, got


def _load_files(browser, *paths) -> dict:
    """Picks ``paths`` in the app's file input (as a user does); the app's next message."""
    before = len(browser.execute_script("return window.frontier.messages"))
    browser.find_element("id", "file").send_keys("\n".join(str(p) for p in paths))
    _wait(browser, f"window.frontier.messages.length > {before}", 30,
          f"a message on {[os.path.basename(str(p)) for p in paths]}")
    return browser.execute_script("return window.frontier.messages.slice(-1)[0]")


def _restore_bundled_model(browser) -> None:
    browser.execute_script("const s = document.getElementById('model');"
                           "s.value = s.options[0].value; s.dispatchEvent(new Event('change'))")
    _wait(browser, f"window.frontier.model.name === {json.dumps(os.path.basename(MODEL))} "
          "&& window.frontier.model.metadata === 'embedded'", 30, "the bundled model again")


def test_model_made_elsewhere_gets_its_class_names(browser, models, clip):
    """A .tflite with only MediaPipe's stock metadata (no sidecar, no frontier.json), picked
    from the phone's storage: the page names its classes from its labels.txt and finds what
    edge_runtime finds; the camera view draws those names (screenshot kept)."""
    from edge_runtime import Detector
    try:
        last = _load_files(browser, models.elsewhere)
        assert last["level"] == "info" and "elsewhere.tflite" in last["text"] \
            and "8 classes (metadata: embedded)" in last["text"], last
        model = browser.execute_script("return window.frontier.model")
        assert model["labels"] == ELSEWHERE and model["title"] == "ObjectDetector"
        assert model["categoryIds"] is None and model["resize"] == "stretch"
        det = Detector(models.elsewhere)
        assert det.labels == ELSEWHERE
        for frame in clip[1][:40:13]:
            rgb = cv2.resize(frame, (det.width, det.height), interpolation=cv2.INTER_AREA)
            det.invoke(det.preprocess(rgb))
            ref = det.parse(det.raw_outputs())
            assert len(ref) > 0
            _assert_same_detections(_page_detections(browser, rgb), ref, det)
        frames = browser.execute_script("return window.frontier.frames")
        _wait(browser, f"window.frontier.frames > {frames + 3} && "
              "window.frontier.lastDetections.length > 0", 30, "camera frames of that model")
        drawn = browser.execute_script("return window.frontier.lastDetections")
        assert {d["label"] for d in drawn} <= set(ELSEWHERE), drawn
        shot = os.path.join(str(browser.tmp), "screenshot-elsewhere.png")
        assert browser.save_screenshot(shot)
        os.makedirs(ARTIFACTS, exist_ok=True)
        shutil.copy(shot, os.path.join(ARTIFACTS, "screenshot-elsewhere.png"))
    finally:
        _restore_bundled_model(browser)


def test_sidecar_is_held_to_the_embedded_metadata(browser, models, tmp_path):
    """A .json picked with a model that carries metadata must agree with it: labels or
    normalisation that differ are named (the sidecar, the model, the key), as edge_runtime's
    read_metadata names them, and the running model stays; an agreeing one is read; an
    older export (a sidecar and no embedded metadata) still gets its names from it."""
    from edge_runtime.metadata import read_metadata
    model = tmp_path / "stale.tflite"
    shutil.copy(models.embedded, model)
    meta = _asset_sidecar()
    try:
        for sidecar, key in (({**meta, "labels": meta["labels"][::-1]}, "'labels' is "),
                             ({**meta, "input": {**meta["input"], "std": 2.0}},
                              "'input.std' is 2")):
            (tmp_path / "stale.json").write_text(json.dumps(sidecar))
            with pytest.raises(ValueError, match=key):
                read_metadata(str(model))
            last = _load_files(browser, model, tmp_path / "stale.json")
            assert last["level"] == "error" and last["text"].startswith("stale.json: " + key) \
                and "embedded in stale.tflite" in last["text"], last
            assert last["text"] in browser.find_element("id", "messages").text
            assert browser.execute_script("return window.frontier.model.name") == \
                os.path.basename(MODEL)
        (tmp_path / "stale.json").write_text(json.dumps(meta))
        last = _load_files(browser, model, tmp_path / "stale.json")
        assert last["level"] == "info" and "(metadata: embedded + sidecar)" in last["text"], last
        last = _load_files(browser, MODEL, os.path.splitext(MODEL)[0] + ".json")
        model = browser.execute_script("return window.frontier.model")
        assert model["metadata"] == "sidecar" and model["labels"] == meta["labels"], last
    finally:
        _restore_bundled_model(browser)


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory):
    """A tiny Faster R-CNN trained 30 steps: (run folder, data folder). ~30 s on 2 cores; the
    browser's watchdog waits meanwhile (as it does for the exports below)."""
    with _watchdogs_paused():
        from tests.helpers import make_dataset, tiny_two_stage_config
        from train.trainer import fit

        root = tmp_path_factory.mktemp("android_two_stage")
        data = make_dataset(str(root / "data"), train=8, val=4)
        run = str(root / "run")
        fit(tiny_two_stage_config("faster_rcnn", steps=30, checkpoint_every=30), data, run,
            progress=False)
    return run, data


def _export_two_stage(two_stage_run, mode: str) -> tuple[str, dict]:
    from convert import export_tflite, sources

    run, data = two_stage_run
    path = os.path.join(os.path.dirname(run), f"faster_rcnn_{mode}.tflite")
    with _watchdogs_paused():
        meta = export_tflite.export_tflite(sources.from_run(run), path, mode, data=data,
                                           calibration_images=8, num_check_images=1,
                                           progress=False)
    return path, meta


@pytest.fixture(scope="module")
def two_stage(two_stage_run):
    """The Faster R-CNN exported to float32 .tflite: (path, metadata). float32, not the phone's
    int8: see test_two_stage_int8_runs_in_litertjs for why int8 cannot be compared exactly."""
    return _export_two_stage(two_stage_run, "float32")


def _two_stage_in_page(browser, model, key: str = "float32") -> dict:
    """Loads ``model`` (path, metadata) into the page beside the app's model (which keeps
    running) as ``window.frontierTwoStage[key]``, once per page load, without its sidecar (the
    model's embedded metadata is enough); returns what the page read of it."""
    path, _ = model
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    got = browser.execute_async_script(
        "const [b64, meta, name, key, done] = arguments;"
        "import('./detector.js').then(async (m) => {"
        "  const all = window.frontierTwoStage ??= {};"
        "  const d = all[key] ??= await m.Detector.load("
        "    Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), meta, name);"
        "  done({dtype: d.dtype, height: d.height, width: d.width, numBoxes: d.numBoxes,"
        "        resize: d.resize, metadata: d.source});"
        "}).catch((e) => done({error: String(e.message || e)}))",
        data, None, os.path.basename(path), key)
    assert "error" not in got, got
    return got


def _run_padded_in_page(browser, padded: np.ndarray, source_hw, key: str = "float32") -> dict:
    """The page's two-stage model on ``padded`` (uint8 [H, W, 3], already scaled and padded),
    its boxes read through the keep_aspect_ratio frame of a ``source_hw`` source: {out (the
    four outputs), size (the page's scaled size), frame, detections (the page's parse)}."""
    got = browser.execute_async_script(
        "const [b64, sw, sh, key, done] = arguments; const d = window.frontierTwoStage[key];"
        "d.setRgb(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));"
        "d.invoke().then((out) => {"
        "  const fit = d.keepAspectFrame(sw, sh); d.frame = fit.frame;"
        "  done({out: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v)])),"
        "        size: [fit.height, fit.width], frame: fit.frame, detections: d.parse(out, 0)});"
        "}, (e) => done({error: String(e.message || e)}))",
        base64.b64encode(np.ascontiguousarray(padded, np.uint8).tobytes()).decode(),
        source_hw[1], source_hw[0], key)
    assert "error" not in got, got
    return got


def _padded(det, frame: np.ndarray) -> np.ndarray:
    """``frame`` scaled (INTER_AREA) and put at the top-left of the input on black; checks
    that it is exactly what ``det.preprocess`` feeds the model."""
    h, w = det.scaled_size(*frame.shape[:2])
    padded = np.zeros((det.height, det.width, 3), np.uint8)
    padded[:h, :w] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(det.preprocess(frame), det.to_input(padded))
    return padded


@pytest.mark.slow  # trains and exports a Faster R-CNN (40 s); make test keeps the SSD pages
def test_two_stage_outputs_on_padded_frames_equal_ai_edge_litert(browser, two_stage, clip):
    """Frames scaled and padded by edge_runtime (identical pixels on both sides): the first
    num_detections outputs equal ai-edge-litert's, and the page's parsing through the window
    frame equals ``Detector.parse(outputs, window=...)``."""
    from edge_runtime import Detector
    path, meta = two_stage
    det = Detector(path, interpolation="area")
    info = _two_stage_in_page(browser, two_stage)
    assert info == {"dtype": "float32", "height": 160, "width": 160, "numBoxes": 100,
                    "resize": "keep_aspect_ratio", "metadata": "embedded"}
    for frame in clip[1][:30:13]:  # 3 frames of 480 x 640: 120 x 160 at the top of 160 x 160
        padded = _padded(det, frame)
        assert det.window == (120 / 160, 1.0)
        det.invoke(det.to_input(padded))
        ref = det.raw_outputs()
        got = _run_padded_in_page(browser, padded, frame.shape[:2])
        assert got["size"] == [120, 160] and got["frame"] == {"x0": 0, "y0": 0, "sx": 1,
                                                               "sy": 160 / 120}
        out = got["out"]
        _assert_same_outputs(out, ref)
        parsed = det.parse(ref, window=(120 / 160, 1.0))
        assert len(parsed) > 0
        _assert_same_detections(got["detections"], parsed)


def test_two_stage_page_preprocess_scales_top_left_on_black(browser, two_stage, clip):
    """The camera path (canvas drawImage, not OpenCV's resampling): a 640 x 480 frame fills the
    top 120 rows of the 160 x 160 input, the rest is black, the frame maps the boxes back."""
    assert _two_stage_in_page(browser, two_stage)["resize"] == "keep_aspect_ratio"
    frame = clip[1][0]
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
    got = browser.execute_async_script(
        "const [b64, sw, sh, done] = arguments; const d = window.frontierTwoStage.float32;"
        "const c = document.createElement('canvas'); c.width = sw; c.height = sh;"
        "const px = Uint8ClampedArray.from(atob(b64), (ch) => ch.charCodeAt(0));"
        "c.getContext('2d').putImageData(new ImageData(px, sw, sh), 0, 0);"
        "d.preprocess(c, sw, sh);"
        "done({input: Array.from(d.input), frame: d.frame})",
        base64.b64encode(rgba.tobytes()).decode(), frame.shape[1], frame.shape[0])
    assert got["frame"] == {"x0": 0, "y0": 0, "sx": 1, "sy": 160 / 120}
    x = np.asarray(got["input"], np.float64).reshape(160, 160, 3) * 127.5 + 127.5  # pixels
    assert np.all(x[120:] == 0)  # black (zero) padding below the frame
    ref = cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA).astype(np.float64)
    diff = np.abs(x[:120] - ref)
    assert diff.mean() < 8, diff.mean()  # the same picture, resampled differently
    meta = _asset_sidecar()  # an older export whose sidecar lacks the sizes: refused, named
    bad = {**meta, "input": {**meta["input"], "resize": "keep_aspect_ratio"}}
    with open(MODEL, "rb") as f:
        error = browser.execute_async_script(
            "const [b64, meta, done] = arguments; import('./detector.js').then((m) => m.Detector"
            ".load(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), meta, 'bad.tflite'))"
            ".then((d) => { d.delete(); done(null); }, (e) => done(String(e.message || e)))",
            base64.b64encode(f.read()).decode(), bad)
    assert error and "bad.json" in error and "input.min_dimension" in error, error


@pytest.mark.slow
def test_two_stage_int8_runs_in_litertjs(browser, two_stage_run, clip):
    """The int8 export (the phone's mode) loads and runs in LiteRT.js: every op it needs is
    there. Not compared row by row with ai-edge-litert: its scores are quantized, so many tie,
    and NON_MAX_SUPPRESSION_V4 (the proposals) orders equal scores differently in the two
    builds (seen on a one-op model; its candidates are in a std::priority_queue: libstdc++
    natively, libc++ in WebAssembly), so different proposals, then detections, come out.
    TOPK_V2 and the fused op order ties the same in both."""
    from edge_runtime import Detector
    model = _export_two_stage(two_stage_run, "int8")
    det = Detector(model[0], interpolation="area")
    assert _two_stage_in_page(browser, model, "int8")["dtype"] == "uint8"
    for frame in clip[1][:30:13]:
        padded = _padded(det, frame)
        det.invoke(det.to_input(padded))
        n = int(det.raw_outputs()["num_detections"].reshape(-1)[0])
        got = _run_padded_in_page(browser, padded, frame.shape[:2], "int8")
        out = got["out"]
        assert n > 0 and int(out["num_detections"][0]) == n
        boxes = np.asarray(out["detection_boxes"]).reshape(-1, 4)[:n]
        scores = np.asarray(out["detection_scores"])[:n]
        classes = np.asarray(out["detection_classes"])[:n]
        assert np.isfinite(boxes).all() and ((0 <= scores) & (scores <= 1)).all()
        assert np.all(np.diff(scores) <= 0) and set(classes) <= set(range(8))
        _assert_same_detections(got["detections"], det.parse(out, window=det.window))


def test_keep_aspect_ratio_size_equals_edge_runtime(browser):
    """detector.js's keepAspectSize equals edge_runtime's Detector.scaled_size (the training
    resizer's rule), halves rounded to even as Python's round() does."""
    from edge_runtime import Detector
    rng = np.random.default_rng(0)
    cases = []
    for (lo, hi, inh, inw) in [(128, 160, 160, 160), (600, 1024, 1024, 1024), (320, 320, 320, 320)]:
        sizes = [(640, 480), (480, 640), (300, 300), (482, 640), (640, 482), (1, 5000), (100, 90),
                 *[tuple(int(v) for v in rng.integers(1, 2000, 2)) for _ in range(40)]]
        ref = types.SimpleNamespace(keep_aspect_ratio=True, min_dimension=lo, max_dimension=hi,
                                    height=inh, width=inw)
        cases += [[h, w, inh, inw, lo, hi, list(Detector.scaled_size(ref, h, w))] for h, w in sizes]
    got = browser.execute_async_script(
        "const [cases, done] = arguments; import('./detector.js').then((m) => done("
        "cases.map(([h, w, inh, inw, lo, hi]) => m.keepAspectSize(h, w, inh, inw, lo, hi))),"
        "(e) => done({error: String(e)}))", cases)
    assert got == [c[-1] for c in cases]
    assert cases[1][-1] == [120, 160] and cases[3][-1] == [120, 160]  # 482 x 640: 120.5 -> 120


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
