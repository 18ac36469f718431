"""`python -m benchmarks pick`: answers checked against ones worked out by hand from a fixture
(four hand-written cells and a Pi file in edge_runtime benchmark's schema, written here), the
committed mobile sweep with and without a device file, the demo's files (a device file and
`edge_runtime evaluate` score files, laid out as the real writers lay them out) alone and with
the cells, bad input, and the report's table."""
import json
import os

import pytest

from benchmarks import report as report_module
from benchmarks.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(ROOT, "benchmarks", "results", "sweep_mobile")
EPYC = {"cpu": "AMD EPYC", "cores": 2, "arch": "x86_64", "os": "Linux", "python": "3.11.7",
        "hostname": "vm"}
PI = {"cpu": "Raspberry Pi 4 Model B Rev 1.4", "cores": 4, "arch": "aarch64",
      "os": "Linux-6.6-aarch64", "python": "3.11.2", "hostname": "pi4"}


def metrics(ap):
    return {"AP": ap, "AP50": 0.7, "AP_small": ap / 2, "AP_medium": 0.5, "AP_large": 0.6,
            "AR100": 0.6}


def cell(cid, meta, extractor, resolution, proposals, times, ap=None, ap_int8=None):
    """A sweep cell (benchmarks/results_schema.py); times: {quant: {threads: (median, p90)}}."""
    return {"schema": "frontier.sweep.cell/1",
            "cell": {"id": cid, "meta_architecture": meta, "extractor": extractor,
                     "resolution": resolution, "num_proposals": proposals, "stride": None,
                     "config": f"{meta}_{extractor}_shapes"},
            "status": "ok", "machine": EPYC, "device": "CPU", "params": 10 ** 6,
            "flops": 10 ** 9, "peak_memory_mb": 500.0,
            "tf_latency_ms": {"median": 50.0, "p90": 55.0, "warmup": 2, "runs": 10,
                              "threads": None},
            "tflite": {q: {"file": f"{cid}.{q}.tflite", "size_bytes": 1000,
                           "invoke_ms": {str(t): {"median": m, "p90": p90}
                                         for t, (m, p90) in by_threads.items()}}
                       for q, by_threads in times.items()},
            "ap": None if ap is None else metrics(ap),
            "ap_int8": None if ap_int8 is None else metrics(ap_int8),
            "ap_data": None if ap is None else "data/shapes_large val",
            "trained_run": None if ap is None else {
                "path": f"runs/not_here_{cid}", "meta_architecture": meta,
                "extractor": extractor, "stride": None}}


CELLS = [
    cell("ssd-mobilenet_v2-256", "ssd", "mobilenet_v2", 256, None,
         {"float32": {1: (6.0, 7.0), 2: (4.0, 4.5)}, "int8": {1: (3.0, 3.5), 2: (2.5, 2.8)}},
         ap=0.46, ap_int8=0.40),
    cell("faster_rcnn-mobilenet_v2-300-p50", "faster_rcnn", "mobilenet_v2", 300, 50,
         {"float32": {1: (45.0, 50.0), 2: (28.0, 31.0)}, "int8": {1: (25.0, 27.0),
                                                               2: (18.0, 21.0)}},
         ap=0.55, ap_int8=0.52),
    cell("rfcn-mobilenet_v2-300-p50", "rfcn", "mobilenet_v2", 300, 50,   # int8 never scored
         {"float32": {1: (30.0, 33.0), 2: (19.0, 20.5)}, "int8": {2: (9.0, 10.0)}}, ap=0.49),
    cell("ssd-mobilenet_v1-300", "ssd", "mobilenet_v1", 300, None,       # untrained, fastest
         {"float32": {1: (1.0, 1.1)}}),
]


def device_result(model, threads, median, p90):
    """One entry of `edge_runtime benchmark --json` (edge_runtime/benchmark.py's keys)."""
    def stage(m, p):
        return {"median": m, "p90": p, "p99": p * 1.1, "mean": m, "min": m * 0.9, "n": 200}
    return {"model": model, "path": f"/home/pi/models/{model}", "model_bytes": 1000,
            "quantize": model.split(".")[-2], "input": {"shape": [1, 300, 300, 3],
                                                       "dtype": "float32"},
            "image": [480, 640, 3], "interpolation": "linear", "threads": threads,
            "runs": 200, "warmup": 20, "runtime": {"runtime": "ai-edge-litert", "version": "2.3.0"},
            "stages_ms": {"preprocess": stage(1.0, 1.2), "invoke": stage(median, p90),
                          "postprocess": stage(0.2, 0.3),
                          "end_to_end": stage(median + 1.2, p90 + 1.5)},
            "fps": 1000.0 / (median + 1.2), "overhead_fraction": 1.2 / median,
            "peak_rss_mb": 80.0}


