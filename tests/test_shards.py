"""Sharded sweeps (benchmarks/shards.py): the partition, the shard spec and the engine's index,
bad input at the CLI (before any cell starts), and the report merging the shards' folders.
No cell is measured here; tests/test_sweep_shards.py runs shards as processes."""
import glob
import json
import os
import random

import pytest

from benchmarks import grids
from benchmarks.__main__ import main
from benchmarks.results_schema import load_results
from benchmarks.shards import (ShardError, estimated_cost, lpt, parse_spec, resolve,
                               shard_cells)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEASURED = os.path.join(ROOT, "benchmarks", "results", "sweep_mobile")
FIXTURE = os.path.join(ROOT, "tests", "assets", "sweep_fixture")


def makespan(parts, seconds):
    return max(sum(seconds[k] for k in p) for p in parts)


# --- the partition ---------------------------------------------------------------------------

def test_lpt_beats_round_robin_on_a_hand_computed_case():
    # grid order alternates heavy and light cells: round-robin puts every heavy one on shard 0
    costs = dict(zip("abcdef", [9, 1, 9, 1, 9, 1]))
    # by hand: a9 -> 0; c9 -> 1; e9 -> 0 (tie 9/9: lower index); b1, d1, f1 -> 1 (18 vs 10..12)
    assert lpt(costs, 2) == [["a", "e"], ["c", "b", "d", "f"]]
    assert makespan(lpt(costs, 2), costs) == 18
    assert makespan([list("ace"), list("bdf")], costs) == 27  # round-robin
    assert lpt(costs, 1) == [["a", "c", "e", "b", "d", "f"]]
    assert lpt({"x": 5}, 3) == [["x"], [], []]


@pytest.mark.parametrize("grid", ["quick", "mobile", "paper"])
def test_every_cell_in_exactly_one_shard_whatever_the_order(grid):
    cells, _ = grids.load_grid(grid)
    for n in (1, 2, 3, 5, 7, len(cells) + 2):
        shards = [shard_cells(cells, i, n) for i in range(n)]
        ids = [c.id for s in shards for c in s]
        assert sorted(ids) == sorted(c.id for c in cells), (grid, n)
        for i, s in enumerate(shards):  # in the grid's order, and the same every time
            assert s == [c for c in cells if c in s]
            assert s == shard_cells(cells, i, n)
        shuffled = random.Random(n).sample(cells, len(cells))
        assert [{c.id for c in shard_cells(shuffled, i, n)} for i in range(n)] == \
            [{c.id for c in s} for s in shards]


def test_mobile_shards_balance_better_than_round_robin_on_measured_times():
    """Partition by the estimate; judge by the seconds each cell really took (make sweep,
    2026-12-03, --zoo)."""
    cells, _ = grids.load_grid("mobile")
    seconds, trained = {}, set()
    for c in cells:
        with open(os.path.join(MEASURED, f"{c.id}.json")) as f:
            d = json.load(f)
        seconds[c.id] = d["seconds"]
        if d.get("trained"):
            trained.add(c.id)
    assert len(trained) >= 5
    for n in (2, 3, 4, 6):
        ours = makespan([[c.id for c in shard_cells(cells, i, n, trained)] for i in range(n)],
                        seconds)
        round_robin = makespan([[c.id for c in cells[i::n]] for i in range(n)], seconds)
        assert ours < round_robin, (n, ours, round_robin)
    # 3 shards: within 10% of a perfect split of the 45 min
    assert makespan([[c.id for c in shard_cells(cells, i, 3, trained)] for i in range(3)],
                    seconds) < 1.1 * sum(seconds.values()) / 3


def test_costs_order_the_cells_as_the_paper_does():
    cost = {c.id: estimated_cost(c) for c in grids.load_grid("mobile")[0]}
    assert cost["ssd-mobilenet_v2-128"] < cost["ssd-mobilenet_v2-300"] < \
        cost["faster_rcnn-mobilenet_v2-300-p50"] < cost["faster_rcnn-mobilenet_v2-300-p300"]
    assert cost["faster_rcnn-resnet101-150-p50-s16"] < cost["faster_rcnn-resnet101-150-p50-s8"]
    c = grids.load_grid("mobile")[0][0]
    assert estimated_cost(c, trained=True) == estimated_cost(c) + 100
    assert all(isinstance(v, int) for v in cost.values())  # exact sums on every machine


# --- the shard spec and the engine's index ---------------------------------------------------

