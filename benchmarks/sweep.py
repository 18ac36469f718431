"""``python -m benchmarks sweep --grid {quick,mobile,paper,FILE.yaml} --out DIR``.

Measures every cell of a grid (benchmarks/grids.py: meta-architecture x extractor x resolution
x proposals x stride), each in a fresh process (benchmarks/sweep_cell.py) with a timeout.
Each leaves ``DIR/<cell id>.json`` in the report's schema (benchmarks/results_schema.py,
``frontier.sweep.cell/1``): parameters, FLOPs, TensorFlow batch-1 latency with post-processing
(median, p90, warm-up, runs, machine, device), peak memory, ``.tflite`` float32 / int8 size and
LiteRT invoke latency per thread count (the files in ``DIR/models/``, named after the cell, as
the report matches a Pi's JSON by file name), and COCO AP when a trained run of that
architecture is given (``--runs``, ``--zoo``), else the cell is untrained (no ``ap``).

* A failing cell (error, crash, out of memory, timeout) is recorded as ``status: failed`` with
  the child's last stderr line, and the sweep goes on; its full log is ``DIR/logs/<id>.log``.
* Each cell file is written atomically; a rerun skips the cells already ``ok`` (failed ones are
  tried again unless ``--skip-failed``), so an interrupted sweep resumes where it stopped.
* A progress bar (tqdm) with the ETA of the cells left.
* ``--shard I/N`` (or ``--shard-count N`` and the job engine's index) measures a fixed,
  cost-balanced share of the cells (benchmarks/shards.py), so N machines share one grid. Each
  cell file records its ``grid`` (and ``shard``); a folder holding another grid's cells is
  refused before any cell starts. SIGTERM, or the sweep's own death, kills the running cell's
  process and leaves no file for it: the same command again resumes.

Post-processing of untrained weights: random weights put the scores of many anchors near the
NMS score threshold, so NMS can have more candidates than for a trained model and the
end-to-end time would be pessimistic. Chosen: the headline ``tf_latency_ms`` keeps
post-processing exactly as configured (the paper times with it, and a trained cell of the same
grid is timed the same way), and every cell also records ``postprocess_ms``, decode + NMS alone
on the cell's own predictions for the same frame (and ``postprocess_note`` saying so), so that
part can be read off or subtracted. Why not raise the score threshold for untrained cells: it
would time a different post-processing than the trained cells', and the measured part is small.
Measured on this machine (2 shared cores, 10 runs each, 2026-12-02), untrained vs the zoo's
trained weights of the same architecture:

    cell                                   post-processing alone    end to end (TF)
    ssd-mobilenet_v2-256 (shapes)          1.71 vs 0.71 ms          20.1 vs 20.5 ms
    faster_rcnn-mobilenet_v2-256-p50       1.12 vs 0.93 ms          53.2 vs 57.5 ms
    untrained COCO configs (90 classes, score threshold 1e-8):
    ssd-mobilenet_v1-300                   5.8 ms of 71 ms (8%)
    faster_rcnn-mobilenet_v1-300-p100      4.1 ms of 378 ms (1%)

So untrained NMS is up to 2.4x slower, but it is at most ~8% of a frame here: within the
run-to-run noise of the end-to-end figure on a shared machine.

The ``mobile`` grid (18 cells): SSD x {mobilenet_v1, mobilenet_v2 (SSDLite), inception_v2} at
300; Faster R-CNN x the same three and R-FCN x mobilenet_v1/v2 (inception_v2 has no output
stride 16) at 300 with 50 and 300 proposals; and the pairs the paper's findings need: SSD-
MobileNet-v1 at 150, SSD-MobileNet-v2 (shapes) at 256 and 128, Faster R-CNN-ResNet-101 at 150
(50 proposals) at output stride 16 and 8. ``--zoo`` makes 5 cells trained (the zoo SSD at its
256, the zoo Faster R-CNN and R-FCN at 300) with COCO AP, float and int8, on 1000 val images.
Its budget (done-when: <= 60 min on a 2-core machine): measured with ``make sweep`` on this
quiet 2-core AMD EPYC VM on 2026-12-03: 47 min 05 s for the 18 cells (1.1-5.6 min each; the
ResNet-101 and 300-proposal cells are the slow ones), then 3 min 12 s to measure 2 SSD cells
again after the SSD resolution rule of ``match_runs``. With 10 timed frames per figure on a
shared CPU a figure can be off by 2x: rerun with more runs (a grid file's ``settings``) on an
idle machine for final numbers.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

from benchmarks.grids import Cell, GridError, grid_name, load_grid
from benchmarks.results_schema import SCHEMA


# --- trained runs -----------------------------------------------------------------------------
def zoo_runs() -> list[str]:
    zoo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train", "zoo")
    return sorted(os.path.join(zoo, d) for d in os.listdir(zoo)
                  if os.path.isfile(os.path.join(zoo, d, "config.yaml")))


def run_architecture(run_dir: str) -> tuple:
    """(meta_architecture, extractor, output stride, input size) of a run folder's
    config.yaml (input size: SSD's M; two-stage: the shorter edge)."""
    from train.config import load_config
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise ValueError(f"--runs {run_dir}: no config.yaml; not a `python -m train fit` run")
    m = load_config(path).model
    return (m.meta_architecture, m.feature_extractor.name, m.feature_extractor.output_stride,
            m.section.image_size)


def match_runs(cells: list[Cell], runs: list[str]) -> dict:
    """{cell id: run folder} where a run's architecture is the cell's (stride None on either
    side = the extractor's default, which matches 16); the first run given wins.

    An SSD run gives AP only at the resolution it was trained at: its anchors are fractions of
    the image, tied to feature maps whose heads learnt objects at their pixel sizes, so at
    another input size every box comes out scaled by the size ratio (the zoo SSD, trained at
    256: AP 0.466 there, 0.20 at 300, 0.00 at 128). Two-stage anchors are in pixels, and those
    models keep their AP across sizes (zoo Faster R-CNN: 0.508 at 256, 0.55 at 300); their
    cells at any resolution use the run."""
    archs = [(r, run_architecture(r)) for r in runs]
    matched = {}
    for c in cells:
        for r, (meta, ext, stride, size) in archs:
            if (meta, ext) == (c.meta_architecture, c.extractor) and (
                    (stride or 16) == (c.stride or 16)) and (
                    meta != "ssd" or size == c.resolution):
                matched[c.id] = r
                break
    return matched


# --- one cell -----------------------------------------------------------------------------------
def cell_status(path: str) -> str | None:
    """"ok" / "failed" of a cell file, None if it is missing or unreadable (half-written)."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None
    return d.get("status") if isinstance(d, dict) and d.get("schema") == SCHEMA else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def failed_cell(cell: Cell, error: str, log: str | None, record: dict | None = None) -> dict:
    from edge_runtime.benchmark import machine_info
    return {"schema": SCHEMA, "cell": cell.key(), "status": "failed", "error": error,
            "log": log, "machine": machine_info(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(record or {})}


def _child(argv, log, cwd, env, timeout) -> tuple[int | None, str]:
    """Runs the cell's process in its own process group (stdout to ``log``); -> (exit status,
    or None when it ran past ``timeout`` seconds; its stderr). On a timeout, or when the sweep
    itself is stopped (Ctrl-C), the whole group is killed: nothing of the cell is left running."""
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=env, start_new_session=True, preexec_fn=_die_with_parent())
    try:
        _, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stderr
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, proc.communicate()[1]
    except BaseException:
        _kill_group(proc)
        raise


def _die_with_parent():
    """Linux: the cell's process gets SIGKILL when the sweep dies, even by SIGKILL, so a
    re-run never measures a cell while an orphan of the killed sweep still writes it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def child():
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the sweep died before prctl
            os._exit(1)
    return child


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_cell(cell: Cell, out: str, settings: dict, run: str | None, data: str | None,
             record: dict | None = None, calibration: str | None = None) -> str:
    """Runs one cell's process; -> its status. A failure is written as a failed cell file.
    ``record``: keys copied into the cell file (its grid, its shard)."""
    from edge_runtime.files import write_json

    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    spec_path = os.path.join(logs, f"{cell.id}.spec.json")
    log_path = os.path.join(logs, f"{cell.id}.log")
    spec = {"id": cell.id, "cell": cell.to_dict(), "settings": settings, "out": out,
            "run": run, "data": data, "record": record or {},
            "calibration_data": calibration or os.path.join(out, "work",
                                                             "calibration_shapes_tiny")}
    write_json(spec_path, spec)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    result_path = os.path.join(out, f"{cell.id}.json")
    started = time.time()
    with open(log_path, "w") as log:
        rc, stderr = _child([sys.executable, "-m", "benchmarks.sweep_cell", spec_path], log,
                            root, env, settings["timeout_s"])
        log.write(stderr)
    if rc is None:
        error = f"timed out after {settings['timeout_s']} s"
        write_json(result_path, failed_cell(cell, error, log_path, record), indent=1)
        return "failed"
    if cell_status(result_path) == "ok" and os.path.getmtime(result_path) >= started - 1:
        return "ok"  # written by this child (even if it crashed on its way out, as TF can)
    error = _last_line(stderr) or f"the cell's process exited with status {rc}"
    if rc < 0:
        error = f"killed by signal {-rc} (out of memory?); last line: {error}"
    write_json(result_path, failed_cell(cell, error, log_path, record), indent=1)
    return "failed"


