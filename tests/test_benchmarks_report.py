"""`python -m benchmarks report`: the Pareto frontier, the report from a fixture results folder
(tests/assets/sweep_fixture: 8 good cells, a failed one, a mismatched trained run, a truncated
JSON, a foreign JSON, a Pi JSON and a Pi JSON of another schema), bad input, and ensembles
(hand-written `train ensemble` eval.json files: on the frontier, their section, the finding)."""
import copy
import json
import math
import os

import pytest

from benchmarks import report as report_module
from benchmarks.__main__ import main
from benchmarks.ensembles import label as ens_label, load_ensembles
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
    assert all(r["ours"] == "not measured" for r in rows[:-1])
    assert rows[-1]["ours"] == "no ensemble with --score-members" and rows[-1]["holds"] == "n/a"


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--results" in out and "--ensemble EVAL_JSON" in out


# --- ensembles (`train ensemble` eval.json) beside the sweep ----------------------------------

def ensemble_eval(ap=0.60, multicrop="2x2:0.6", alone=True):
    """A hand-written eval.json of `python -m train ensemble` (train/ensemble/evaluate.py)."""
    metrics = dict.fromkeys(("AP50", "AP75", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
                             "AR_medium", "AR_large"), 0.7)
    members = [{"name": n, "run": f"runs/{n}", "meta_architecture": "faster_rcnn"}
               for n in ("frcnn_a", "frcnn_b", "rfcn_c")]
    singles = {"frcnn_a": {"AP": 0.52, "AP50": 0.7, "AP_small": 0.25, "AR100": 0.6,
                           "AR_small": 0.35, "ms_per_image": {"median": 120.0, "p90": 130.0}},
               "frcnn_b": {"AP": 0.50, "AP50": 0.7, "AP_small": 0.20, "AR100": 0.6,
                           "AR_small": 0.30, "ms_per_image": {"median": 45.0, "p90": 50.0}}}
    crops = 1 if multicrop == "none" else 5
    return dict(metrics, AP=ap, AP_small=0.30, AR_small=0.40,
                per_category_AP=[0.5, float("nan")], num_images=100, num_detections=9000,
                ms_per_image={"median": 400.0, "p90": 450.0},
                coco_summary="Average Precision ...", split="val", data="data/shapes_small",
                ensemble={"members": members, "combine": "proposals", "merge": "nms",
                          "multicrop": multicrop, "crops_per_image": crops,
                          "network_evaluations_per_image": 3 * crops,
                          "selection": {"chosen": ["frcnn_a", "frcnn_b", "rfcn_c"],
                                        "decisions": []},
                          "members_alone": singles if alone else None,
                          "timing": {"batch": 1, "machine": "x86_64", "cores": 2}})