def device_file(path, entries, machine=PI):
    with open(path, "w") as f:
        json.dump({"tool": "edge_runtime benchmark", "machine": machine,
                   "date": "2026-12-04T10:00:00+0000",
                   "results": [device_result(*e) for e in entries]}, f)
    return str(path)


PI_ENTRIES = [("ssd-mobilenet_v2-256.float32.tflite", 4, 30.0, 33.0),
              ("ssd-mobilenet_v2-256.int8.tflite", 4, 12.0, 14.0),
              ("faster_rcnn-mobilenet_v2-300-p50.float32.tflite", 4, 300.0, 330.0),
              ("faster_rcnn-mobilenet_v2-300-p50.int8.tflite", 4, 150.0, 160.0),
              ("rfcn-mobilenet_v2-300-p50.float32.tflite", 4, 90.0, 99.0),
              ("ssd-mobilenet_v1-300.float32.tflite", 4, 8.0, 9.0),   # untrained
              ("my_own_model.tflite", 4, 5.0, 6.0)]                   # not a cell


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pick")
    results = tmp / "results"
    results.mkdir()
    for c in CELLS:
        (results / f"{c['cell']['id']}.json").write_text(json.dumps(c))
    return str(results), device_file(tmp / "pi.json", PI_ENTRIES)


def run(capsys, tmp_path, *argv):
    out = tmp_path / "answer.json"
    code = main(["pick", *argv, "--json", str(out)])
    cap = capsys.readouterr()
    answer = json.loads(out.read_text()) if out.exists() else None
    return code, cap.out, cap.err, answer


def brief(o):
    return (o["cell"], o["quant"], o["threads"], o["median"], o["accuracy"])


# Worked out by hand from CELLS: a model fits when its median <= budget, is listed once at its
# fastest thread count that fits, ranked by accuracy; int8 of the R-FCN cell has no AP and the
# untrained SSD v1 cell (fastest of all) has none either: never picked, never "the fastest".
SSD, FRCNN, RFCN = "ssd-mobilenet_v2-256", "faster_rcnn-mobilenet_v2-300-p50", \
    "rfcn-mobilenet_v2-300-p50"
BY_HAND_SWEEP = {
    5: [(SSD, "float32", 2, 4.0, 0.46), (SSD, "int8", 2, 2.5, 0.40)],
    20: [(FRCNN, "int8", 2, 18.0, 0.52), (RFCN, "float32", 2, 19.0, 0.49),
         (SSD, "float32", 2, 4.0, 0.46), (SSD, "int8", 2, 2.5, 0.40)],
    100: [(FRCNN, "float32", 2, 28.0, 0.55), (FRCNN, "int8", 2, 18.0, 0.52),
          (RFCN, "float32", 2, 19.0, 0.49), (SSD, "float32", 2, 4.0, 0.46),
          (SSD, "int8", 2, 2.5, 0.40)],
}
BY_HAND_PI = {
    5: None,  # nothing fits: the fastest trained model is SSD int8 at 12 ms, 7 ms over
    20: [(SSD, "int8", 4, 12.0, 0.40)],
    100: [(RFCN, "float32", 4, 90.0, 0.49), (SSD, "float32", 4, 30.0, 0.46),
          (SSD, "int8", 4, 12.0, 0.40)],
}


