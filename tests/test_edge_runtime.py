"""edge_runtime: detect / evaluate / benchmark CLIs, output parsing, bad models and images, no
TensorFlow."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge_runtime import Detector
from edge_runtime.__main__ import main
from edge_runtime.detect import annotated_names, image_paths
from edge_runtime.detector import parse_outputs
from tests.helpers import assert_load_writes_preprocess, make_dataset, write_classifier_tflite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "assets", "shapes_ssd_mobilenet_v2_int8.tflite")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two rendered images of the bundled dataset (with their truth) and a corrupt file."""
    from train.data.synthetic import render_image
    root = tmp_path_factory.mktemp("edge_images")
    paths, truth = [], []
    for i in (3, 5):
        image, annotations, _ = render_image(0, "val", i)
        path = str(root / f"img{i}.jpg")
        cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
        truth.append(annotations)
    bad = root / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    return paths, truth, str(bad)


def test_asset_model_reads_outputs_by_name_and_finds_objects(images):
    det = Detector(MODEL)
    assert det.input_dtype == np.uint8 and det.input_size == (256, 256)
    assert det.labels[:2] == ["circle", "square"] or len(det.labels) == 8
    image = cv2.cvtColor(cv2.imread(images[0][0]), cv2.COLOR_BGR2RGB)
    d = det.detect(image, 0.0)
    assert len(d) > 0 and np.all(np.diff(d.scores) <= 1e-6)  # sorted by score
    assert d.boxes.min() >= 0.0 and d.boxes.max() <= 1.0
    assert d.classes.min() >= 0 and d.classes.max() < 8


@pytest.mark.parametrize("interpolation", ["linear", "linear_exact", "nearest", "area"])
def test_load_writes_the_preprocessed_input_in_place(interpolation):
    assert_load_writes_preprocess(Detector(MODEL, interpolation=interpolation))


def op_outputs():
    """Hand-made outputs of TFLite_Detection_PostProcess for one image (float32, as the op
    gives them): 6 valid rows, then a garbage row past num_detections."""
    boxes = [[0.1, 0.1, 0.5, 0.5],      # 0.9 kept
             [0.2, 1.2, 0.6, 1.5],      # 0.8 wholly right of the image: dropped
             [-0.2, -0.1, 0.4, 0.3],    # 0.7 partly outside: clipped, kept
             [1.1, 0.2, 1.4, 0.5],      # 0.6 wholly below: dropped
             [0.5, 0.5, 0.5, 0.8],      # 0.5 zero height as decoded: dropped
             [0.6, 0.6, 1.3, 0.9],      # 0.2 partly below: clipped, kept (unless thresholded)
             [0.3, 0.3, 0.6, 0.6]]      # past num_detections: ignored
    return {"detection_boxes": np.array([boxes], np.float32),
            "detection_classes": np.array([[0, 3, 1, 2, 4, 5, 7]], np.float32),
            "detection_scores": np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.95]], np.float32),
            "num_detections": np.array([6], np.float32)}


def test_parse_clips_then_drops_zero_area_boxes_keeping_order():
    d = parse_outputs(op_outputs())
    np.testing.assert_allclose(d.scores, [0.9, 0.7, 0.2])
    np.testing.assert_array_equal(d.classes, [0, 1, 5])
    assert d.classes.dtype == np.int32 and d.boxes.dtype == np.float32
    np.testing.assert_allclose(d.boxes, [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.4, 0.3],
                                         [0.6, 0.6, 1.0, 0.9]], atol=1e-7)
    d = parse_outputs(op_outputs(), score_threshold=0.5)
    np.testing.assert_allclose(d.scores, [0.9, 0.7])
    none = dict(op_outputs(), num_detections=np.array([0], np.float32))
    d = parse_outputs(none)
    assert len(d) == 0 and d.boxes.shape == (0, 4)
    outside = dict(op_outputs(), num_detections=np.array([2], np.float32))
    outside["detection_boxes"][0, 0] = [0.2, -0.9, 0.4, -0.1]  # wholly left
    assert len(parse_outputs(outside)) == 0


