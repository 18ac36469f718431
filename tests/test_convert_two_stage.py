"""convert/export_tflite.py on tiny trained Faster R-CNN and R-FCN runs: built-in ops only,
float32 parity with TensorFlow, the edge runtime's letterboxing, the knobs and their errors."""
from __future__ import annotations

import collections
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from convert import export_tflite as export_lib
from convert import sources
from convert.postprocess_op import OP_NAME
from convert.sources import ExportError
from edge_runtime import Detector
from edge_runtime.interpreter import make_interpreter, op_names
from tests.helpers import assert_load_writes_preprocess, make_dataset, tiny_two_stage_config

ARCHS = ("faster_rcnn", "rfcn")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("two_stage_convert_data")), train=8, val=4)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    from train.trainer import fit

    root = tmp_path_factory.mktemp("two_stage_convert_runs")
    out = {}
    for arch in ARCHS:
        out[arch] = str(root / arch)
        fit(tiny_two_stage_config(arch, steps=20, checkpoint_every=20), data, out[arch],
            progress=False)
    return out


@pytest.fixture(scope="module")
def exports(runs, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage_exports")
    return {arch: (str(root / f"{arch}.tflite"),
                   export_lib.export_tflite(sources.from_run(runs[arch]),
                                            str(root / f"{arch}.tflite"), "float32", data=data,
                                            num_check_images=None, progress=False))
            for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_float32_equals_tensorflow_with_builtin_ops_only(arch, exports):
    path, meta = exports[arch]
    check = meta["check"]
    assert check["identical"] and check["paired"] > 0 and check["images"] == 4
    assert check["without_identical_partner"] == 0  # near-ties may pair less closely
    interpreter, _ = make_interpreter(path, use_xnnpack=False)
    ops = collections.Counter(op_names(interpreter))
    assert not {o for o in ops if not o.isupper()}, ops  # no custom op, the fused one neither
    k = meta["postprocess"]["num_classes"]
    # the proposals' NMS and top-k, then one NMS per class and the top-k merging them
    assert ops["NON_MAX_SUPPRESSION_V4"] == 1 + k and ops["TOPK_V2"] == 2, ops
    assert ops["BATCH_MATMUL"] >= 2  # the crops
    assert meta["postprocess"]["fused"] is False and "NON_MAX_SUPPRESSION_V4" in meta[
        "postprocess"]["nms"]
    assert "WHILE" not in ops and not any(o.startswith("Flex") for o in ops)
    assert meta["model"]["meta_architecture"] == arch
    assert meta["model"]["num_proposals"] == 32 and meta["model"]["rpn_stride"] == 16
    assert meta["input"]["shape"] == [1, 160, 160, 3]
    assert (meta["input"]["resize"], meta["input"]["min_dimension"],
            meta["input"]["max_dimension"]) == ("keep_aspect_ratio", 128, 160)
    saved = json.load(open(os.path.splitext(path)[0] + ".json"))
    assert saved["model"] == meta["model"]


@pytest.mark.parametrize("arch", ARCHS)
def test_edge_runtime_letterboxes_like_training(arch, runs, exports):
    """A 120 x 200 image: the runtime scales it to 96 x 160 inside the 160 x 160 input, pads
    it, and maps the boxes back; TensorFlow on the same padded input agrees."""
    from train.evaluate import load_run

    path, _ = exports[arch]
    detector = Detector(path, interpolation="area")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    image[30:90, 40:120] = (230, 40, 40)
    got = detector.detect(image)
    assert detector.window == (96 / 160, 1.0)
    _, _, model, _ = load_run(runs[arch])
    canvas, window = model.image_resizer.resize_numpy(image)
    assert np.allclose(window, detector.window)
    x = canvas.astype(np.float32)[None]
    source = sources.from_run(runs[arch])
    ref = source.detect((x - 127.5) / 127.5)
    n = int(ref["num_detections"][0])
    boxes = np.clip(ref["boxes"][0, :n].numpy() / np.tile(window, 2), 0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    assert len(got) == int(keep.sum()) > 0
    # identical pairs by class and overlap; detections scoring 1e-7 apart may swap places and
    # NMS may decide a tie at its IoU threshold either way
    from convert.checks import pair_detections
    pairs = pair_detections(
        {"boxes": boxes[keep], "classes": ref["classes"][0, :n].numpy()[keep],
         "scores": ref["scores"][0, :n].numpy()[keep]},
        {"boxes": got.boxes, "classes": got.classes, "scores": got.scores},
        max_detections=source.nms.max_detections, score_threshold=0.0,
        iou_threshold=source.nms.iou_threshold, min_iou=0.9999)
    assert pairs["unpaired_hard"] == 0 and len(pairs["ious"]) >= 0.9 * len(got)
    assert max(pairs["score_diffs"]) <= 1e-4
    assert got.boxes.min() >= 0.0 and got.boxes.max() <= 1.0
    assert_load_writes_preprocess(detector)  # padded below and to the right


MODES = ("float16", "dynamic", "int8", "qat")
FAST = {("faster_rcnn", "int8")}  # make test's share (time)


@pytest.mark.parametrize("arch,mode", [
    pytest.param(a, m, marks=() if (a, m) in FAST else pytest.mark.slow)
    for a in ARCHS for m in MODES])
def test_quantized_modes(arch, mode, runs, data, tmp_path):
    """Every mode of both models (a diagonal in make test, all in make test-all): built-ins
    plus the fused op, the four outputs through edge_runtime; integer models keep the crops'
    geometry float. R-FCN int8 also fixes 10 proposals."""
    out = str(tmp_path / f"{arch}_{mode}.tflite")
    proposals = 10 if (arch, mode) == ("rfcn", "int8") else None
    source = sources.from_run(runs[arch], num_proposals=proposals)
    meta = export_lib.export_tflite(source, out, mode, data=data, calibration_images=8,
                                    num_check_images=2, qat_steps=2, progress=False)
    assert meta["model"]["num_proposals"] == (proposals or 32)
    assert meta["check"]["paired"] > 0  # reported, not required to be identical
    interpreter, _ = make_interpreter(out, use_xnnpack=False)
    ops = collections.Counter(op_names(interpreter))
    assert not {o for o in ops if not o.isupper()} and ops["TOPK_V2"] == 2
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    kinds = collections.defaultdict(set)
    for op in interpreter._get_ops_details():
        kinds[op["op_name"]] |= {np.dtype(dtypes[i]).name for i in op["inputs"] if i >= 0}
    detector = Detector(out)
    if mode in ("int8", "qat"):
        assert meta["input"]["dtype"] == "uint8" and detector.input_dtype == np.uint8
        assert "BATCH_MATMUL" in meta["export"]["float_ops"]
        assert kinds["BATCH_MATMUL"] == {"float32"}  # the crops' geometry stays float
        assert "int8" in kinds["CONV_2D"]
    else:
        assert detector.input_dtype == np.float32
    if mode == "qat":
        assert meta["export"]["qat"]["steps"] == 2 and meta["export"]["qat"]["skipped_layers"] == []
    d = detector.detect(np.full((100, 140, 3), 128, np.uint8))
    assert d.boxes.shape[1] == 4 and len(d) <= 100
    assert all(0 <= c < source.nms.num_classes for c in d.classes)


@pytest.mark.slow
def test_builtin_second_stage_nms_gives_the_fused_ops_detections(runs, data, tmp_path):
    """benchmarks/two_stage_nms.py's alternative (one NON_MAX_SUPPRESSION_V4 per class and a
    TOPK_V2 merge) detects exactly what the exported fused op does."""
    from benchmarks.two_stage_nms import convert, same

    source = sources.from_run(runs["faster_rcnn"])
    images = export_lib.check_images(data, "val", None, source.resizer)
    found = {}
    for builtin in (False, True):
        path = str(tmp_path / f"{builtin}.tflite")
        with open(path, "wb") as f:
            f.write(convert(source, builtin))
        interpreter, _ = make_interpreter(path, use_xnnpack=False)
        ops = set(op_names(interpreter))
        assert (OP_NAME in ops) != builtin and "NON_MAX_SUPPRESSION_V4" in ops
        detector = Detector(path)
        found[builtin] = []
        for image in images:
            detector.invoke(detector.to_input(image))
            found[builtin].append(detector.parse(detector.raw_outputs(), window=(1.0, 1.0)))
    assert sum(len(d) for d in found[False]) > 0
    assert all(same(a, b) for a, b in zip(found[False], found[True]))


def _cli(*args):
    return export_lib.main([str(a) for a in args])


def test_bad_input_is_reported_and_nothing_written(runs, data, tmp_path, capsys):
    run = runs["rfcn"]
    out = tmp_path / "m.tflite"
    cases = [
        (["--num-proposals", "301"], "--num-proposals must be in 1..300"),
        (["--num-proposals", "0"], "--num-proposals must be in 1..300"),
        (["--image-size", "8"], "--image-size must be at least 32"),
        (["--no-postprocess"], "end in their own built-in NMS"),
        (["--format", "saved_model"], "saved_model is SSD-only"),
        (["--nms", "fused"], "--nms fused: rfcn exports end in per-class built-in NMS"),
    ]
    for extra, message in cases:
        assert _cli("--run", run, "--out", out, *extra) == 2, extra
        assert message in capsys.readouterr().err, extra
        assert not out.exists() and not (tmp_path / "m.json").exists()
    assert os.listdir(tmp_path) == []


def test_unknown_meta_architecture_is_refused(runs, monkeypatch):
    from train.meta_architectures.rfcn import RFCN

    monkeypatch.setattr(RFCN, "meta_architecture", "cascade_rcnn")
    with pytest.raises(ExportError, match="does not know meta-architecture 'cascade_rcnn'"):
        sources.from_run(runs["rfcn"])


def test_proposals_of_one_image_need_no_loop():
    """Batch 1 (the export) takes the loop-free path, with the same result as the batch path."""
    from train.core.box_coder import FasterRcnnBoxCoder
    from train.core.proposals import generate_proposals

    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 0.7, (50, 2))
    anchors = tf.constant(np.concatenate([corner, corner + rng.uniform(0.05, 0.3, (50, 2))], 1),
                          tf.float32)
    enc = tf.constant(rng.normal(0, 0.5, (2, 50, 4)), tf.float32)
    logits = tf.constant(rng.normal(0, 2, (2, 50, 2)), tf.float32)
    kw = dict(pre_nms_top_k=40, max_proposals=12, iou_threshold=0.7)
    both = generate_proposals(enc, logits, anchors, FasterRcnnBoxCoder(), **kw)
    for i in range(2):
        one = generate_proposals(enc[i:i + 1], logits[i:i + 1], anchors, FasterRcnnBoxCoder(),
                                 **kw)
        for key in ("boxes", "scores", "num_proposals"):
            np.testing.assert_allclose(one[key][0], both[key][i], atol=1e-7)
    graph = tf.function(lambda e, l: generate_proposals(e, l, anchors, FasterRcnnBoxCoder(),
                                                        **kw)).get_concrete_function(
        tf.TensorSpec([1, 50, 4]), tf.TensorSpec([1, 50, 2])).graph
    assert not any(op.type in ("While", "StatelessWhile") for op in graph.get_operations())


@pytest.mark.parametrize("arch", ARCHS)
def test_mediapipe_runs_the_export_as_written(arch, exports, data):
    """MediaPipe's ObjectDetector loads a two-stage export too and reports the model's own
    detections. It stretches every image to the padded square input (it has no aspect-kept
    letterbox), which costs AP next to edge_runtime: benchmarks/mediapipe_peer.py measures it."""
    import glob

    from edge_runtime.images import read_image
    from tests.helpers import mediapipe_agrees

    images = [read_image(p) for p in sorted(glob.glob(os.path.join(data, "val", "*.jpg")))]
    assert mediapipe_agrees(exports[arch][0], images) > 0