@pytest.mark.parametrize("budget", [5, 20, 100])
def test_fixture_on_the_sweeps_own_times(fixture, capsys, tmp_path, budget):
    code, out, err, a = run(capsys, tmp_path, "--budget-ms", str(budget), "--results",
                            fixture[0])
    assert code == 0 and err == ""
    assert [brief(a["pick"])] + [brief(o) for o in a["runners_up"]] == BY_HAND_SWEEP[budget]
    assert a["pick"]["spare_ms"] == budget - BY_HAND_SWEEP[budget][0][3]
    assert a["pick"]["device"] == "AMD EPYC (2 cores, x86_64)"
    skipped = {(s["cell"], s["quant"]): s["why"] for s in a["skipped"]}
    assert skipped == {(RFCN, "int8"): "no AP measured for its int8 file",
                       ("ssd-mobilenet_v1-300", "float32"): "untrained (random weights)"}
    pick_line = out.splitlines()[1]
    if budget == 20:
        assert pick_line == ("pick: FRCNN MNv2 300 p50 int8, 2 threads: AP 0.520 at 18.00 ms "
                             "(p90 21.00), 2.00 ms to spare")
        # p90 over the budget is flagged; the runner-up costs 3 AP points
        assert "  21.00*     2.00       —" in out and "* p90 over the budget" in out
        assert "   2  R-FCN MNv2 300 p50       float32        2    0.490     19.00   20.50* " \
               "    1.00    -3.0" in out


def test_fixture_nothing_fits(fixture, capsys, tmp_path):
    code, out, err, a = run(capsys, tmp_path, "--budget-ms", "1", "--results", fixture[0])
    assert code == 1 and a["pick"] is None and a["runners_up"] == []
    assert brief(a["fastest"]) == (SSD, "int8", 2, 2.5, 0.40) and a["over_ms"] == 1.5
    assert out.splitlines()[0].startswith("nothing fits within 1 ms on AMD EPYC (2 cores, "
                                          "x86_64)") and \
        "the fastest is SSD MNv2 256 int8, 2 threads, at 2.50 ms (p90 2.80), 1.50 ms over " \
        "budget (AP 0.400)" in out


@pytest.mark.parametrize("budget", [5, 20, 100])
def test_fixture_on_a_pi_file(fixture, capsys, tmp_path, budget):
    code, out, err, a = run(capsys, tmp_path, "--budget-ms", str(budget), "--results",
                            fixture[0], "--device", fixture[1])
    assert "no cell has a tflite file named my_own_model.tflite" in err  # a warning, no more
    want = BY_HAND_PI[budget]
    if want is None:
        assert code == 1 and a["pick"] is None
        assert brief(a["fastest"]) == (SSD, "int8", 4, 12.0, 0.40) and a["over_ms"] == 7.0
        assert "7.00 ms over budget" in out
    else:
        assert code == 0 and [brief(a["pick"])] + [brief(o) for o in a["runners_up"]] == want
        assert a["pick"]["device"] == "Raspberry Pi 4 Model B Rev 1.4 (4 cores, aarch64)"
        assert out.startswith(f"Within {budget} ms on Raspberry Pi 4 Model B Rev 1.4")


def test_metric_ap_small(fixture, capsys, tmp_path):
    code, out, _, a = run(capsys, tmp_path, "--budget-ms", "20", "--results", fixture[0],
                          "--metric", "AP_small")
    assert code == 0 and a["metric"] == "AP_small" and a["pick"]["accuracy"] == 0.26
    assert "AP_small 0.260" in out


# --- the committed mobile sweep ----------------------------------------------------------------

def committed(cid):
    with open(os.path.join(SWEEP, cid + ".json")) as f:
        return json.load(f)


def test_committed_sweep_on_its_own_times(capsys, tmp_path):
    """By hand from the committed cells: of the 5 trained cells' 10 files, the fastest thread
    count of each that fits, the most accurate first."""
    want = {5: ("ssd-mobilenet_v2-256", "float32", 2, 2),
            20: ("faster_rcnn-mobilenet_v2-300-p50", "float32", 2, 8),
            100: ("faster_rcnn-mobilenet_v2-300-p50", "float32", 2, 10)}
    for budget, (cid, q, threads, fit) in want.items():
        code, out, err, a = run(capsys, tmp_path, "--budget-ms", str(budget), "--results", SWEEP)
        c = committed(cid)
        t = c["tflite"][q]["invoke_ms"][str(threads)]
        ap = c["ap" if q == "float32" else "ap_int8"]["AP"]
        assert code == 0 and err == "", err
        assert brief(a["pick"]) == (cid, q, threads, t["median"], ap)
        assert a["pick"]["p90"] == t["p90"]
        assert 1 + len(a["runners_up"]) == fit and len(a["skipped"]) == 26  # 13 untrained cells
        accuracy = [a["pick"]["accuracy"]] + [o["accuracy"] for o in a["runners_up"]]
        assert accuracy == sorted(accuracy, reverse=True)
        assert all(o["median"] <= budget for o in a["runners_up"])
        assert out.splitlines()[1].startswith("pick: ")
        assert f"AP {ap:.3f} at {t['median']:.2f} ms" in out


