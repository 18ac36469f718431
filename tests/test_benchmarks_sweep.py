"""The sweep (benchmarks/sweep.py): grids, resume and failure isolation on a two-cell grid.

The two-cell grid is a YAML file: a tiny SSD (the shapes config at 128 px, two timed frames,
no .tflite) that succeeds and a cell whose config does not exist, which fails in its own
process before TensorFlow loads. Each cell is a real child process, as in a real sweep.
"""
import json
import os

import pytest
import yaml

from benchmarks import grids
from benchmarks.results_schema import load_results
from benchmarks.sweep import cell_status, match_runs, sweep, zoo_runs

GOOD = "ssd-mobilenet_v2-128"
BAD = "faster_rcnn-mobilenet_v2-128-p10"


@pytest.fixture
def two_cell_grid(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({
        "name": "two",
        "settings": {"tf_runs": 2, "tf_warmup": 1, "quantize": [], "timeout_s": 300},
        "cells": [{"meta_architecture": "ssd", "extractor": "mobilenet_v2", "resolution": 128,
                   "config": "ssd_mobilenet_v2_shapes"},
                  {"meta_architecture": "faster_rcnn", "extractor": "mobilenet_v2",
                   "resolution": 128, "num_proposals": 10, "config": "no_such_config"}]}))
    return str(path)


@pytest.mark.slow  # make test stays under 15 min on 2 cores
def test_two_cell_sweep_isolates_the_failure_and_resumes(two_cell_grid, tmp_path):
    out = str(tmp_path / "results")
    done = sweep(two_cell_grid, out, progress=False)
    assert done == {"ok": [GOOD], "failed": [BAD], "skipped": []}
    with open(os.path.join(out, f"{BAD}.json")) as f:
        failed = json.load(f)
    assert failed["status"] == "failed" and "no_such_config" in failed["error"]
    assert os.path.isfile(failed["log"])
    loaded = load_results(out)
    assert [c["cell"]["id"] for c in loaded.cells] == [GOOD]
    assert [p for p in loaded.problems if BAD in p[1]]  # the report lists the failed cell
    good = loaded.cells[0]
    assert good["ap"] is None and good["tf_latency_ms"]["runs"] == 2
    assert good["params"] > 0 and good["flops"] > 0 and good["postprocess_note"]

    stamp = os.stat(os.path.join(out, f"{GOOD}.json")).st_mtime_ns
    again = sweep(two_cell_grid, out, progress=False)  # the finished cell is not run again
    assert again == {"ok": [], "failed": [BAD], "skipped": [GOOD]}
    assert os.stat(os.path.join(out, f"{GOOD}.json")).st_mtime_ns == stamp
    assert sweep(two_cell_grid, out, skip_failed=True, progress=False)["skipped"] == [GOOD, BAD]


def test_a_cell_past_its_timeout_is_killed_and_recorded(tmp_path):
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump({"settings": {"timeout_s": 1, "quantize": []}, "cells": [
        {"meta_architecture": "ssd", "extractor": "mobilenet_v2", "resolution": 128,
         "config": "ssd_mobilenet_v2_shapes"}]}))
    out = str(tmp_path / "results")
    assert sweep(str(path), out, progress=False)["failed"] == [GOOD]
    with open(os.path.join(out, f"{GOOD}.json")) as f:
        assert json.load(f)["error"] == "timed out after 1 s"


def test_half_written_cell_file_is_run_again(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"schema": "frontier.sweep.cell/1", "status": "o')
    assert cell_status(str(path)) is None
    assert cell_status(str(tmp_path / "missing.json")) is None


def test_builtin_grids_have_unique_ids_and_bundled_configs():
    from train.config import bundled_configs
    sizes = {}
    for name in grids.GRIDS:
        cells, settings = grids.load_grid(name)
        sizes[name] = len(cells)
        assert len({c.id for c in cells}) == len(cells)
        assert all(c.config in bundled_configs() for c in cells)
        assert settings["timeout_s"] > 0
    assert sizes["quick"] < sizes["mobile"] < sizes["paper"]
    mobile, _ = grids.load_grid("mobile")
    assert {c.extractor for c in mobile} >= set(grids.MOBILE_EXTRACTORS)
    assert {c.meta_architecture for c in mobile} == {"ssd", "faster_rcnn", "rfcn"}
    paper, _ = grids.load_grid("paper")
    assert {c.stride for c in paper if c.extractor == "resnet101"
            and c.meta_architecture != "ssd"} == {16, 8}
    rfcn_v1 = next(c for c in mobile if c.id == "rfcn-mobilenet_v1-300-p50")
    assert rfcn_v1.overrides == {"feature_extractor.name": "mobilenet_v1"}  # derived config


def test_bad_grid_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"cells": [{"meta_architecture": "yolo", "extractor": "x",
                                               "resolution": 300}]}))
    with pytest.raises(grids.GridError, match=r"bad\.yaml: cells\[0\]: meta_architecture"):
        grids.load_grid(str(path))
    with pytest.raises(grids.GridError, match="neither a built-in grid"):
        grids.load_grid(str(tmp_path / "missing.yaml"))


def test_zoo_runs_match_their_architecture():
    cells, _ = grids.load_grid("quick")
    matched = match_runs(cells, zoo_runs())
    assert matched["ssd-mobilenet_v2-256"].endswith("ssd_mobilenet_v2_shapes")
    assert matched["faster_rcnn-mobilenet_v2-256-p50"].endswith("faster_rcnn_mobilenet_v2_shapes")


def test_ssd_runs_give_ap_only_at_their_training_resolution():
    at = {r: grids.Cell("ssd", "mobilenet_v2", r, None, None, "ssd_mobilenet_v2_shapes")
          for r in (128, 256, 300)}
    two = grids.Cell("faster_rcnn", "mobilenet_v2", 300, 50, None, "x")
    matched = match_runs([*at.values(), two], zoo_runs())
    assert set(matched) == {"ssd-mobilenet_v2-256", "faster_rcnn-mobilenet_v2-300-p50"}