@pytest.mark.parametrize("spec, words", [
    ("3/2", "--shard 3/2: index 3 is out of range for 2 shard(s) (0..1"),
    ("2/2", "index 2 is out of range"),
    ("0/0", "--shard 0/0: N must be at least 1"),
    ("half", "--shard half: not I/N"),
    ("1/3/4", "--shard 1/3/4: not I/N"),
    ("-1/3", "--shard -1/3: not I/N"),
    ("1.0/3", "not I/N"),
])
def test_bad_shard_spec_names_the_value(spec, words):
    with pytest.raises(ShardError) as e:
        parse_spec(spec)
    assert words in str(e.value)


def test_good_shard_specs():
    assert parse_spec("0/1") == (0, 1) and parse_spec(" 2/3 ") == (2, 3)


@pytest.mark.parametrize("spec, count, env, want", [
    (None, None, {"JOB_COMPLETION_INDEX": "1"}, None),  # sharding is asked for, never guessed
    ("1/3", None, {}, (1, 3)),
    ("1/3", "3", {"JOB_COMPLETION_INDEX": "1"}, (1, 3)),
    (None, "3", {"JOB_COMPLETION_INDEX": "2"}, (2, 3)),
    (None, "3", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0",
                 "SLURM_ARRAY_TASK_MAX": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, (0, 3)),
    # a re-run of shard 1 alone (sbatch --array=1): still shard 1
    (None, "3", {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1",
                 "SLURM_ARRAY_TASK_MAX": "1", "SLURM_ARRAY_TASK_COUNT": "1"}, (1, 3)),
    (None, "3", {"JOB_COMPLETION_INDEX": "2", "SLURM_ARRAY_TASK_ID": "2"}, (2, 3)),
])
def test_shard_from_options_and_engine(spec, count, env, want):
    assert resolve(spec, count, env) == want


