"""Pi/phone latency: ``edge_runtime benchmark`` JSON files matched to the sweep's cells.

The file (``python -m edge_runtime benchmark MODEL... --json FILE``, schema in
edge_runtime/benchmark.py) holds ``machine`` and one entry in ``results`` per model and
thread count, with ``model`` = the model file's base name and ``stages_ms.invoke`` = the
interpreter's time (the figure the sweep records on this CPU as ``tflite.<q>.invoke_ms``). A
result belongs to the cell whose ``tflite.<q>.file`` is that name, as quantization ``q``; the
sweep names exported files after their cell id so the name survives the trip to the device.
A file of another schema, or a result with no matching cell, is listed, never fatal.
``benchmarks pick --scores`` passes ``match``: results that are scored files rather than
cells (benchmarks/pick_files.py).
"""
from __future__ import annotations


def device_name(machine: dict) -> str:
    return f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, " \
           f"{machine.get('arch', '?')})"


def _invoke(result) -> dict | None:
    try:
        inv = result["stages_ms"]["invoke"]
        if all(isinstance(inv[k], (int, float)) for k in ("median", "p90")):
            return inv
    except (KeyError, TypeError):
        pass
    return None


def edge_points(edge_reports, cells, match=None) -> tuple[list[dict], list[tuple[str, str]]]:
    """-> (points, problems). A point: {"device", "cell", "quant", "threads", "median", "p90",
    "file"}; problems: (file, message) for bad files and unmatched results. ``match(result)``,
    tried first: {"scored", "quant"} of a result that is not a cell's (its point has "cell"
    None and "scored"), or None."""
    by_file = {}
    for cell in cells:
        for q, entry in (cell.get("tflite") or {}).items():
            by_file[entry["file"]] = (cell, q)
    points, problems = [], []
    for path, report in edge_reports:
        results = report.get("results") if isinstance(report, dict) else None
        machine = report.get("machine") if isinstance(report, dict) else None
        if not isinstance(results, list) or not isinstance(machine, dict):
            problems.append((path, "skipped: not an edge_runtime benchmark JSON (needs "
                             "\"machine\" and a \"results\" list; write one with `python -m "
                             "edge_runtime benchmark MODEL --json FILE`)"))
            continue
        bad, unmatched = 0, []
        for r in results:
            inv = _invoke(r)
            if not isinstance(r, dict) or not isinstance(r.get("model"), str) or inv is None:
                bad += 1
                continue
            scored = match(r) if match else None
            if scored is None and r["model"] not in by_file:
                unmatched.append(r["model"])
                continue
            cell, q = (None, None) if scored else by_file[r["model"]]
            points.append({"device": device_name(machine), "cell": cell, "quant": q,
                           "threads": r.get("threads"), "median": float(inv["median"]),
                           "p90": float(inv["p90"]), "file": path, **(scored or {})})
        if bad:
            problems.append((path, f"skipped {bad} of {len(results)} result(s): another schema "
                             "(each needs \"model\" and \"stages_ms\".\"invoke\" median/p90)"))
        if unmatched:
            problems.append((path, "no cell " + ("or scored file " if match else "") +
                             "has a tflite file named " + ", ".join(
                sorted(set(unmatched))) + " (results skipped)"))
    return points, problems
