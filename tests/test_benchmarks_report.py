"""`python -m benchmarks report`: the Pareto frontier, the report from a fixture results folder
(tests/assets/sweep_fixture: 8 good cells, a failed one, a mismatched trained run, a truncated
JSON, a foreign JSON, a Pi JSON and a Pi JSON of another schema), and bad input."""
import copy
import json
import math
import os

import pytest

from benchmarks import report as report_module
from benchmarks.__main__ import main
from benchmarks.findings import check_findings
from benchmarks.frontier import critical_points, dominates, pareto_front, short_name
from benchmarks.results_schema import CellError, load_results, validate_cell

FIXTURE = os.path.join(os.path.dirname(__file__), "assets", "sweep_fixture")
GOOD = "ssd-mobilenet_v2-300.json"
FIGURES = ("fig2a_ap_vs_time_meta.png", "fig2b_ap_vs_time_extractor.png",
           "fig3_memory_vs_time.png", "fig4_ap_by_size.png", "fig6_proposals.png",
           "fig7_flops_vs_time.png", "edge_frontier.png")


def good_cell():
    with open(os.path.join(FIXTURE, GOOD)) as f:
        return json.load(f)


# --- the frontier --------------------------------------------------------------------------

def test_pareto_front_hand_made_points():
    points = [(10, 0.20),   # 0 fastest
              (20, 0.40),   # 1 on it
              (20, 0.30),   # 2 as fast as 1, less accurate
              (15, 0.20),   # 3 slower than 0, no better
              (30, 0.40),   # 4 slower than 1, no better
              (40, 0.50),   # 5 most accurate
              (40, 0.50),   # 6 the same point again: neither dominates, both stay
              (5, math.nan),  # 7 not a point
              (50, 0.45)]   # 8 slower and worse than 5
    assert pareto_front(points) == [0, 1, 5, 6]
    assert dominates((10, 0.2), (15, 0.2)) and not dominates((40, 0.5), (40, 0.5))
    assert pareto_front([]) == [] and pareto_front([(3, 0.1)]) == [0]
    # shuffled input gives the same frontier points, fastest first
    order = [8, 3, 6, 0, 2, 7, 5, 1, 4]
    assert [order[i] for i in pareto_front([points[i] for i in order])] in ([0, 1, 6, 5],
                                                                             [0, 1, 5, 6])
    roles = critical_points(points, pareto_front(points))
    assert roles[0] == "fastest" and roles[5] == "most accurate" and roles[1] == "sweet spot"


def test_short_names():
    assert short_name({"meta_architecture": "faster_rcnn", "extractor": "resnet101",
                       "resolution": 600, "num_proposals": 50, "stride": 8}) == \
        "FRCNN R101 600 p50 s8"
    assert short_name({"meta_architecture": "ssd", "extractor": "mobilenet_v2",
                       "resolution": 300, "num_proposals": None, "stride": None}) == \
        "SSD MNv2 300"


# --- the report from the fixture -------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report"))
    assert main(["report", "--results", FIXTURE, "--out", out]) == 0
    with open(os.path.join(out, "report.md")) as f:
        md = f.read()
    with open(os.path.join(out, "index.html")) as f:
        page = f.read()
    return out, md, page


