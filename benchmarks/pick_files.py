"""The files ``benchmarks pick`` reads besides the sweep: a device file and score files.

A device file is ``edge_runtime benchmark --json`` (edge_runtime/benchmark.py): per model and
thread count, "model" (the file's base name), "path" (its absolute path where it was timed),
"quantize" (from the model's metadata) and ``stages_ms.invoke``. A score file is
``edge_runtime evaluate --json`` (edge_runtime/evaluate.py): the COCO metrics of one .tflite,
whose absolute path is its "model"; it records no quantization, so a scored model's is the
device result's "quantize" ("?" when that is missing too).

A device result is a scored file's when its "path" is the file's path, else when its "model"
is the file's name: a Pi times its copy of a file scored on the desktop, under another path.
Two scored files of that name, neither at the result's path, are an error naming both. A
result that is a scored file is that file, even when a sweep cell's file has its name: the
score was asked for on the command line.
"""
from __future__ import annotations

import json
import os

from benchmarks.edge_reports import edge_points
from benchmarks.results_schema import AP_KEYS


class PickError(ValueError):
    """Bad input: one line that names the value or the file."""


def _read(flag: str, path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PickError(f"{flag} {path}: cannot read it as JSON ({e})") from None


def load_scores(paths) -> list[dict]:
    """-> [{"file": score file, "path": the .tflite's absolute path, "name", "metrics"}]; a
    model is named by its file name, or folder/name when two scored files share a name."""
    scores = {}
    for path in paths:
        report = _read("--scores", path)
        model = report.get("model") if isinstance(report, dict) else None
        if not (isinstance(model, str) and model.endswith(".tflite") and all(
                isinstance(report.get(k), (int, float)) for k in AP_KEYS)):
            raise PickError(f"--scores {path}: not an `edge_runtime evaluate --json` file "
                            "(needs \"model\", the .tflite it scored, and its COCO metrics "
                            f"{', '.join(AP_KEYS)})")
        twin = next((s for s in scores.values() if s["path"] == model), None)
        if twin and twin["file"] != os.path.abspath(path):
            raise PickError(f"--scores {twin['file']} and {path} both score {model}: give one")
        scores[os.path.abspath(path)] = {"file": os.path.abspath(path), "path": model,
                                         "name": os.path.basename(model), "metrics": report}
    names = [s["name"] for s in scores.values()]
    for s in scores.values():
        if names.count(s["name"]) > 1:
            s["name"] = os.path.join(os.path.basename(os.path.dirname(s["path"])), s["name"])
    return list(scores.values())


def _matcher(scores, device: str):
    by_path = {s["path"]: s for s in scores}

    def match(result):
        s = by_path.get(result.get("path"))
        if s is None:
            same = [s for s in scores if os.path.basename(s["path"]) == result["model"]]
            if len(same) > 1:
                where = f"timed at {result['path']}" if result.get("path") else "no path"
                raise PickError(
                    f"--device {device}: {result['model']} ({where}) is ambiguous: scored as "
                    f"{same[0]['path']} ({same[0]['file']}) and as {same[1]['path']} "
                    f"({same[1]['file']}); give one of them to --scores")
            s = same[0] if same else None
        return s and {"scored": s, "quant": result.get("quantize") or "?"}
    return match


def load_device(path: str, cells, scores=()) -> tuple[list[dict], list[str]]:
    """A device file's points matched to ``cells`` and scored files -> (points, warnings);
    PickError when the file is unreadable, of another schema, or of another model set (no
    result matches), and when none of ``scores`` is in it."""
    report = _read("--device", path)
    points, problems = edge_points([(path, report)], cells,
                                   _matcher(scores, path) if scores else None)
    warnings = [m for _, m in problems]
    timed = {p["scored"]["file"] for p in points if p.get("scored")}
    if points and scores and not timed:
        scored = ", ".join(s["name"] for s in scores)
        raise PickError(f"--device {path}: none of the scored models ({scored}) is in it, by "
                        "path or file name (time them with `python -m edge_runtime benchmark "
                        "MODEL --json FILE`)")
    warnings += [f"{s['name']} is not in it: scored ({s['file']}), never timed, left out"
                 for s in scores if s["file"] not in timed]
    if points:
        return points, warnings
    results = report.get("results") if isinstance(report, dict) else None
    names = sorted({r["model"] for r in results or [] if isinstance(r, dict)
                    and isinstance(r.get("model"), str)})
    if names and not any("another schema" in m for _, m in problems):
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        what = " or ".join(w for w, given in (("the sweep's cells", cells),
                                               ("the --scores files", scores)) if given)
        raise PickError(f"--device {path}: a device file of another model set: none of its "
                        f"models ({shown}) is a .tflite file of {what}")
    raise PickError(f"--device {path}: not an edge_runtime benchmark JSON with results "
                    "(write one with `python -m edge_runtime benchmark MODEL --json FILE`)")