# --- the sweep ----------------------------------------------------------------------------------
def sweep(grid: str, out: str, runs=(), zoo: bool = False, data: str | None = None,
          skip_failed: bool = False, overrides: dict | None = None, progress: bool = True,
          only: list[str] | None = None, shard: tuple[int, int] | None = None) -> dict:
    """Measures every cell of ``grid`` (of shard ``(I, N)`` of it, benchmarks/shards.py) not
    already done in ``out``; -> {"ok", "failed", "skipped"}: lists of cell ids. Every check
    comes before the first cell starts."""
    from tqdm import tqdm

    from benchmarks.shards import shard_cells

    cells, settings = load_grid(grid)
    name = grid_name(grid)
    settings.update(overrides or {})
    if only:
        unknown = sorted(set(only) - {c.id for c in cells})
        if unknown:
            raise ValueError(f"--only: no such cell(s) in grid {grid}: {', '.join(unknown)}")
    out = os.path.abspath(out)
    check_folder(out, name, {c.id for c in cells})
    trained = match_runs(cells, list(runs) + (zoo_runs() if zoo else []))
    record = {"grid": name}
    calibration = None
    if shard is not None:
        # a cell's shard never depends on --only: re-running a shard with --only keeps it
        cells = shard_cells(cells, *shard, trained=set(trained))
        record["shard"] = f"{shard[0]}/{shard[1]}"
        # each shard its own copy: two shards must not build one folder at once
        calibration = os.path.join(out, "work", f"shard-{shard[0]}-of-{shard[1]}",
                                   "calibration_shapes_tiny")
    if only:
        cells = [c for c in cells if c.id in only]
    os.makedirs(out, exist_ok=True)
    done = {"ok": [], "failed": [], "skipped": []}
    todo = []
    for c in cells:
        status = cell_status(os.path.join(out, f"{c.id}.json"))
        if status == "ok" or (status == "failed" and skip_failed):
            done["skipped"].append(c.id)
        else:
            todo.append(c)
    bar = tqdm(total=len(cells), initial=len(done["skipped"]), unit="cell", desc="sweep",
               disable=not progress, dynamic_ncols=True)
    previous = _stop_on_sigterm()
    try:
        with bar:
            for c in todo:
                bar.set_postfix_str(c.id + (" (trained)" if c.id in trained else ""))
                run = trained.get(c.id)
                status = run_cell(c, out, settings, run, _data_for(run, data), record,
                                  calibration)
                done[status].append(c.id)
                if status == "failed" and progress:
                    with open(os.path.join(out, f"{c.id}.json")) as f:
                        bar.write(f"{c.id}: failed: {json.load(f)['error']}")
                bar.update(1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return done


def check_folder(out: str, name: str, ids: set) -> None:
    """GridError when ``out`` holds a cell file of another grid: one that records another grid
    name, or (files from before cells recorded it) whose id is not a cell of this grid."""
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError):
            continue  # not a finished cell file; the report lists it
        if not (isinstance(d, dict) and str(d.get("schema", "")).startswith(
                "frontier.sweep.cell/") and isinstance(d.get("cell"), dict)):
            continue
        recorded, cid = d.get("grid"), d["cell"].get("id")
        why = (f"grid {recorded!r}" if recorded is not None and recorded != name else
               None if cid in ids else f"cell {cid} is not in grid {name!r}")
        if why:
            raise GridError(f"--out {out} holds cells of another grid: "
                            f"{os.path.basename(path)} ({why}); use another --out folder")


def _stop_on_sigterm():
    """SIGTERM (a Kubernetes pod deleted, Slurm's scancel or time limit, ``kill``) stops the
    sweep as Ctrl-C does: the running cell's process group is killed and nothing is recorded
    for it, so a re-run measures it again. -> the previous handler (None: not installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)
    return signal.signal(signal.SIGTERM, stop)


def _data_for(run: str | None, data: str | None) -> str | None:
    """Where a trained run's AP is measured: ``--data``, else the data its eval.json names if
    that folder is here, else none (the cell is timed, with no AP)."""
    if run is None:
        return None
    if data:
        return data
    try:
        with open(os.path.join(run, "eval.json")) as f:
            recorded = json.load(f).get("data")
    except (OSError, ValueError):
        return None
    for candidate in (recorded, os.path.join("data", os.path.basename(recorded or ""))):
        if candidate and os.path.isdir(candidate):
            return candidate
    return None
