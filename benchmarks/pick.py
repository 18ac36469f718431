"""``python -m benchmarks pick``: on this device, within T ms, the most accurate model of a sweep.

A *model* is what a practitioner ships and runs: (sweep cell, quantization, LiteRT thread
count). Its accuracy is the COCO metric measured on that very file (the cell's ``ap`` for
float32, ``ap_int8`` for int8); models without one (untrained cells: random weights; an int8
file never scored; AP_small -1 when the data had no small objects) cannot be picked: they are
skipped and counted. Its latency is LiteRT's invoke time (the interpreter, NMS op included;
median and p90), either the sweep's own (``tflite.<q>.invoke_ms`` of each cell, on the machine
that swept it) or a device file's (``edge_runtime benchmark --json``: ``stages_ms.invoke``),
matched to the cells by model file name as the report matches them (edge_reports.py). A
device file's models that are no cell's, such as the demo's, compete when scored: ``--scores``
takes ``edge_runtime evaluate --json`` files, each the COCO metrics of one .tflite, matched to
the device's results by path, else by file name (pick_files.py); such a model is named by its
file, its quantization is the device result's ("?" when unrecorded). Why
invoke: it is the figure both files hold for every model and thread count; TensorFlow's time is
a desktop figure, not what ships.

A model fits when its median is within the budget (p90 is shown, and flagged when it is not).
Each (cell, quantization) is listed once, at its fastest thread count that fits; the pick is
the most accurate (ties: the faster), the runners-up follow by accuracy. Nothing is re-run.
"""
from __future__ import annotations

import math

from benchmarks.edge_reports import device_name
from benchmarks.frontier import short_name
from benchmarks.pick_files import PickError, load_device, load_scores  # noqa: F401

NOTHING_FITS = 1  # exit code when no model is within the budget (errors are 2)


def parse_budget(text) -> float:
    try:
        budget = float(text)
    except (TypeError, ValueError):
        budget = math.nan
    if not (math.isfinite(budget) and budget > 0):
        raise PickError(f"--budget-ms must be a positive number of milliseconds, got {text!r}")
    return budget


def sweep_points(cells) -> list[dict]:
    """The cells' own LiteRT times, as edge_points' points (device = the sweeping machine)."""
    return [{"device": device_name(c["machine"]), "cell": c, "quant": q, "threads": int(t),
             "median": float(v["median"]), "p90": float(v["p90"]), "file": c["_file"]}
            for c in cells for q, e in sorted((c.get("tflite") or {}).items())
            for t, v in sorted(e["invoke_ms"].items(), key=lambda kv: int(kv[0]))]


def options(points, metric: str) -> tuple[list[dict], list[dict]]:
    """-> (models with an accuracy, skipped [{"cell", "scores", "quant", "why"}] once per file).
    A cell's model has "scores" None; a scored file's has "cell" None, "scores" its score file."""
    found, skipped = [], {}
    for p in points:
        c, s = p["cell"], p.get("scored")
        ap = s["metrics"] if s else c.get("ap" if p["quant"] == "float32" else "ap_int8")
        value = (ap or {}).get(metric)
        key = (None, s["file"], p["quant"]) if s else (c["cell"]["id"], None, p["quant"])
        if value is None or value < 0:
            why = ("untrained (random weights)" if not (s or c.get("ap")) else
                   f"no {metric} measured for its {p['quant']} file" if value is None else
                   f"{metric} -1: no such objects in its data")
            skipped[key] = why
            continue
        found.append({"model": s["name"] if s else short_name(c["cell"]), "cell": key[0],
                      "scores": key[1], "quant": p["quant"], "threads": p["threads"],
                      "accuracy": float(value), "median": p["median"], "p90": p["p90"],
                      "device": p["device"]})
    return found, [{"cell": k[0], "scores": k[1], "quant": k[2], "why": w}
                   for k, w in skipped.items()]


def answer(found, budget: float) -> dict:
    """The pick for ``budget`` ms: {"pick", "runners_up"} or, when nothing fits, {"fastest",
    "over_ms"}; every model gets "spare_ms" (budget - median) and the pick "vs_pick" 0."""
    best = {}
    for o in sorted((o for o in found if o["median"] <= budget), key=lambda o: o["median"]):
        best.setdefault((o["cell"], o["scores"], o["quant"], o["device"]), o)  # fastest threads
    ranked = sorted(best.values(),
                    key=lambda o: (-o["accuracy"], o["median"], o["cell"] or o["model"]))
    ranked = [dict(o, spare_ms=budget - o["median"],
                   vs_pick=o["accuracy"] - ranked[0]["accuracy"]) for o in ranked]
    out = {"budget_ms": budget, "pick": ranked[0] if ranked else None,
           "runners_up": ranked[1:], "fastest": None, "over_ms": None}
    if not ranked and found:
        fastest = min(found, key=lambda o: (o["median"], -o["accuracy"]))
        out.update(fastest=fastest, over_ms=fastest["median"] - budget)
    return out