@pytest.fixture(scope="module")
def with_ensemble(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ens") / "zoo2"  # the folder names the file in the report
    tmp.mkdir()
    write(tmp, "ens_good.json", ensemble_eval())
    bad = ensemble_eval()
    del bad["ms_per_image"]
    write(tmp, "ens_no_time.json", bad)
    write(tmp, "ens_half.json", json.dumps(ensemble_eval())[:100])
    out = tmp / "out"
    assert main(["report", "--results", FIXTURE, "--out", str(out)] + [
        a for n in ("ens_good.json", "ens_no_time.json", "ens_half.json", "ens_missing.json")
        for a in ("--ensemble", str(tmp / n))]) == 0
    return out, (out / "report.md").read_text()


def test_ensemble_is_on_the_frontier_when_most_accurate(with_ensemble):
    out, md = with_ensemble
    frontier = md.split("Critical points")[1].split("##")[0]
    assert "| ensemble of 3 (+2x2:0.6 multicrop) | zoo2/ens_good.json | 400.0 | 450.0 | 0.600 | " \
           "most accurate |" in frontier
    assert "| 120.0 | 132.0 | 0.520 |  |" in frontier  # no longer the most accurate
    for name in FIGURES:
        assert os.path.getsize(out / name) > 5000, name


def test_ensemble_section_rows(with_ensemble):
    _, md = with_ensemble
    section = md.split("## Ensemble and multicrop (paper Sec. 4.2)")[1].split("##")[0]
    assert "| ensemble of 3 (+2x2:0.6 multicrop) | frcnn_a, frcnn_b, rfcn_c | proposals | nms " \
           "| 2x2:0.6 | 15 | 400.0 | 450.0 | 0.600 | 0.300 | 0.400 | zoo2/ens_good.json |" in section
    assert "| frcnn_a alone | frcnn_a | — | — | none | 1 | 120.0 | 130.0 | 0.520 | 0.250 | " \
           "0.350 |" in section
    assert "| frcnn_b alone | frcnn_b | — | — | none | 1 | 45.0 | 50.0 | 0.500 | 0.200 |" in section
    assert "whole procedure per image" in section and "x86_64, 2 cores, batch 1" in section


def test_ensemble_findings_row(with_ensemble):
    _, md = with_ensemble
    assert "| ensemble + multicrop vs best single model | +6.9 AP points (0.347 -> 0.416, COCO " \
           "test-dev; Tables 2-4) | +8.0 AP points (best member frcnn_a: 0.520 -> ensemble " \
           "0.600); AP_small +5.0, AR_small +5.0 points | yes | zoo2/ens_good.json: ensemble of 3 " \
           "(+2x2:0.6 multicrop), 100 val images |" in md


def test_broken_ensemble_files_are_logged_and_the_rest_written(with_ensemble):
    out, md = with_ensemble
    log = md.split("## Log")[1]
    for name, words in (("ens_no_time.json", "ms_per_image"), ("ens_half.json", "unreadable"),
                        ("ens_missing.json", "unreadable")):
        assert [r for r in row(log, name) if words in r], name
    assert "ens_no_time" not in md.split("## Log")[0]
    assert "8 cell(s) measured" in md and "## Published" in md
    assert "ensemble of 3" in (out / "index.html").read_text()


@pytest.mark.parametrize("ap, holds", [(0.60, "yes"), (0.55, "yes"), (0.54, "no (+2.0 < 3)")])
def test_ensemble_finding_holds_at_3_points(ap, holds):
    ens = dict(ensemble_eval(ap), _file="eval.json")
    assert check_findings([], [ens])[-1]["holds"] == holds


def test_ensemble_finding_uses_the_best_file_with_members_alone():
    unscored = dict(ensemble_eval(0.70, "none", alone=False), _file="a/eval.json")
    scored = dict(ensemble_eval(0.54), _file="b/eval.json")
    r = check_findings([], [unscored, scored])[-1]
    assert r["ours"].startswith("+2.0 AP points (best member frcnn_a: 0.520 -> ensemble 0.540)")
    r = check_findings([], [unscored])[-1]
    assert (r["ours"], r["holds"]) == ("no ensemble with --score-members", "n/a")
    assert ens_label(unscored) == "ensemble of 3"
    unscored["ensemble"]["image_size"] = 300
    assert ens_label(unscored) == "ensemble of 3 at 300"
    assert ens_label(scored) == "ensemble of 3 (+2x2:0.6 multicrop)"
    scored["ensemble"]["image_size"] = 300
    assert ens_label(scored) == "ensemble of 3 at 300 (+2x2:0.6 multicrop)"


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(AP="0.6"), "AP must be in [0, 1]"),
    (lambda d: d["ensemble"].update(merge="vote"), "ensemble.merge must be one of"),
    (lambda d: d["ensemble"].update(members=[]), "ensemble.members"),
    (lambda d: d["ensemble"]["members_alone"]["frcnn_b"].pop("AR_small"),
     "members_alone.frcnn_b.AR_small"),
    (lambda d: d.pop("ensemble"), "no \"ensemble\" object"),
    (lambda d: d.update(num_images=True), "num_images must be int"),
])
def test_ensemble_validation_names_the_key(tmp_path, change, words):
    d = ensemble_eval()
    change(d)
    write(tmp_path, "eval.json", d)
    ens, problems = load_ensembles([str(tmp_path / "eval.json")])
    assert ens == [] and len(problems) == 1 and words in problems[0][1], problems
