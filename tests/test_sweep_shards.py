"""Sharded sweeps as processes: the README's Kubernetes and Slurm job files run as N local
processes (the engine's index in their environment), a shard killed mid-cell and re-run, and
(slow) three shards in three folders against one machine.

The job files' grid is swapped for a small YAML grid: in the fast tests every cell names a
config that does not exist, so each cell's process fails in a second, before TensorFlow loads,
and is recorded as a failed cell file (one per cell, like any other); the kill test and the
slow test measure real tiny SSD cells (64-128 px, 1 timed frame, no .tflite).
"""
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml

from benchmarks.grids import load_grid
from benchmarks.results_schema import load_results
from benchmarks.shards import shard_cells

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = os.path.join(ROOT, "benchmarks", "jobs")
K8S = os.path.join(JOBS, "sweep_mobile.k8s.yaml")
SLURM = os.path.join(JOBS, "sweep_mobile.slurm.sh")
ENGINE = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
          "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT")
TINY_SSD = {"meta_architecture": "ssd", "extractor": "mobilenet_v2",
            "config": "ssd_mobilenet_v2_shapes"}
SETTINGS = {"tf_runs": 1, "tf_warmup": 0, "quantize": [], "timeout_s": 300}


def write_grid(path, name, cells):
    path.write_text(yaml.safe_dump({"name": name, "settings": SETTINGS, "cells": cells}))
    return str(path)


def failing_cells(n):
    # ssd-mobilenet_v1: no zoo run matches it, so --zoo in the job files leaves them untrained
    return [{"meta_architecture": "ssd", "extractor": "mobilenet_v1", "resolution": 64 + 32 * i,
             "config": f"no_such_config_{i}"} for i in range(n)]


def swap(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ENGINE}
    return dict(env, **extra)


def run_shards(argvs_envs):
    """Starts every command at once (as N machines would), waits; -> their stdouts."""
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv, env in argvs_envs]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return [out for out, _ in outs]


def cell_files(folder):
    """{cell id: cell file dict} of ``folder``, checking one file per id."""
    found = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            d = json.load(f)
        assert d["cell"]["id"] not in found and os.path.basename(path) == d["cell"]["id"] + ".json"
        found[d["cell"]["id"]] = d
    return found


def check_sharded_folder(out, grid, n):
    cells, _ = load_grid(grid)
    found = cell_files(out)
    assert sorted(found) == sorted(c.id for c in cells)  # each cell exactly once
    for i in range(n):
        for c in shard_cells(cells, i, n):
            assert found[c.id]["shard"] == f"{i}/{n}" and found[c.id]["grid"] == "shards"
    assert not glob.glob(os.path.join(out, "**", ".*.tmp"), recursive=True)
    return found


# --- the README's job files -------------------------------------------------------------------

def test_the_readme_shows_the_job_files():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for path in (K8S, SLURM):
        with open(path) as f:
            assert f"\n{f.read()}```" in readme, path


def k8s_job():
    with open(K8S) as f:
        job = yaml.safe_load(f)
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    (container,) = spec["template"]["spec"]["containers"]
    argv = container["command"] + container.get("args", [])
    n = spec["completions"]
    assert argv[argv.index("--shard-count") + 1] == str(n) and spec["parallelism"] == n
    return n, argv


def slurm_job():
    with open(SLURM) as f:
        text = f.read()
    first, last = re.search(r"^#SBATCH --array=(\d+)-(\d+)$", text, re.M).groups()
    command = [line for line in text.replace("\\\n", " ").splitlines()
               if "-m benchmarks sweep" in line]
    assert len(command) == 1
    argv = shlex.split(command[0])
    n = int(argv[argv.index("--shard-count") + 1])
    assert (int(first), int(last)) == (0, n - 1)
    return range(int(first), int(last) + 1), argv


def local(argv, grid, out):
    """The job's command line on this machine: this Python, a small grid, a temporary folder."""
    assert argv[0].endswith("python") and argv[1:5] == ["-m", "benchmarks", "sweep", "--grid"]
    assert argv[5] == "mobile"
    return swap(swap([sys.executable] + argv[1:], "--grid", grid), "--out", out)


def test_kubernetes_indexed_job_as_local_processes(tmp_path):
    n, argv = k8s_job()
    grid = write_grid(tmp_path / "g.yaml", "shards", failing_cells(7))
    out = str(tmp_path / "results")
    stdouts = run_shards([(local(argv, grid, out), clean_env(JOB_COMPLETION_INDEX=str(i)))
                          for i in range(n)])
    assert [re.findall(r"^shard \d+/\d+", s, re.M) for s in stdouts] == [[f"shard {i}/{n}"]
                                                                        for i in range(n)]
    check_sharded_folder(out, grid, n)
    # run again, as a retried pod would: nothing is measured twice, nothing is lost
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "*.json"))}
    run_shards([(local(argv, grid, out) + ["--skip-failed"],
                 clean_env(JOB_COMPLETION_INDEX=str(i))) for i in range(n)])
    assert {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "*.json"))} == before