def summary(found, skipped, metric: str, with_cells: bool, untimed: int = 0) -> str:
    """The closing line: how many model files have ``metric``, how many were skipped, why;
    ``untimed``: the sweep's cells a device file does not time (they cannot compete)."""
    of_cells = [s for s in skipped if s["cell"]]
    scored = len(skipped) - len(of_cells)
    parts = [f"{len(of_cells)} file(s) of {len({s['cell'] for s in of_cells})} cell(s)"] * \
        with_cells + [f"{scored} scored file(s)"] * bool(scored or not with_cells)
    why = ", ".join(sorted({s["why"] for s in skipped}))
    return (f"{len({(o['cell'], o['scores'], o['quant']) for o in found})} model file(s) "
            f"scored by {metric}; skipped {' and '.join(parts)}" + (f": {why}" if why else "")
            + (f"; {untimed} sweep cell(s) not timed in the device file" if untimed else ""))


def budget_ladder(found) -> list[float]:
    """Round budgets (1-2-5 per decade) from the last one that nothing fits to the first that
    fits the most accurate model: past that the pick no longer changes."""
    if not found:
        return []
    lo = min(o["median"] for o in found)
    top = max(o["accuracy"] for o in found)
    hi = min(o["median"] for o in found if o["accuracy"] == top)
    steps = [m * 10.0 ** e for e in range(-1, 6) for m in (1, 2, 5)]
    first = max([s for s in steps if s < lo], default=steps[0])
    last = min([s for s in steps if s >= hi], default=steps[-1])
    return [s for s in steps if first <= s <= last]


def describe(o) -> str:
    threads = "default threads" if o["threads"] is None else \
        f"{o['threads']} thread{'s' if o['threads'] != 1 else ''}"
    return f"{o['model']} {o['quant']}, {threads}"


def format_answer(ans, metric: str, source: str) -> str:
    b = ans["budget_ms"]
    devices = sorted({o["device"] for o in [ans["pick"] or ans["fastest"]] + ans["runners_up"]
                      if o})
    where = devices[0] if len(devices) == 1 else "several machines (see the device column)"
    if ans["pick"] is None:
        f = ans["fastest"]
        return (f"nothing fits within {b:g} ms on {where} ({source}): the fastest is "
                f"{describe(f)}, at {f['median']:.2f} ms (p90 {f['p90']:.2f}), "
                f"{ans['over_ms']:.2f} ms over budget ({metric} {f['accuracy']:.3f})")
    p = ans["pick"]
    lines = [f"Within {b:g} ms on {where}, the most accurate by {metric} ({source}):",
             f"pick: {describe(p)}: {metric} {p['accuracy']:.3f} at {p['median']:.2f} ms "
             f"(p90 {p['p90']:.2f}), {p['spare_ms']:.2f} ms to spare", ""]
    head = f"{'rank':>4}  {'model':24s} {'quant':8s} {'threads':>7} {metric:>8} " \
           f"{'median ms':>9} {'p90 ms':>8} {'spare ms':>8} {'vs pick':>7}"
    lines.append(head + ("  device" if len(devices) > 1 else ""))
    for i, o in enumerate([p] + ans["runners_up"], 1):
        late = "*" if o["p90"] > b else " "
        lines.append(f"{i:>4}  {o['model'][:24]:24s} {o['quant']:8s} "
                     f"{o['threads'] or 'default':>7} {o['accuracy']:8.3f} {o['median']:9.2f} "
                     f"{o['p90']:7.2f}{late} {o['spare_ms']:8.2f} "
                     f"{'—' if i == 1 else format(o['vs_pick'] * 100, '+.1f'):>7}"
                     + (f"  {o['device']}" if len(devices) > 1 else ""))
    lines.append(f"(LiteRT invoke ms; vs pick in {metric} points; each model at its fastest "
                 "thread count that fits" + ("; * p90 over the budget" if any(
                     o["p90"] > b for o in [p] + ans["runners_up"]) else "") + ")")
    return "\n".join(lines)


def budget_rows(found) -> list[list]:
    """The report's "by budget" table for one device: a row per budget of budget_ladder."""
    rows = []
    for b in budget_ladder(found):
        a = answer(found, b)
        if a["pick"] is None:
            f = a["fastest"]
            rows.append([f"{b:g}", f"nothing fits: the fastest, {describe(f)}, misses by "
                         f"{a['over_ms']:.2f} ms", "—", "—", "—", "—", 0])
            continue
        p = a["pick"]
        rows.append([f"{b:g}", describe(p), f"{p['accuracy']:.3f}", f"{p['median']:.2f}",
                     f"{p['p90']:.2f}", (f"{describe(a['runners_up'][0])}, "
                     f"{a['runners_up'][0]['vs_pick'] * 100:+.1f}") if a["runners_up"]
                     else "—", 1 + len(a["runners_up"])])
    return rows


BUDGET_HEADER = ["budget ms", "pick", "AP", "median ms", "p90 ms",
                 "runner-up, AP points vs pick", "models that fit"]