@pytest.mark.parametrize("spec, count, env, words", [
    ("1/3", None, {"JOB_COMPLETION_INDEX": "2"},
     "--shard 1/3 disagrees with the job engine's JOB_COMPLETION_INDEX=2"),
    ("0/3", None, {"SLURM_ARRAY_TASK_ID": "1"}, "--shard 0/3 disagrees with the job engine's "
     "SLURM_ARRAY_TASK_ID=1"),
    (None, "3", {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MAX": "3"},
     "SLURM_ARRAY_TASK_MAX=3 is out of range for 3 shard(s): number the array from 0 "
     "(#SBATCH --array=0-2)"),
    (None, "3", {"JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX=3 is out of range for 3"),
    (None, "3", {"JOB_COMPLETION_INDEX": "two"}, "JOB_COMPLETION_INDEX=two: not a shard index"),
    (None, "3", {"JOB_COMPLETION_INDEX": "1", "SLURM_ARRAY_TASK_ID": "2"},
     "indices disagree: JOB_COMPLETION_INDEX=1, SLURM_ARRAY_TASK_ID=2"),
    (None, "3", {}, "--shard-count 3: no shard index: neither JOB_COMPLETION_INDEX"),
    (None, "0", {"JOB_COMPLETION_INDEX": "0"}, "--shard-count 0: not a whole number"),
    (None, "three", {}, "--shard-count three: not a whole number"),
    ("1/3", "2", {}, "--shard 1/3 disagrees with --shard-count 2"),
])
def test_bad_engine_index_names_both_values(spec, count, env, words):
    with pytest.raises(ShardError) as e:
        resolve(spec, count, env)
    assert words in str(e.value)


# --- the CLI: one line, exit 2, before any cell starts ---------------------------------------

def cell_file(folder, cid="ssd-mobilenet_v2-300", **extra):
    with open(os.path.join(FIXTURE, "ssd-mobilenet_v2-300.json")) as f:
        d = json.load(f)
    d["cell"]["id"] = cid
    d.update(extra)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{cid}.json"), "w") as f:
        json.dump(d, f)
    return d


def run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("args, env, words", [
    (["--shard", "3/2"], {}, "--shard 3/2: index 3 is out of range"),
    (["--shard", "0/0"], {}, "--shard 0/0"),
    (["--shard", "a/b"], {}, "--shard a/b: not I/N"),
    (["--shard", "1/3"], {"JOB_COMPLETION_INDEX": "0"}, "JOB_COMPLETION_INDEX=0"),
    (["--shard-count", "3"], {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MAX": "3"},
     "SLURM_ARRAY_TASK_MAX=3 is out of range for 3 shard(s): number the array from 0"),
    (["--shard-count", "2"], {"SLURM_ARRAY_TASK_ID": "2"}, "SLURM_ARRAY_TASK_ID=2 is out of "
     "range for 2 shard(s) (0..1)"),
    (["--shard-count", "x"], {}, "--shard-count x"),
])
def test_cli_bad_shard_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, env, words):
    for var in ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MAX"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "results"
    code, err = run_cli(["sweep", "--grid", "quick", "--out", str(out)] + args, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()  # nothing started


def test_cli_refuses_a_folder_of_another_grid(tmp_path, capsys):
    out = tmp_path / "results"
    cell_file(str(out), "ssd-mobilenet_v2-256", grid="quick")  # also a mobile cell id
    code, err = run_cli(["sweep", "--grid", "mobile", "--out", str(out), "--shard", "0/3"],
                        capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "holds cells of another grid: ssd-mobilenet_v2-256.json (grid 'quick')" in err
    assert sorted(os.listdir(out)) == ["ssd-mobilenet_v2-256.json"]  # no logs/, no cell


def test_cli_refuses_an_older_folder_by_cell_id(tmp_path, capsys):
    out = tmp_path / "results"
    cell_file(str(out), "faster_rcnn-mobilenet_v2-256-p50")  # no "grid": from before; quick's
    code, err = run_cli(["sweep", "--grid", "mobile", "--out", str(out)], capsys)
    assert code == 2 and "cell faster_rcnn-mobilenet_v2-256-p50 is not in grid 'mobile'" in err


def test_the_measured_mobile_folder_is_a_mobile_folder():
    from benchmarks.sweep import check_folder
    check_folder(MEASURED, "mobile", {c.id for c in grids.load_grid("mobile")[0]})


def test_yaml_grid_names(tmp_path):
    named, anonymous = tmp_path / "a.yaml", tmp_path / "tiny_grid.yaml"
    named.write_text("name: two\ncells: []\n")
    anonymous.write_text("cells: []\n")
    assert grids.grid_name(str(named)) == "two"
    assert grids.grid_name(str(anonymous)) == "tiny_grid"
    assert grids.grid_name("mobile") == "mobile"


# --- the report merges the shards' folders ---------------------------------------------------

def test_merged_folders_load_as_one_folder(tmp_path):
    one, a, b = tmp_path / "one", tmp_path / "a", tmp_path / "b"
    ids = ["faster_rcnn-mobilenet_v2-300-p50", "rfcn-mobilenet_v2-300-p50",
           "ssd-mobilenet_v2-128", "ssd-mobilenet_v2-300"]
    for i, cid in enumerate(ids):
        for folder in (one, a if i % 2 else b):
            cell_file(str(folder), cid, date="2026-12-03T08:00:00+0000")
    merged = load_results([str(a), str(b)])
    single = load_results(str(one))
    assert [c["cell"]["id"] for c in merged.cells] == [c["cell"]["id"] for c in single.cells]
    assert merged.problems == single.problems == []


def test_a_cell_in_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cid = "ssd-mobilenet_v2-300"
    cell_file(str(a), cid, date="2026-12-03T08:00:00+0000")
    cell_file(str(b), cid, date="2026-12-03T08:00:00+0000")
    loaded = load_results([str(a), str(b)])  # identical: once, nothing to say
    assert len(loaded.cells) == 1 and loaded.problems == []
    assert load_results([str(a), str(a) + "/"]).problems == []  # one folder given twice

    newer = cell_file(str(a), cid, date="2026-12-03T09:30:00+0100")  # 08:30 UTC: newer
    newer["tf_latency_ms"]["median"] = 99.0
    with open(a / f"{cid}.json", "w") as f:
        json.dump(newer, f)
    for order in ([a, b], [b, a]):
        loaded = load_results([str(x) for x in order])
        assert [c["_file"] for c in loaded.cells] == [str(a / f"{cid}.json")]
        assert loaded.cells[0]["tf_latency_ms"]["median"] == 99.0
        assert [(os.path.dirname(f), m.split(",")[0]) for f, m in loaded.problems] == \
            [(str(b), f"skipped: cell {cid} is also in {a / (cid + '.json')}")]


def test_report_cli_takes_several_results_folders(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    cell_file(str(a), "ssd-mobilenet_v2-300")
    cell_file(str(b), "ssd-mobilenet_v2-128")
    out = tmp_path / "report"
    assert main(["report", "--results", str(a), "--results", str(b), "--out", str(out)]) == 0
    assert "2 cell(s), 0 ensemble(s), 0 problem(s)" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert f"From `{a}`, `{b}` on" in md and "2 cell(s) measured" in md
    assert not glob.glob(str(out / "*.tmp"))