def test_slurm_array_as_local_processes(tmp_path):
    ids, argv = slurm_job()
    grid = write_grid(tmp_path / "g.yaml", "shards", failing_cells(5))
    out = str(tmp_path / "results")
    array = {"SLURM_ARRAY_TASK_MIN": str(ids[0]), "SLURM_ARRAY_TASK_MAX": str(ids[-1]),
             "SLURM_ARRAY_TASK_COUNT": str(len(ids))}
    run_shards([(local(argv, grid, out), clean_env(SLURM_ARRAY_TASK_ID=str(i), **array))
                for i in ids])
    check_sharded_folder(out, grid, len(ids))


# --- a shard killed mid-cell ------------------------------------------------------------------

def cell_processes(out):
    """PIDs of cell processes (benchmarks.sweep_cell) working for ``out``."""
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().decode(errors="replace")
        except OSError:
            continue
        if "benchmarks.sweep_cell" in args and out in args:
            pids.append(int(cmdline.split("/")[2]))
    return pids


def start_and_kill(argv, out, sig):
    shard = subprocess.Popen(argv, cwd=ROOT, env=clean_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not cell_processes(os.path.join(out, "logs", "ssd-mobilenet_v2-64")):
        assert time.time() < deadline and shard.poll() is None, shard.stderr.read()
        time.sleep(0.2)
    time.sleep(1.5)  # TensorFlow is loading: the cell is half-way
    shard.send_signal(sig)
    shard.communicate(timeout=30)
    deadline = time.time() + 15
    while cell_processes(out):  # the cell's process went with the shard
        assert time.time() < deadline, "a cell process outlived its killed shard"
        time.sleep(0.2)
    assert not os.path.exists(os.path.join(out, "ssd-mobilenet_v2-64.json"))
    return shard.returncode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_shard_reruns_without_duplicates_or_loss(tmp_path):
    cells = failing_cells(2)
    cells.insert(1, dict(TINY_SSD, resolution=64))
    grid = write_grid(tmp_path / "g.yaml", "shards", cells)
    out = str(tmp_path / "results")
    mine = [c.id for c in shard_cells(load_grid(grid)[0], 1, 2)]
    assert "ssd-mobilenet_v2-64" in mine  # the real cell is in shard 1
    argv = [sys.executable, "-m", "benchmarks", "sweep", "--grid", grid, "--out", out,
            "--no-progress"]
    assert start_and_kill(argv + ["--shard", "1/2"], out, signal.SIGKILL) == -signal.SIGKILL
    assert start_and_kill(argv + ["--shard", "1/2"], out, signal.SIGTERM) == 128 + signal.SIGTERM
    run_shards([(argv + ["--shard", "1/2"], clean_env())])
    assert sorted(cell_files(out)) == sorted(mine)
    run_shards([(argv + ["--shard", "0/2"], clean_env())])
    found = check_sharded_folder(out, grid, 2)
    assert found["ssd-mobilenet_v2-64"]["status"] == "ok"
    assert [c["cell"]["id"] for c in load_results(out).cells] == ["ssd-mobilenet_v2-64"]


# --- three machines vs one --------------------------------------------------------------------

TIMINGS = {"tf_latency_ms", "postprocess_ms", "peak_memory_mb", "seconds", "date", "shard",
           "log", "_file"}


def without_timings(cell):
    """A cell file's dict without what differs from run to run (times, memory, date, shard)."""
    d = {k: v for k, v in cell.items() if k not in TIMINGS}
    d["tflite"] = {q: {k: v for k, v in e.items() if k != "invoke_ms"}
                   for q, e in (cell.get("tflite") or {}).items()}
    return d


def tables_without_timings(md):
    """The report's headings and its all-cells table without the time and memory columns."""
    headings = [line for line in md.splitlines() if line.startswith("#")]
    table = md.split("## All measured cells")[1].split("##")[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()
            if line.startswith("|") and set(line) - set("|-")]
    keep = [i for i, h in enumerate(rows[0]) if h in
            ("cell id", "config", "device", "params M", "GFLOPs", "AP", "trained run")]
    return headings, [[r[i] for i in keep] for r in rows]


@pytest.mark.slow  # ~6 real cells, ~90 s of CPU
def test_three_shard_folders_merge_into_the_one_machine_report(tmp_path):
    grid = write_grid(tmp_path / "g.yaml", "shards",
                      [dict(TINY_SSD, resolution=r) for r in (64, 96, 128)])
    base = [sys.executable, "-m", "benchmarks", "sweep", "--grid", grid, "--no-progress"]
    folders = [str(tmp_path / f"shard{i}") for i in range(3)]
    run_shards([(base + ["--out", folders[i], "--shard", f"{i}/3"], clean_env())
                for i in range(3)])
    one = str(tmp_path / "one")
    run_shards([(base + ["--out", one], clean_env())])
    merged, single = load_results(folders), load_results(one)
    assert merged.problems == single.problems == []
    assert [without_timings(c) for c in merged.cells] == [without_timings(c) for c in
                                                          single.cells]
    reports = []
    for results, name in ((folders, "merged"), ([one], "single")):
        out = tmp_path / name
        subprocess.run([sys.executable, "-m", "benchmarks", "report", "--out", str(out)]
                       + [a for r in results for a in ("--results", r)], cwd=ROOT, check=True,
                       capture_output=True)
        reports.append(tables_without_timings((out / "report.md").read_text()))
    assert reports[0] == reports[1]
    assert len(reports[0][1]) == 4  # header + 3 cells