def test_committed_sweep_with_a_phone_file(capsys, tmp_path):
    """No device file of the sweep's models is committed (the demo's edge_benchmark.json names
    model_*.tflite, another model set): a phone's, written here in the benchmark's schema."""
    phone = device_file(tmp_path / "phone.json", [
        ("ssd-mobilenet_v2-256.int8.tflite", 4, 4.1, 4.6),
        ("ssd-mobilenet_v2-256.float32.tflite", 4, 7.9, 8.8),
        ("rfcn-mobilenet_v2-300-p50.int8.tflite", 4, 19.5, 22.0),
        ("faster_rcnn-mobilenet_v2-300-p50.int8.tflite", 4, 31.0, 35.0),
        ("faster_rcnn-mobilenet_v2-300-p300.float32.tflite", 4, 95.0, 99.0),
        ("ssd-mobilenet_v2-300.int8.tflite", 4, 3.0, 3.2)],   # untrained in the sweep
        machine={"cpu": "Qualcomm Kryo 585", "cores": 8, "arch": "aarch64"})
    ap = lambda cid, key="ap": committed(cid)[key]["AP"]  # noqa: E731
    want = {5: ("ssd-mobilenet_v2-256", "int8", ap("ssd-mobilenet_v2-256", "ap_int8")),
            20: ("rfcn-mobilenet_v2-300-p50", "int8", ap("rfcn-mobilenet_v2-300-p50", "ap_int8")),
            100: ("faster_rcnn-mobilenet_v2-300-p300", "float32",
                  ap("faster_rcnn-mobilenet_v2-300-p300"))}
    for budget, (cid, q, acc) in want.items():
        code, out, err, a = run(capsys, tmp_path, "--budget-ms", str(budget), "--results", SWEEP,
                                "--device", phone)
        assert code == 0 and err == ""
        assert (a["pick"]["cell"], a["pick"]["quant"], a["pick"]["accuracy"]) == (cid, q, acc)
        assert a["pick"]["device"] == "Qualcomm Kryo 585 (8 cores, aarch64)"
    code, out, _, a = run(capsys, tmp_path, "--budget-ms", "3", "--results", SWEEP,
                          "--device", phone)
    assert code == 1 and a["fastest"]["cell"] == "ssd-mobilenet_v2-256" and \
        "1.10 ms over budget" in out


# --- bad input: one line naming the value, exit 2, nothing written ------------------------------

@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf"])
def test_bad_budget(capsys, tmp_path, value):
    code, out, err, a = run(capsys, tmp_path, "--budget-ms", value, "--results", "/no/such")
    assert code == 2 and out == "" and a is None
    assert err == f"pick: --budget-ms must be a positive number of milliseconds, got '{value}'\n"


def test_device_file_of_another_model_set(capsys, tmp_path):
    demo = device_file(tmp_path / "edge_benchmark.json", [     # what `make demo` times
        ("model_float32.tflite", 1, 4.1, 4.3), ("model_int8.tflite", 1, 2.5, 2.6)])
    code, out, err, a = run(capsys, tmp_path, "--budget-ms", "20", "--results", SWEEP,
                            "--device", demo)
    assert code == 2 and out == "" and a is None and err.count("\n") == 1
    assert err == f"pick: --device {demo}: a device file of another model set: none of its " \
        "models (model_float32.tflite, model_int8.tflite) is a .tflite file of the sweep's cells\n"


@pytest.mark.parametrize("content, words", [
    ("{\"tool\": \"edge_runtime benchmark\"", "cannot read it as JSON"),
    (json.dumps({"device": "pixel", "latency": {"a.tflite": 3}}), "not an edge_runtime benchmark"),
])
def test_device_file_unreadable_or_foreign(capsys, tmp_path, content, words):
    path = tmp_path / "dev.json"
    path.write_text(content)
    code, out, err, _ = run(capsys, tmp_path, "--budget-ms", "20", "--results", SWEEP,
                            "--device", str(path))
    assert code == 2 and out == "" and err.startswith(f"pick: --device {path}: {words}")
    assert err.count("\n") == 1


def test_results_without_cells(capsys, tmp_path):
    code, _, err, _ = run(capsys, tmp_path, "--budget-ms", "20", "--results", str(tmp_path))
    assert code == 2 and err == f"pick: --results {tmp_path}: no valid sweep cell (no cell " \
        "JSON files)\n"