def test_detect_cli_writes_json_and_annotated_images(images, tmp_path, capsys):
    paths, truth, bad = images
    out_json = str(tmp_path / "dets.json")
    rc = main(["detect", MODEL, *paths, bad, "--out", str(tmp_path / "annotated"),
               "--json", out_json, "--score", "0.3", "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err
    results = json.load(open(out_json))
    assert results and {"file_name", "image_id", "category_id", "label", "bbox",
                        "score"} <= set(results[0])
    assert all(r["score"] >= 0.3 for r in results)
    # at least one large ground-truth object is found (same category, IoU >= 0.5)
    found = 0
    for i, annotations in enumerate(truth):
        for a in annotations:
            x, y, w, h = a.bbox
            for r in results:
                if r["image_id"] != i or r["category_id"] != a.category_id:
                    continue
                rx, ry, rw, rh = r["bbox"]
                ix = max(0, min(x + w, rx + rw) - max(x, rx))
                iy = max(0, min(y + h, ry + rh) - max(y, ry))
                if ix * iy / (w * h + rw * rh - ix * iy) >= 0.5:
                    found += 1
                    break
    assert found >= 1
    assert sorted(os.listdir(tmp_path / "annotated")) == ["img3_detections.jpg",
                                                          "img5_detections.jpg"]


def test_annotated_names_tell_same_named_images_apart():
    names = annotated_names(["shots/a/img.jpg", "shots/b/img.jpg", "other.png", "x/IMG.png",
                             "pics/c.jpg", "pics/c.png", "shots_a_img.jpg"])
    assert names == {"shots/a/img.jpg": "shots_a_img_detections.jpg",
                     "shots/b/img.jpg": "shots_b_img_detections.jpg",
                     "x/IMG.png": "x_IMG_detections.jpg",   # clashes without case
                     "other.png": "other_detections.jpg",   # alone: the plain name
                     "pics/c.jpg": "c_jpg_detections.jpg",  # one folder: the extension
                     "pics/c.png": "c_png_detections.jpg",
                     "shots_a_img.jpg": "shots_a_img_2_detections.jpg"}  # still equal
    assert annotated_names(["img.jpg"]) == {"img.jpg": "img_detections.jpg"}


def test_detect_out_keeps_same_named_images_of_two_folders(images, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "img.jpg").write_bytes(open(images[0][0], "rb").read())
    rc = main(["detect", MODEL, str(tmp_path / "a"), str(tmp_path / "b"), "--out",
               str(tmp_path / "out"), "--no-progress", "--no-probe"])
    assert rc == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a_img_detections.jpg",
                                                    "b_img_detections.jpg"]
    assert cv2.imread(str(tmp_path / "out" / "a_img_detections.jpg")).shape[2] == 3


def test_image_paths_expand_folders_and_globs(tmp_path):
    for name in ("b.PNG", "a.jpeg", "c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()  # a folder, whatever its name says
    a, b, c = (str(tmp_path / n) for n in ("a.jpeg", "b.PNG", "c.webp"))
    assert image_paths([str(tmp_path)]) == [a, b, c]  # by extension, any case, sorted
    assert image_paths([str(tmp_path / "[bc].*"), a, "missing.jpg"]) == [b, c, a, "missing.jpg"]
    assert image_paths([c, str(tmp_path)]) == [c, a, b]  # each image once


def test_detect_cli_takes_folders_and_globs(images, tmp_path, capsys):
    paths, _, bad = images
    folder = os.path.dirname(paths[0])
    assert main(["detect", MODEL, folder, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err  # in the folder, unreadable: skipped
    assert [line.split(":")[0] for line in captured.out.splitlines()[:2]] == paths
    pattern = os.path.join(folder, "img*.jpg")  # quoted on a command line: we expand it
    assert main(["detect", MODEL, pattern, paths[0], "--no-progress"]) == 0
    assert "in 2 image(s)" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    for arg in (str(empty), str(tmp_path / "*.png")):
        assert main(["detect", MODEL, arg, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {arg}: no image file") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The tiny bundled dataset: 4 validation images."""
    return make_dataset(str(tmp_path_factory.mktemp("edge_eval")), train=1, val=4)


def test_evaluate_cli_takes_the_interpreter_flags(dataset, tmp_path):
    def run(*flags):
        path = str(tmp_path / "eval.json")
        assert main(["evaluate", MODEL, "--data", dataset, "--json", path, "--no-progress",
                     *flags]) == 0
        report = json.load(open(path))
        timed = ("seconds", "runtime", "coco_summary")  # the summary holds pycocotools' times
        return report, {k: v for k, v in report.items() if k not in timed}

    default, metrics = run()
    assert metrics["num_images"] == 4 and metrics["num_detections"] > 0
    same, same_metrics = run("--threads", "1", "--runtime", "litert")
    assert same_metrics == metrics and same["runtime"]["threads"] == 1
    plain, plain_metrics = run("--threads", "1", "--no-xnnpack")
    assert plain["runtime"] == dict(default["runtime"], threads=1, xnnpack=False)
    # int8 kernels without XNNPACK round differently (scores move by a few 1/255 steps)
    assert plain_metrics["num_images"] == 4 and abs(plain["AP"] - default["AP"]) < 0.05


def test_bad_models_give_clear_errors(tmp_path, images, capsys):
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_text("hello")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(open(MODEL, "rb").read()[:50000])
    for path in (not_tflite, truncated, tmp_path / "missing.tflite"):
        assert main(["detect", str(path), images[0][0], "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert str(path.name) in err and "Traceback" not in err


def test_model_with_other_outputs_is_refused(tmp_path, capsys):
    path = tmp_path / "classifier.tflite"
    write_classifier_tflite(path)
    assert main(["detect", str(path), "x.jpg", "--no-progress"]) == 2
    assert "four-output detection layout" in capsys.readouterr().err


def test_benchmark_cli_json_table_and_against(tmp_path, capsys):
    out = str(tmp_path / "bench.json")
    rc = main(["benchmark", MODEL, "--threads", "1,2", "--runs", "5", "--warmup", "1",
               "--json", out, "--no-progress"])
    assert rc == 0
    report = json.load(open(out))
    assert [r["threads"] for r in report["results"]] == [1, 2]
    r = report["results"][0]
    assert set(r["stages_ms"]) == {"preprocess", "invoke", "postprocess", "end_to_end"}
    assert set(r["stages_ms"]["invoke"]) >= {"median", "p90", "p99", "mean"}
    assert r["stages_ms"]["end_to_end"]["median"] >= r["stages_ms"]["invoke"]["median"]
    assert r["runtime"]["runtime"] == "litert" and r["model_bytes"] == os.path.getsize(MODEL)
    assert {"cpu", "cores", "arch", "os"} <= set(report["machine"]) and r["peak_rss_mb"] > 0
    assert "invoke" in capsys.readouterr().out
    rc = main(["benchmark", MODEL, "--threads", "1", "--runs", "3", "--warmup", "1",
               "--against", out, "--json", str(tmp_path / "b2.json"), "--no-progress"])
    assert rc == 0
    rows = json.load(open(tmp_path / "b2.json"))["against"]["rows"]
    assert len(rows) == 1 and rows[0]["invoke"]["ratio"] > 0
    assert main(["benchmark", MODEL, "--against", str(tmp_path / "nope.json")]) == 2


def test_no_module_imports_tensorflow_or_the_training_code():
    """Static check: edge_runtime imports neither TensorFlow/Keras nor train/ or convert/ (a Pi
    has only the edge extra); the one way it reaches TensorFlow is the documented tf.lite
    fallback in interpreter.py, by module name string."""
    for name in os.listdir(os.path.join(ROOT, "edge_runtime")):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(ROOT, "edge_runtime", name)).read())
        for node in ast.walk(tree):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for m in modules:
                assert m.split(".")[0] not in ("tensorflow", "tf_keras", "keras", "train",
                                               "convert", "benchmarks"), (name, m)


def test_runs_in_a_venv_with_only_the_edge_extra(tmp_path, images):
    """A fresh virtual environment with `pip install .[edge]` of a copy holding only setup.py
    and edge_runtime/ (what goes onto a Pi): no TensorFlow, no training code, and detect,
    benchmark and evaluate still work."""
    import shutil
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "edge_runtime"), src / "edge_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "setup.py"), src / "setup.py")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          f"{src}[edge]"], capture_output=True, text=True)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr:
        pytest.skip(f"package index unreachable: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": ""}
    for absent in ("tensorflow", "train"):  # really not in there
        assert subprocess.run([py, "-c", f"import {absent}"], capture_output=True,
                              cwd=str(tmp_path), env=env).returncode != 0, absent
    out = subprocess.run([py, "-m", "edge_runtime", "detect", MODEL, *images[0], "--score",
                          "0.3", "--json", str(tmp_path / "d.json"), "--no-progress"],
                         capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.load(open(tmp_path / "d.json"))
    out = subprocess.run([py, "-m", "edge_runtime", "benchmark", MODEL, "--runs", "3",
                          "--warmup", "1", "--json", str(tmp_path / "b.json"), "--no-progress"],
                         capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.load(open(tmp_path / "b.json"))["results"][0]["runtime"]["runtime"] == "litert"
    data = make_dataset(str(tmp_path / "data"), train=1, val=3)
    out = subprocess.run([py, "-m", "edge_runtime", "evaluate", MODEL, "--data", data, "--json",
                          str(tmp_path / "e.json"), "--no-progress"],
                         capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.load(open(tmp_path / "e.json"))
    assert report["num_images"] == 3 and 0 <= report["AP"] <= 1 and report["num_detections"] > 0


def test_fused_op_multithread_class_drop_is_warned():
    """LiteRT's fused-op regular NMS loses class index T at T > 1 threads: a warning says so."""
    import warnings

    model = os.path.join(os.path.dirname(__file__), "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
    with pytest.warns(UserWarning, match="drops every detection of class index 2"):
        Detector(model, num_threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Detector(model, num_threads=1)


# Mutated copies of MODEL found by tests/test_fuzz_model.py: {name: [(offset, new bytes)]}.
# LiteRT 2.3.0 here segfaulted or aborted on these in allocate_tensors or the first invoke.
CRASHING = {
    "segv_allocate": [(1015304, b"\xff" * 4), (1030124, b"\xff" * 4),
                      (1061484, b"\x1c\xf9\x0c\x36"), (1064532, b"\x01\0\0\0")],
    "segv_invoke": [(1015072, b"\0"), (1026260, b"\x81\xc6\x29\x11")],
    "abort_allocate": [(1041344, b"\0" * 4), (1052268, b"\0" * 4), (1069108, b"\x01\0\0\0")],
    "segv_two_bytes": [(1452, b"\xac\x05")],
}
# ... and these gave a traceback (RuntimeError from allocate/invoke) or an error without the file
REFUSED = {
    "kernel_prepare_fails": [(1069691, b"\x08")],
    "input_lacks_data": [(84404, b"\xd6")],
    "outputs_of_other_sizes": [(236, b"\xa9\0"), (65532, b"\xa9\0\0\0")],
    "output_index_out_of_range": [(236, b"\xff\xff\xff\x03"), (603060, b"\xff\xff\xff\x7f")],
    "output_index_past_int32": [(236, b"\0\0\0\x80")],  # a TypeError from GetTensor
}


def _mutated(tmp_path, name, patches):
    data = bytearray(open(MODEL, "rb").read())
    for offset, new in patches:
        data[offset:offset + len(new)] = new
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("name", sorted(CRASHING))
def test_a_model_that_crashes_the_interpreter_is_an_error_not_a_dead_process(
        tmp_path, images, name):
    path = _mutated(tmp_path, name, CRASHING[name])
    run = [sys.executable, "-m", "edge_runtime", "detect", path, images[0][0], "--no-progress"]
    out = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=120)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert out.returncode == 2 and len(errors) == 1 and path in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    # without the probe the user's process dies (SIGSEGV / SIGABRT) on this CPU, or errors
    out = subprocess.run(run + ["--no-probe"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode in (2, -11, -6), out.stderr


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_corrupt_model_gives_one_line_naming_it(tmp_path, images, capsys, name):
    path = _mutated(tmp_path, name, REFUSED[name])
    assert main(["detect", path, images[0][0], "--no-progress", "--no-probe"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and path in errors[0]


def test_cheap_checks_before_the_interpreter(tmp_path):
    from edge_runtime.interpreter import make_interpreter
    data = open(MODEL, "rb").read()
    for name, content, match in [
            ("tiny", data[:20], "20 bytes, too small for a TFLite model"),
            ("identifier", data[:4] + b"TFL2" + data[8:], 'no "TFL3" flatbuffer identifier'),
            ("root", b"\0\0\0\x7f" + data[4:], "root table offset points past the end")]:
        (tmp_path / f"{name}.tflite").write_bytes(content)
        with pytest.raises(ValueError, match=match):
            make_interpreter(str(tmp_path / f"{name}.tflite"))


@pytest.mark.parametrize("edit, match", [
    ({"labels": [1, 2]}, "'labels' is \\[1, 2\\], expected a list of strings"),
    ({"category_ids": [1, 2]}, "'category_ids' .* expected one id per label \\(8\\)"),
    ({"input": {"mean": 0, "std": 0}}, "'input.std' is 0, expected a finite number \\(not 0\\)"),
    ({"input": "uint8"}, "'input' is 'uint8', expected an object"),
    ({"version": 2}, "'version' is 2, expected 1"),
    ({"postprocess": {"num_classes": "8"}}, "'postprocess.num_classes' is '8'"),
    ({"input": {"resize": "keep_aspect_ratio", "min_dimension": 600}},
     "'input.max_dimension' is None, expected a positive integer"),
])
def test_a_sidecar_off_its_schema_is_named(tmp_path, edit, match):
    """Found by tests/test_fuzz_model.py: an AttributeError/TypeError from Detector's reads."""
    path = tmp_path / "m.tflite"
    path.write_bytes(open(MODEL, "rb").read())
    meta = json.load(open(MODEL[:-len(".tflite")] + ".json"))
    (tmp_path / "m.json").write_text(json.dumps({**meta, **edit}))
    with pytest.raises(ValueError, match=f"m.json: model metadata {match}"):
        Detector(str(path))
    (tmp_path / "m.json").write_bytes(b'{"format": "\xff"}')  # UnicodeDecodeError unnamed
    with pytest.raises(ValueError, match="m.json: unreadable model metadata"):
        Detector(str(path))
