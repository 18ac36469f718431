"""The sweep's results folder: one JSON file per measured grid cell, and a loader that checks them.

Why a schema: the sweep (``python -m benchmarks sweep``) and the report are written apart and run
apart (a sweep takes hours; a report is re-drawn many times), so the file between them is the
contract. One file per cell means a sweep that dies keeps every cell it finished.

A cell file (``<cell id>.json``; extra keys are allowed and ignored)::

    {"schema": "frontier.sweep.cell/1",
     "cell": {"id": "faster_rcnn-mobilenet_v2-300-p50-s16",  # unique in the folder
              "meta_architecture": "ssd" | "faster_rcnn" | "rfcn",
              "extractor": "mobilenet_v2",                   # train/feature_extractors name
              "resolution": 300,                             # SSD: M x M; two-stage: short edge
              "num_proposals": 50 | null,                    # null for SSD (only)
              "stride": 16 | null,                           # null: the extractor's default
              "config": "faster_rcnn_mobilenet_v2_shapes"},  # train/configs name built from
     "status": "ok" | "failed",
     "error": "text",                     # required when failed; a failed cell needs no more
     "machine": {...},                    # edge_runtime.benchmark.machine_info()
     "device": "CPU" | "<the GPU's name>",  # where TensorFlow ran
     "params": int,
     "flops": int,                        # multiply-adds x 2, batch 1, no post-processing
     "tf_latency_ms": {"median": f, "p90": f, "warmup": int, "runs": int,
                       "threads": int | null},  # batch 1, post-processing included (paper)
     "peak_memory_mb": f,                 # of the timed process (RSS on CPU, allocator on GPU)
     "tflite": {"float32": {"file": "<cell id>.float32.tflite", "size_bytes": int,
                            "invoke_ms": {"1": {"median": f, "p90": f}, "2": {...}}},
                "int8": {...same...}} | null,   # invoke_ms by thread count; either may be missing
     "ap": {"AP": f, "AP50": f, "AP_small": f, "AP_medium": f, "AP_large": f,
            "AR100": f} | null,           # COCO metrics in [0, 1]; -1: no objects of that size
     "ap_int8": {...same...} | null,      # the int8 TFLite model's metrics
     "ap_data": "data/shapes_large val" | null,  # what AP was measured on
     "trained_run": {"path": "runs/long_faster_rcnn_mobilenet_v2",
                     "meta_architecture": "faster_rcnn", "extractor": "mobilenet_v2",
                     "stride": null} | null,     # copied from the run's config.yaml
     "grid": "mobile",                    # optional: the grid it was measured for (the sweep
                                          # refuses a folder holding another grid's cells)
     "shard": "1/3",                      # optional: the shard that measured it
     "date": "2026-12-03T08:15:08+0000"}  # optional: when; the newer of two copies wins

A cell without ``ap`` is untrained (random weights): it is timed, so it appears in the time,
memory and FLOPs figures, but on no AP axis. ``ap`` requires ``trained_run``, whose
architecture (meta_architecture, extractor, stride where both are set) must be the cell's;
resolution and proposals are evaluation-time settings and may differ from the run's training.
Where ``trained_run.path`` (relative to where the report runs, the repository root) holds a
config.yaml, that file is checked too.

Matching edge JSON to cells: ``python -m edge_runtime benchmark MODEL --json FILE`` (run on a
Pi or phone) writes one result per model and thread count with ``"model"`` = the model file's
base name. It carries no cell id, so the sweep names each exported file after its cell
(``tflite.<q>.file``, e.g. ``ssd-mobilenet_v2-300.int8.tflite``) and the report matches a result
to the cell whose ``tflite`` entry has that file name (see benchmarks/edge_reports.py).

:func:`load_results` never raises on a bad file: each problem (unreadable or half-written JSON,
foreign JSON, a failed cell, a trained run whose config does not match its cell, a duplicate id)
is returned as ``(file, message)`` and that file's cell is skipped; the good cells still load.
Several folders (the shards of one sweep) are read as one, in file-name order, so the cells
come in the order one folder would give. A cell id in two folders is read once if the two files
are identical; otherwise the newer (``date``, else the file's time) is kept and the other listed.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from datetime import datetime

SCHEMA = "frontier.sweep.cell/1"
META_ARCHITECTURES = ("ssd", "faster_rcnn", "rfcn")
AP_KEYS = ("AP", "AP50", "AP_small", "AP_medium", "AP_large", "AR100")
QUANTS = ("float32", "int8")


class CellError(ValueError):
    """One cell file breaks the schema; the message names the key."""


@dataclass
class Loaded:
    cells: list = field(default_factory=list)      # valid "ok" cells (dicts, + "_file")
    edge: list = field(default_factory=list)       # (file, edge_runtime benchmark report dict)
    problems: list = field(default_factory=list)   # (file, message): skipped or suspicious


def _num(d, key, where, kind=(int, float), optional=False):
    v = d.get(key) if isinstance(d, dict) else None
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, kind):
        want = "an integer" if kind is int else "a number"
        raise CellError(f"{where}.{key} must be {want}, got {v!r}")
    return v


def _dict(d, key, where, optional=False):
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, dict):
        raise CellError(f"{where}.{key} must be an object, got {v!r}")
    return v


def _check_cell_key(c: dict) -> None:
    if not isinstance(c.get("id"), str) or not c["id"]:
        raise CellError("cell.id must be a non-empty string")
    if c.get("meta_architecture") not in META_ARCHITECTURES:
        raise CellError(f"cell.meta_architecture must be one of {META_ARCHITECTURES}, "
                        f"got {c.get('meta_architecture')!r}")
    for key in ("extractor", "config"):
        if not isinstance(c.get(key), str):
            raise CellError(f"cell.{key} must be a string")
    _num(c, "resolution", "cell", int)
    _num(c, "stride", "cell", int, optional=True)
    proposals = _num(c, "num_proposals", "cell", int, optional=True)
    if (proposals is None) != (c["meta_architecture"] == "ssd"):
        raise CellError("cell.num_proposals must be null for SSD and an integer for "
                        f"{c['meta_architecture']}")


def _check_ap(d, key):
    ap = _dict(d, key, "cell", optional=True)
    if ap is not None:
        for k in AP_KEYS:
            v = _num(ap, k, key)
            if not (v == -1 or 0 <= v <= 1):
                raise CellError(f"{key}.{k} must be in [0, 1] (or -1: no such objects), got {v}")
    return ap


def _check_tflite(d):
    tfl = _dict(d, "tflite", "cell", optional=True) or {}
    for q, entry in tfl.items():
        if q not in QUANTS:
            raise CellError(f"tflite.{q}: unknown quantization (expected {QUANTS})")
        where = f"tflite.{q}"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise CellError(f"{where}.file must be the model file's name")
        _num(entry, "size_bytes", where, int)
        for threads, t in _dict(entry, "invoke_ms", where).items():
            if not threads.isdigit():
                raise CellError(f"{where}.invoke_ms keys are thread counts, got {threads!r}")
            _num(t, "median", f"{where}.invoke_ms.{threads}")
            _num(t, "p90", f"{where}.invoke_ms.{threads}")


def validate_cell(d) -> dict:
    """Checks one parsed cell file; returns it or raises CellError (status "failed" included:
    the caller decides what a failed cell means)."""
    if not isinstance(d, dict) or not str(d.get("schema", "")).startswith("frontier.sweep.cell/"):
        raise CellError(f"not a sweep cell (no \"schema\": \"{SCHEMA}\")")
    if d.get("schema") != SCHEMA:
        raise CellError(f"unknown schema {d.get('schema')!r} (this report reads {SCHEMA!r})")
    _check_cell_key(_dict(d, "cell", "cell file"))
    if d.get("status") == "failed":
        if not isinstance(d.get("error"), str):
            raise CellError("a failed cell needs an \"error\" text")
        return d
    if d.get("status") != "ok":
        raise CellError(f"status must be \"ok\" or \"failed\", got {d.get('status')!r}")
    _dict(d, "machine", "cell file")
    if not isinstance(d.get("device"), str):
        raise CellError("device must be a string (\"CPU\" or the GPU's name)")
    _num(d, "params", "cell file", int)
    _num(d, "flops", "cell file", int)
    lat = _dict(d, "tf_latency_ms", "cell file")
    for k in ("median", "p90"):
        if _num(lat, k, "tf_latency_ms") <= 0:
            raise CellError(f"tf_latency_ms.{k} must be > 0")
    _num(lat, "runs", "tf_latency_ms", int)
    _num(lat, "warmup", "tf_latency_ms", int)
    _num(d, "peak_memory_mb", "cell file")
    _check_tflite(d)
    ap, ap8 = _check_ap(d, "ap"), _check_ap(d, "ap_int8")
    run = _dict(d, "trained_run", "cell file", optional=True)
    if (ap is not None or ap8 is not None) and run is None:
        raise CellError("ap given without trained_run: a score needs the run it came from")
    if run is not None:
        _check_trained_run(d["cell"], run)
    return d


def _check_trained_run(cell: dict, run: dict) -> None:
    """The run's architecture must be the cell's (resolution and proposals are evaluation-time
    settings, so they may differ from the run's training config)."""
    if not isinstance(run.get("path"), str):
        raise CellError("trained_run.path must be a string")
    recorded = {k: run.get(k) for k in ("meta_architecture", "extractor", "stride")}
    on_disk = _run_config(run["path"])
    for source, got in (("trained_run", recorded), (f"{run['path']}/config.yaml", on_disk)):
        for key, value in (got or {}).items():
            want = cell.get(key)
            if key == "stride" and (value is None or want is None):
                continue  # null = the extractor's default
            if value != want:
                raise CellError(f"trained run does not match the cell: {source} says "
                                f"{key} {value!r}, the cell {want!r}")


def _run_config(path: str) -> dict | None:
    """meta_architecture / extractor / stride from a run's config.yaml, if it is here."""
    cfg = os.path.join(path, "config.yaml")
    if not os.path.exists(cfg):
        return None
    import yaml
    try:
        with open(cfg) as f:
            model = (yaml.safe_load(f) or {}).get("model", {})
        fe = model.get("feature_extractor", {})
        return {"meta_architecture": model.get("meta_architecture"), "extractor": fe.get("name"),
                "stride": fe.get("output_stride")}
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise CellError(f"{cfg}: unreadable ({e})") from None


def _kind(d) -> str:
    if isinstance(d, dict) and str(d.get("schema", "")).startswith("frontier.sweep.cell/"):
        return "cell"
    if isinstance(d, dict) and (str(d.get("tool", "")).startswith("edge_runtime benchmark")
                                or "results" in d):
        return "edge"
    if isinstance(d, dict) and d.get("format") == "frontier-detector":
        return "metadata"  # a .tflite's sidecar, copied along with the model
    return "foreign"


def load_results(folders, edge_files=()) -> Loaded:
    """Every ``*.json`` in ``folders`` (one path or a list; not recursive) plus ``edge_files``;
    see module docstring."""
    out, seen = Loaded(), {}
    folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    files = []
    for k, folder in enumerate(dict.fromkeys(os.path.normpath(f) for f in folders)):
        if not os.path.isdir(folder):
            out.problems.append((folder, "results folder not found"))
        files += [(os.path.basename(p), k, p) for p in glob.glob(os.path.join(folder, "*.json"))]
    for _, _, path in sorted(files):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            out.problems.append((path, f"skipped: unreadable or half-written JSON ({e})"))
            continue
        kind = _kind(d)
        if kind == "edge":
            out.edge.append((path, d))
        elif kind == "foreign":
            out.problems.append((path, "skipped: not a sweep cell (no \"schema\": "
                                 f"\"{SCHEMA}\") nor an edge_runtime benchmark JSON"))
        elif kind == "cell":
            _add_cell(out, seen, path, d)
    for path in edge_files:
        try:
            with open(path) as f:
                out.edge.append((path, json.load(f)))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            out.problems.append((path, f"skipped: unreadable edge benchmark JSON ({e})"))
    return out


def _add_cell(out: Loaded, seen: dict, path: str, d: dict) -> None:
    try:
        validate_cell(d)
    except CellError as e:
        out.problems.append((path, f"skipped: {e}"))
        return
    cid = d["cell"]["id"]
    if d["status"] == "failed":
        out.problems.append((path, f"skipped: cell {cid} failed: {d['error']}"))
    elif cid not in seen:
        seen[cid] = len(out.cells)
        out.cells.append(dict(d, _file=path))
    else:
        i = seen[cid]
        kept = out.cells[i]["_file"]
        if os.path.dirname(kept) == os.path.dirname(path):
            out.problems.append((path, f"skipped: cell id {cid} repeats {kept}"))
        elif {k: v for k, v in out.cells[i].items() if k != "_file"} == d:
            pass  # the same file in two folders (a copied shard): read once
        elif _measured_at(path, d) > _measured_at(kept, out.cells[i]):
            out.problems.append((kept, f"skipped: cell {cid} is also in {path}, measured "
                                       "later: that one is used"))
            out.cells[i] = dict(d, _file=path)
        else:
            out.problems.append((path, f"skipped: cell {cid} is also in {kept}, measured no "
                                       "earlier: that one is used"))


def _measured_at(path: str, d: dict) -> float:
    """When a cell was measured: its ``date``, else the file's modification time."""
    try:
        return datetime.strptime(d["date"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        return os.path.getmtime(path)