def test_help_names_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        main(["pick", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0 and "1: nothing fits; 2: bad input" in text
    assert "LiteRT invoke" in text and "untrained cells (no AP) are skipped" in text


# --- scored files: the demo's models, timed in a device file, scored by `edge_runtime evaluate` ---

ASSET = os.path.join(ROOT, "tests", "assets", "shapes_ssd_mobilenet_v2_int8.tflite")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The writers' own layouts: one real `edge_runtime evaluate --json` and one real
    `edge_runtime benchmark --json` of the bundled int8 model (one blank image, two frames);
    the files below are these with hand-chosen figures, paths and names."""
    import cv2
    import numpy as np
    from edge_runtime.benchmark import run_benchmark
    from edge_runtime.evaluate import evaluate
    data = tmp_path_factory.mktemp("one_image")
    (data / "annotations").mkdir()
    (data / "val").mkdir()
    cv2.imwrite(str(data / "val" / "a.jpg"), np.zeros((64, 64, 3), np.uint8))
    with open(ASSET[:-len(".tflite")] + ".json") as f:
        labels = json.load(f)["labels"]
    (data / "annotations" / "instances_val.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20],
                         "area": 400, "iscrowd": 0}],
        "categories": [{"id": i, "name": n} for i, n in enumerate(labels, 1)]}))
    scored = evaluate(ASSET, str(data), json_path=str(data / "eval.json"), num_threads=1,
                      progress=False)
    timed = run_benchmark([ASSET], threads=(1,), runs=2, warmup=0, progress=False)
    with open(data / "eval.json") as f:
        assert json.load(f) == scored  # what --json wrote is what evaluate returned
    return scored, timed


def eval_file(layouts, path, model, ap, ap_small=0.2):
    """`edge_runtime evaluate --json` of ``model`` (an absolute path), AP and AP_small by hand."""
    with open(path, "w") as f:
        json.dump(dict(layouts[0], model=str(model), AP=ap, AP_small=ap_small), f)
    return str(path)


def timed(layouts, path, quant, threads, median, p90):
    """One result of `edge_runtime benchmark --json` for the file at ``path``."""
    r = layouts[1]["results"][0]
    return dict(r, model=os.path.basename(path), path=str(path), quantize=quant, threads=threads,
                stages_ms=dict(r["stages_ms"], invoke=dict(r["stages_ms"]["invoke"],
                                                            median=median, p90=p90)))


def bench_file(layouts, path, results):
    with open(path, "w") as f:  # `make demo` benchmarks --against the TF times: "against"
        json.dump(dict(layouts[1], machine=EPYC, results=results,
                       against={"file": "runs/demo/tf_benchmark.json", "machine": EPYC,
                                "rows": []}), f)
    return str(path)


@pytest.fixture(scope="module")
def demo(layouts, tmp_path_factory):
    """What `make demo` leaves in runs/demo: edge_benchmark.json (float32 and int8 at 1 and 2
    threads; the int8 model is slower at 2) and eval_model_{float32,int8,qat_int8}.json (the
    QAT model is scored, never timed)."""
    run = tmp_path_factory.mktemp("runs") / "demo"
    run.mkdir()
    f32, i8 = run / "model_float32.tflite", run / "model_int8.tflite"
    device = bench_file(layouts, run / "edge_benchmark.json", [
        timed(layouts, f32, "float32", 1, 45.0, 49.0),
        timed(layouts, f32, "float32", 2, 28.0, 31.0),
        timed(layouts, i8, "int8", 1, 6.0, 6.6), timed(layouts, i8, "int8", 2, 7.5, 9.0)])
    scores = [eval_file(layouts, run / "eval_model_float32.json", f32, 0.50, 0.30),
              eval_file(layouts, run / "eval_model_int8.json", i8, 0.45),
              eval_file(layouts, run / "eval_model_qat_int8.json", run / "model_qat_int8.tflite",
                        0.47)]
    return run, device, scores


def brief_file(o):
    return (o["model"], o["quant"], o["threads"], o["median"], o["accuracy"])


F32, I8 = "model_float32.tflite", "model_int8.tflite"
BY_HAND_DEMO = {   # models fit when median <= budget, each at its fastest thread count that fits
    5: None,       # nothing: the fastest is int8 at 1 thread, 6.0 ms, 1.0 over
    20: [(I8, "int8", 1, 6.0, 0.45)],                                    # float32 needs 28
    100: [(F32, "float32", 2, 28.0, 0.50), (I8, "int8", 1, 6.0, 0.45)],  # int8 5 points less
}


@pytest.mark.parametrize("budget", [5, 20, 100])
def test_the_demos_files(demo, capsys, tmp_path, budget):
    run, device, scores = demo
    code, out, err, a = run_pick(capsys, tmp_path, budget, "--device", device, "--scores",
                                 *scores)
    assert err == f"warning: {device}: model_qat_int8.tflite is not in it: scored " \
        f"({scores[2]}), never timed, left out\n"
    assert a["results"] is None and a["scores"] == scores and a["skipped"] == []
    want = BY_HAND_DEMO[budget]
    if want is None:
        assert code == 1 and a["pick"] is None and a["over_ms"] == 1.0
        assert brief_file(a["fastest"]) == (I8, "int8", 1, 6.0, 0.45)
        assert out.startswith(f"nothing fits within 5 ms on AMD EPYC (2 cores, x86_64) "
                              f"({device} on 3 score file(s)): the fastest is {I8} int8, "
                              "1 thread, at 6.00 ms (p90 6.60), 1.00 ms over budget (AP 0.450)")
        return
    assert code == 0 and [brief_file(o) for o in [a["pick"]] + a["runners_up"]] == want
    assert a["pick"]["cell"] is None and a["pick"]["scores"] == scores[want[0][0] == I8]
    lines = out.splitlines()
    assert lines[1] == {
        20: f"pick: {I8} int8, 1 thread: AP 0.450 at 6.00 ms (p90 6.60), 14.00 ms to spare",
        100: f"pick: {F32} float32, 2 threads: AP 0.500 at 28.00 ms (p90 31.00), 72.00 ms "
             "to spare"}[budget]
    assert lines[-1] == "2 model file(s) scored by AP; skipped 0 scored file(s)"
    if budget == 100:
        assert a["runners_up"][0]["vs_pick"] == pytest.approx(-0.05)
        assert f"   2  {I8:24s} int8           1    0.450      6.00    6.60     94.00    -5.0" \
            in out


def test_the_demos_files_by_ap_small(demo, layouts, capsys, tmp_path):
    """int8's AP_small is -1 here (COCO's "no small objects in the data"): skipped, counted."""
    run, device, scores = demo
    int8 = eval_file(layouts, tmp_path / "eval_model_int8.json", run / I8, 0.45, -1.0)
    code, out, _, a = run_pick(capsys, tmp_path, 100, "--device", device, "--scores",
                               scores[0], int8, "--metric", "AP_small")
    assert code == 0 and brief_file(a["pick"]) == (F32, "float32", 2, 28.0, 0.30)
    assert a["runners_up"] == [] and a["skipped"] == [
        {"cell": None, "scores": int8, "quant": "int8",
         "why": "AP_small -1: no such objects in its data"}]
    assert out.splitlines()[-1] == "1 model file(s) scored by AP_small; skipped 1 scored " \
        "file(s): AP_small -1: no such objects in its data"


def run_pick(capsys, tmp_path, budget, *argv):
    return run(capsys, tmp_path, "--budget-ms", str(budget), *argv)


def test_a_sweep_the_device_file_does_not_time(fixture, demo, capsys, tmp_path):
    """--results with the demo's device file: its cells cannot compete, and the closing line
    says how many (the answer is the demo's alone)."""
    _, device, scores = demo
    code, out, _, a = run_pick(capsys, tmp_path, 100, "--results", fixture[0], "--device",
                               device, "--scores", *scores)
    assert code == 0 and [brief_file(o) for o in [a["pick"]] + a["runners_up"]] == \
        BY_HAND_DEMO[100]
    assert out.splitlines()[-1] == "2 model file(s) scored by AP; skipped 0 file(s) of 0 " \
        f"cell(s); {len(CELLS)} sweep cell(s) not timed in the device file"


# the fixture's cells on a Pi that also timed the demo's two files (copied to /home/pi/models:
# matched to their score files by name); by hand from CELLS, PI_ENTRIES and these two
BY_HAND_MIXED = {
    5: None,  # the fastest trained model is still SSD int8 at 12 ms
    20: [(I8, "int8", 4, 15.0, 0.45), ("SSD MNv2 256", "int8", 4, 12.0, 0.40)],
    100: [(F32, "float32", 4, 40.0, 0.50), ("R-FCN MNv2 300 p50", "float32", 4, 90.0, 0.49),
          ("SSD MNv2 256", "float32", 4, 30.0, 0.46), (I8, "int8", 4, 15.0, 0.45),
          ("SSD MNv2 256", "int8", 4, 12.0, 0.40)],
}


@pytest.mark.parametrize("budget", [5, 20, 100])
def test_sweep_cells_and_scored_files_together(fixture, demo, layouts, capsys, tmp_path,
                                               budget):
    _, _, scores = demo
    pi = bench_file(layouts, tmp_path / "pi.json", [device_result(*e) for e in PI_ENTRIES] + [
        timed(layouts, f"/home/pi/models/{F32}", "float32", 4, 40.0, 44.0),
        timed(layouts, f"/home/pi/models/{I8}", "int8", 4, 15.0, 16.0)])
    code, out, err, a = run_pick(capsys, tmp_path, budget, "--results", fixture[0],
                                 "--device", pi, "--scores", scores[0], "--scores", *scores[1:])
    assert err.splitlines() == [
        f"warning: {pi}: no cell or scored file has a tflite file named my_own_model.tflite "
        "(results skipped)",
        f"warning: {pi}: model_qat_int8.tflite is not in it: scored ({scores[2]}), never "
        "timed, left out"]
    want = BY_HAND_MIXED[budget]
    if want is None:
        assert code == 1 and (a["fastest"]["cell"], a["fastest"]["median"]) == (SSD, 12.0)
        return
    assert code == 0 and [brief_file(o) for o in [a["pick"]] + a["runners_up"]] == want
    assert out.startswith(f"Within {budget} ms on AMD EPYC (2 cores, x86_64), the most accurate "
                          f"by AP ({pi} on {fixture[0]} and 3 score file(s)):")
    assert [(s["cell"], s["quant"]) for s in a["skipped"]] == [("ssd-mobilenet_v1-300",
                                                                "float32")]
    assert out.splitlines()[-1] == "7 model file(s) scored by AP; skipped 1 file(s) of 1 " \
        "cell(s): untrained (random weights)"


def test_a_name_two_scored_files_share(layouts, capsys, tmp_path):
    """runs/a and runs/b both hold a model_int8.tflite: the device result's path tells them
    apart; a result timed elsewhere (a Pi's copy) could be either: an error naming both."""
    a_i8, b_i8 = tmp_path / "a" / I8, tmp_path / "b" / I8
    scores = [eval_file(layouts, tmp_path / "eval_a.json", a_i8, 0.45),
              eval_file(layouts, tmp_path / "eval_b.json", b_i8, 0.41)]
    here = bench_file(layouts, tmp_path / "here.json", [timed(layouts, b_i8, None, 1, 6.0, 7.0)])
    code, out, err, ans = run_pick(capsys, tmp_path, 20, "--device", here, "--scores", *scores)
    assert code == 0 and brief_file(ans["pick"]) == ("b/model_int8.tflite", "?", 1, 6.0, 0.41)
    assert err == f"warning: {here}: a/model_int8.tflite is not in it: scored ({scores[0]}), " \
        "never timed, left out\n"  # and no quantization recorded: "?"
    pi = bench_file(layouts, tmp_path / "pi.json",
                    [timed(layouts, f"/home/pi/models/{I8}", "int8", 4, 15.0, 16.0)])
    (tmp_path / "answer.json").unlink()
    code, out, err, ans = run_pick(capsys, tmp_path, 20, "--device", pi, "--scores", *scores)
    assert code == 2 and out == "" and ans is None
    assert err == f"pick: --device {pi}: model_int8.tflite (timed at /home/pi/models/" \
        f"model_int8.tflite) is ambiguous: scored as {a_i8} ({scores[0]}) and as {b_i8} " \
        f"({scores[1]}); give one of them to --scores\n"


def test_scores_need_a_device(demo, capsys, tmp_path):
    code, out, err, a = run_pick(capsys, tmp_path, 20, "--scores", *demo[2])
    assert code == 2 and out == "" and a is None
    assert err == "pick: --scores needs --device: the scored files are timed only in an " \
        "`edge_runtime benchmark --json` file (the demo's: runs/demo/edge_benchmark.json)\n"


def test_scored_files_the_device_file_lacks(fixture, demo, capsys, tmp_path):
    """The Pi file times the sweep's cells only: the scored files would silently not compete."""
    code, out, err, a = run_pick(capsys, tmp_path, 20, "--results", fixture[0], "--device",
                                 fixture[1], "--scores", *demo[2][:2])
    assert code == 2 and out == "" and a is None and err.count("\n") == 1
    assert err == f"pick: --device {fixture[1]}: none of the scored models ({F32}, {I8}) is " \
        "in it, by path or file name (time them with `python -m edge_runtime benchmark MODEL " \
        "--json FILE`)\n"


@pytest.mark.parametrize("with_sweep", [False, True])
def test_a_device_file_of_yet_another_model_set(demo, layouts, capsys, tmp_path, with_sweep):
    other = bench_file(layouts, tmp_path / "other.json",
                       [timed(layouts, "/phone/yolo.tflite", "int8", 4, 9.0, 10.0)])
    code, out, err, a = run_pick(capsys, tmp_path, 20, "--device", other, "--scores",
                                 *demo[2], *(["--results", SWEEP] if with_sweep else []))
    assert code == 2 and out == "" and a is None
    assert err == f"pick: --device {other}: a device file of another model set: none of its " \
        "models (yolo.tflite) is a .tflite file of " + \
        ("the sweep's cells or the --scores files\n" if with_sweep else "the --scores files\n")


@pytest.mark.parametrize("content, words", [
    ("{\"AP\": 0.5", "cannot read it as JSON"),
    (json.dumps({"AP": 0.5, "checkpoint": "runs/demo/ckpt-1"}),  # train evaluate's eval.json
     "not an `edge_runtime evaluate --json` file (needs \"model\", the .tflite it scored"),
])
def test_a_score_file_that_is_not_one(demo, capsys, tmp_path, content, words):
    bad = tmp_path / "eval.json"
    bad.write_text(content)
    code, out, err, _ = run_pick(capsys, tmp_path, 20, "--device", demo[1], "--scores", str(bad))
    assert code == 2 and out == "" and err.startswith(f"pick: --scores {bad}: {words}")
    assert err.count("\n") == 1


def test_the_committed_sweep_stays_the_default_without_scores(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, _, _, a = run_pick(capsys, tmp_path, 20)
    assert code == 0 and a["results"] == "benchmarks/results/sweep_mobile" and a["scores"] == []
    assert a["pick"]["cell"] == "faster_rcnn-mobilenet_v2-300-p50"


# --- the report's "by budget" table --------------------------------------------------------------

def test_report_by_budget_tables(fixture, tmp_path):
    out = tmp_path / "report"
    report_module.build_report(fixture[0], str(out), [fixture[1]])
    md = (out / "report.md").read_text()
    section = md.split("## By budget")[1].split("\n## ")[0]
    here, pi = section.split("**Raspberry Pi 4")
    # the sweep's machine: 2 (nothing fits) to 50 (fits the most accurate, FRCNN float32 28 ms)
    assert [r.split(" | ")[0] for r in here.splitlines() if r.startswith("| ")][1:] == \
        ["| 2", "| 5", "| 10", "| 20", "| 50"]
    assert "| 2 | nothing fits: the fastest, SSD MNv2 256 int8, 2 threads, misses by 0.50 ms |" \
        in here
    assert "| 20 | FRCNN MNv2 300 p50 int8, 2 threads | 0.520 | 18.00 | 21.00 | R-FCN MNv2 300 " \
           "p50 float32, 2 threads, -3.0 | 4 |" in here
    assert "| 50 | FRCNN MNv2 300 p50 float32, 2 threads | 0.550 | 28.00 | 31.00 |" in here
    # the Pi: 10 (nothing fits, SSD int8 12 ms) to 500 (FRCNN float32 300 ms)
    assert [r.split(" | ")[0] for r in pi.splitlines() if r.startswith("| ")][1:] == \
        ["| 10", "| 20", "| 50", "| 100", "| 200", "| 500"]
    assert "| 100 | R-FCN MNv2 300 p50 float32, 4 threads | 0.490 | 90.00 | 99.00 | SSD MNv2 " \
           "256 float32, 4 threads, -3.0 | 3 |" in pi
    page = (out / "index.html").read_text()
    assert "By budget: the most accurate model within T ms" in page and \
        "<td>FRCNN MNv2 300 p50 int8, 2 threads</td>" in page