def test_figures_exist_and_are_non_empty(built):
    out, md, page = built
    for name in FIGURES:
        with open(os.path.join(out, name), "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"({name})" in md
    # self-contained: every figure embedded, nothing fetched from elsewhere
    assert page.count("src='data:image/png;base64,") == len(FIGURES)
    assert ".png'" not in page and "http" not in page.split("Published")[0]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def row(md, first_cell):
    """The Markdown table row(s) that start with ``first_cell``."""
    return [line for line in md.splitlines() if line.startswith(f"| {first_cell} |")]


def test_tables_hold_the_fixtures_numbers(built):
    _, md, page = built
    assert "8 cell(s) measured (6 trained, 2 untrained" in md
    # the critical points: the frontier of the fixture, fastest first, with roles
    frontier = md.split("Critical points")[1].split("##")[0]
    ids = [line.split(" | ")[1] for line in frontier.splitlines()
           if line.startswith("| ") and "cell id" not in line]
    assert ids == ["ssd-mobilenet_v2-150", "ssd-mobilenet_v2-300",
                   "faster_rcnn-mobilenet_v2-300-p50", "faster_rcnn-mobilenet_v2-300-p300"]
    assert "| 22.0 | 24.2 | 0.300 | fastest |" in frontier
    assert "| 120.0 | 132.0 | 0.520 | most accurate |" in frontier
    # AP by size (-1: no small objects -> a dash), proposals, int8 drop, edge, all cells
    assert "| SSD MNv2 150 | 0.300 | 0.520 | — | 0.280 | 0.500 | 0.400 | data/shapes_large" in md
    assert "| R-FCN MNv2 300 p50 | 50 | 65.0 | 0.470 |" in md
    assert "| FRCNN R101 300 p300 s8 | 300 | 490.0 | — |" in md
    assert "| SSD MNv2 300 | 0.450 | 0.431 | -1.9 | -4.2% |" in md
    int8 = [r for r in row(md, "SSD MNv2 300") if "| int8 |" in r][0]
    assert "1 thr: 12.00, 2 thr: 8.00" in int8 and "1 thr: 70.00, 4 thr: 30.00" in int8
    assert "| faster_rcnn-resnet101-300-p300-s16 | faster_rcnn_resnet101_shapes | CPU | 47.00 " \
           "| 60.00 | 300.0 | 330.0 | 100 | — | 1500 | — | untrained |" in md
    p50 = row(md, "faster_rcnn-mobilenet_v2-300-p50 | faster_rcnn_mobilenet_v2_shapes")
    assert any("| 4.2 |" in r for r in p50), p50
    assert "*Post-processing and untrained weights:* Untrained weights make NMS slower" in md
    # findings: each ratio from its pair, beside the paper's figure
    assert "| stride 8 vs 16: time | +63% | +63% time (x1.63) | yes |" in md
    assert "| halving resolution: time | −27.4% (mean) | -27% time (x0.73) | yes |" in md
    assert "| x3 (Inception-ResNet-v2) | x2.67 | yes |" in md
    assert "| R-FCN: time, most vs fewest proposals | nearly flat (Fig. 6b) | x1.08 | yes |" in md
    assert "Spearman ρ = 1.00 | yes" in md
    # the published zoo: its own table, never among our cells or on our frontier
    assert "| faster_rcnn_resnet101_coco | 106 | 32 | Boxes |" in md
    assert "faster_rcnn_resnet101_coco" not in md.split("## Published")[0]
    assert "<td>faster_rcnn_resnet101_coco</td><td>106</td>" in page


def test_bad_files_are_listed_not_fatal(built):
    _, md, _ = built
    log = md.split("## Log")[1]
    expected = {"faster_rcnn-inception_resnet_v2-600-p300-s8.json": "failed: ResourceExhausted",
                "ssd-mobilenet_v1-300.json": "half-written JSON",
                "labels.json": "not a sweep cell",
                "rfcn-resnet101-300-p300-s16.json": "trained run does not match the cell",
                "pi4_old_schema.json": "another schema",
                "pi4_edge_benchmark.json": "my_own_model.tflite"}
    for name, words in expected.items():
        assert [r for r in row(log, name) if words in r], name
    assert "rfcn-resnet101" not in md.split("## Log")[0]  # the mismatched cell is skipped


# --- bad input, one file at a time ----------------------------------------------------------

def write(folder, name, data):
    with open(os.path.join(folder, name), "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))


def test_each_bad_file_is_skipped_and_named(tmp_path):
    write(tmp_path, GOOD, good_cell())
    write(tmp_path, "half.json", json.dumps(good_cell())[:200])
    write(tmp_path, "foreign.json", [1, 2, 3])
    failed = copy.deepcopy(good_cell())
    failed["cell"]["id"] = "x"
    failed.update(status="failed", error="could not build: unknown extractor 'vgg19'")
    write(tmp_path, "failed.json", failed)
    write(tmp_path, "zz_again.json", good_cell())                  # a duplicate id
    future = dict(good_cell(), schema="frontier.sweep.cell/2")
    write(tmp_path, "future.json", future)
    pi = tmp_path / "pi.json"
    pi.write_text(json.dumps({"device": "pixel", "latency": {"a.tflite": 3}}))
    loaded = load_results(str(tmp_path), [str(pi), str(tmp_path / "missing.json")])
    assert [c["cell"]["id"] for c in loaded.cells] == ["ssd-mobilenet_v2-300"]
    problems = {os.path.basename(f): m for f, m in loaded.problems}
    assert "half-written" in problems["half.json"] and "not a sweep cell" in problems[
        "foreign.json"] and "unknown extractor" in problems["failed.json"]
    assert "repeats" in problems["zz_again.json"] and "unknown schema" in problems["future.json"]
    assert "missing.json" in problems
    out = tmp_path / "out"
    result = report_module.build_report(str(tmp_path), str(out), [str(pi)])
    problems = {os.path.basename(f): m for f, m in result["problems"]}
    assert "not an edge_runtime benchmark JSON" in problems["pi.json"]
    md = (out / "report.md").read_text()
    for name in ("half.json", "foreign.json", "failed.json", "zz_again.json", "pi.json"):
        assert row(md.split("## Log")[1], name), name
    # one cell: no pairs, so every finding is "not measured" but memory (fewer than 3 cells)
    assert md.count("| not measured |") == 5


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("tf_latency_ms"), "tf_latency_ms must be an object"),
    (lambda d: d["cell"].update(num_proposals=300), "num_proposals must be null for SSD"),
    (lambda d: d["ap"].update(AP=31.5), "ap.AP must be in [0, 1]"),
    (lambda d: d.update(trained_run=None), "ap given without trained_run"),
    (lambda d: d["tflite"]["int8"].pop("file"), "tflite.int8.file"),
    (lambda d: d.update(flops=1.5e9), "flops must be an integer"),
])
def test_validation_names_the_key(change, words):
    d = good_cell()
    change(d)
    with pytest.raises(CellError, match=None) as e:
        validate_cell(d)
    assert words in str(e.value)


def test_trained_run_config_on_disk_is_checked(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  meta_architecture: ssd\n  feature_extractor:\n"
                                     "    name: inception_v2\n    output_stride: null\n")
    d = good_cell()
    d["trained_run"]["path"] = str(run)
    with pytest.raises(CellError, match="config.yaml says extractor 'inception_v2'"):
        validate_cell(d)


def test_a_figure_that_fails_is_logged(tmp_path, monkeypatch):
    write(tmp_path, GOOD, good_cell())

    def broken(*args):
        raise RuntimeError("no display")
    monkeypatch.setattr(report_module.figures, "ap_by_size", broken)
    result = report_module.build_report(str(tmp_path), str(tmp_path / "out"))
    assert ("fig4", "figure not drawn: RuntimeError: no display") in result["problems"]
    assert os.path.getsize(tmp_path / "out" / "fig3_memory_vs_time.png") > 0


def test_findings_without_pairs():
    rows = check_findings([good_cell()])
    assert all(r["ours"] == "not measured" for r in rows)


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    assert e.value.code == 0 and "--results" in capsys.readouterr().out
