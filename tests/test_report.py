"""train/report.py's two-stage rows: read from a two_stage_edge.json, foreign files skipped."""
import json
import os

from train.report import _two_stage_edge

RESULT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results",
                      "two_stage_edge_rfcn.json")


def test_two_stage_rows_hold_the_files_numbers(tmp_path):
    doc = json.load(open(RESULT))
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"tool": "edge_runtime benchmark"}))
    broken = tmp_path / "half.json"
    broken.write_text('{"tool": "benchmarks/two_')
    lines = _two_stage_edge([RESULT, str(foreign), str(broken)])
    text = "\n".join(lines)
    rows = [l for l in lines if l.startswith("| rfcn_mobilenet_v2_shapes |")]
    assert len(rows) == len(doc["rows"])
    first = doc["rows"][0]
    assert (f"| {first['mode']} | {first['num_proposals']} | {first['bytes'] / 1e6:.2f} MB | "
            f"{first['coco']['AP']:.3f} | {first['edge']['1']['invoke']['median']:.1f} |") in rows[0]
    assert "1000 images, identical" in rows[0]
    assert f"skipped `{foreign}`: not a" in text and f"skipped `{broken}`: unreadable" in text
    assert _two_stage_edge([]) == []


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 5000


def test_plots_drawn_from_the_runs_files(tmp_path):
    from train.report import _plots

    history = [{"step": s, "loss": 3.0 / s, "classification_loss": 2.0 / s, "lr": 0.01,
                "images_per_second": 50.0} for s in range(1, 20)]
    ev = {"AP": 0.3, "AP_small": 0.1, "AP_medium": 0.4, "AP_large": -1.0}
    (tmp_path / "eval_model_int8.json").write_text(json.dumps(dict(ev, AP=0.28)))
    stages = {k: {"median": 5.0, "p90": 6.0} for k in ("invoke", "end_to_end")}
    row = {"model": "model_int8.tflite", "threads": 1, "stages_ms": stages,
           "runtime": {"runtime": "litert", "version": "2.3.0", "threads": 1}}
    (tmp_path / "edge_benchmark.json").write_text(json.dumps({"results": [row]}))
    tf_row = dict(row, model="tensorflow:demo", threads=None,
                  runtime={"runtime": "tensorflow", "version": "2.21.0",
                           "threads": "all (TensorFlow default)"})
    (tmp_path / "tf_benchmark.json").write_text(json.dumps({"results": [tf_row]}))
    (tmp_path / "detections").mkdir()
    (tmp_path / "detections" / "000900.jpg").write_bytes(b"jpeg")
    text = "\n".join(_plots(str(tmp_path), ev, history))
    for name in ("losses.png", "ap_by_size.png", "latency.png"):
        assert f"]({name})" in text and _png(tmp_path / name), name
    assert "](detections/000900.jpg)" in text
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_no_plots_without_data(tmp_path):
    from train.report import _plots

    assert _plots(str(tmp_path), None, []) == []


def test_mediapipe_row_comes_from_the_benchmarks_files(tmp_path):
    from train.report import _mediapipe_peer
    assert _mediapipe_peer(str(tmp_path)) == []
    (tmp_path / "mediapipe_peer.json").write_text(json.dumps({"tool": "something else"}))
    (tmp_path / "mediapipe_peer.md").write_text("| model | ... |\n| m.tflite | 0.81 |\n")
    assert _mediapipe_peer(str(tmp_path)) == []
    (tmp_path / "mediapipe_peer.json").write_text(
        json.dumps({"tool": "benchmarks/mediapipe_peer.py"}))
    lines = _mediapipe_peer(str(tmp_path))
    assert lines[0].startswith("## The same models in MediaPipe") and "| m.tflite | 0.81 |" in lines[2]


def test_latency_labels_name_runtime_and_threads():
    from train.report_figures import _runtime_label

    tf_row = {"model": "tensorflow:demo", "threads": None,
              "runtime": {"runtime": "tensorflow", "version": "2.21.0",
                          "threads": "all (TensorFlow default)"}}
    edge = {"model": "model_int8.tflite", "threads": 2,
            "runtime": {"runtime": "litert", "version": "2.3.0", "threads": 2}}
    assert _runtime_label(tf_row) == "demo - tensorflow 2.21.0, default threads"
    assert _runtime_label(edge) == "model_int8.tflite - litert 2.3.0, 2 threads"
    assert _runtime_label(dict(edge, threads=1)).endswith(", 1 thread")
