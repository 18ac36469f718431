"""``python -m benchmarks report``: the sweep's results folder -> report.md, index.html, PNGs.

The report is one benchmarks.document.Doc rendered twice, as Markdown beside its PNGs and as
one self-contained HTML page, so the two never disagree. Every number in it comes from a cell
file of the folder, a Pi/phone JSON or a `train ensemble` eval.json (--ensemble), except the TF1
zoo's published table, which stands apart and never enters a frontier.
Bad files never stop the report: each is listed in its log with the reason it was skipped.
"""
from __future__ import annotations

import json
import os
import time

from benchmarks import figures
from benchmarks.document import Doc
from benchmarks.edge_reports import edge_points
from benchmarks.ensembles import file_name, label, load_ensembles, point
from benchmarks.findings import TOLERANCE_TEXT, check_findings
from benchmarks.frontier import critical_points, pareto_front, short_name
from benchmarks.pick import BUDGET_HEADER, budget_rows, options, sweep_points
from benchmarks.results_schema import load_results
from edge_runtime.files import write_text

ZOO_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf1_zoo_published.json")


def _f(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def _ap(v):
    return "—" if v is None or v < 0 else f"{v:.3f}"


def _time(c):
    return c["tf_latency_ms"]["median"]


def _draw(log, name, fn, *args):
    """One figure; a drawing error is logged, never fatal (the other figures still come)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - a figure must not cost the report
        log.append((name, f"figure not drawn: {type(e).__name__}: {e}"))
        return None


def build_report(results, out: str, edge_files=(), threads: int = 1,
                 zoo_file: str = ZOO_FILE, ensembles=()) -> dict:
    """Writes out/report.md, out/index.html and out/*.png; returns {"cells", "ensembles",
    "problems", "files"} (problems: [(file, message)], also in the report's log);
    ``results``: a folder or a list of them (merged); ``ensembles``: paths of `train ensemble`
    eval.json files."""
    os.makedirs(out, exist_ok=True)
    loaded = load_results(results, edge_files)
    cells, log = loaded.cells, list(loaded.problems)
    ens, eproblems = load_ensembles(ensembles)
    log += eproblems
    epoints, eproblems = edge_points(loaded.edge, cells)
    log += eproblems
    fig = lambda name: os.path.join(out, name)  # noqa: E731
    doc = Doc()
    doc.h("Speed/accuracy report", 1)
    trained = [c for c in cells if c.get("ap")]
    shown = ", ".join(f"`{r}`" for r in ([results] if isinstance(results, str) else results))
    doc.p(f"From {shown} on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
          f"{len(cells)} cell(s) measured ({len(trained)} trained, {len(cells) - len(trained)} "
          f"untrained: those are on no AP axis), {len(log)} problem(s) in the log at the end. "
          "Time is TensorFlow's median per image, batch 1, post-processing included."
          + (f" {len(ens)} ensemble(s) from --ensemble." if ens else ""))
    for note in sorted({c["postprocess_note"] for c in cells if c.get("postprocess_note")}):
        doc.p(f"*Post-processing and untrained weights:* {note}")
    _machines(doc, cells)
    _frontier_section(doc, cells, ens, log, fig)
    doc.h("Memory vs time (paper Fig. 3)")
    doc.img(_draw(log, "fig3", figures.memory_vs_time, cells, fig("fig3_memory_vs_time.png")),
            "Peak memory vs time, by extractor", "no measured cells")
    _size_section(doc, trained, log, fig)
    _proposals_section(doc, cells, log, fig)
    doc.h("FLOPs vs time (paper Fig. 7)")
    doc.img(_draw(log, "fig7", figures.flops_vs_time, cells, fig("fig7_flops_vs_time.png")),
            "FLOPs vs time, by extractor", "no measured cells")
    _edge_section(doc, cells, epoints, threads, log, fig)
    _budget_section(doc, cells, epoints)
    _int8_section(doc, cells)
    _ensemble_section(doc, ens)
    doc.h("The paper's findings on our numbers")
    doc.table(["finding", "paper", "ours", "holds?", "cells"],
              [[r["finding"], r["paper"], r["ours"], r["holds"], r["cells"]]
               for r in check_findings(cells, ens)])
    doc.p(TOLERANCE_TEXT)
    _cells_table(doc, cells)
    _zoo_section(doc, zoo_file, log)
    doc.h("Log: skipped files and problems")
    if log:
        doc.table(["file", "problem"], [[os.path.basename(f), m] for f, m in log])
    else:
        doc.p("No problems: every file in the folder was a valid cell or edge benchmark JSON.")
    write_text(os.path.join(out, "report.md"), doc.markdown())
    write_text(os.path.join(out, "index.html"), doc.html("Speed/accuracy report"))
    files = [b[1] for b in doc.blocks if b[0] == "img"]
    return {"cells": cells, "ensembles": ens, "problems": log, "files": files}


def _machines(doc, cells):
    groups = {}
    for c in cells:
        m = c["machine"]
        key = (m.get("cpu", "?"), m.get("cores", "?"), m.get("hostname", "?"), c["device"],
               c["tf_latency_ms"].get("threads"))
        groups[key] = groups.get(key, 0) + 1
    doc.table(["machine (CPU)", "cores", "host", "device", "TF threads", "cells"],
              [list(k[:4]) + ["all" if k[4] is None else k[4], n] for k, n in groups.items()])
    if len({k[:4] for k in groups}) > 1:
        doc.p("**Cells come from more than one machine or device: their times are not "
              "comparable with each other; the findings pair only cells of one machine.**")


def _frontier_section(doc, cells, ens, log, fig):
    doc.h("AP vs time, optimality frontier (paper Fig. 2)")
    trained = [c for c in cells if c.get("ap")]
    for by, name in (("meta_architecture", "fig2a_ap_vs_time_meta.png"),
                     ("extractor", "fig2b_ap_vs_time_extractor.png")):
        doc.img(_draw(log, name, figures.ap_vs_time, cells, fig(name), by, ens),
                f"AP vs time by {by.replace('_', ' ')}, frontier dashed"
                + (", ensembles as black stars" if ens else ""),
                "no trained cells (untrained cells have no AP)")
    # one frontier over cells and ensembles: [(point, model, id, p90)]
    rows = [((_time(c), c["ap"]["AP"]), short_name(c["cell"]), c["cell"]["id"],
             c["tf_latency_ms"]["p90"]) for c in trained]
    rows += [(point(e), label(e), file_name(e), e["ms_per_image"]["p90"]) for e in ens]
    points = [r[0] for r in rows]
    front = pareto_front(points)
    roles = critical_points(points, front)
    if front:
        doc.p("Critical points (the frontier, fastest first):")
        doc.table(["model", "cell id", "time ms (median)", "p90", "AP", "role"],
                  [[rows[i][1], rows[i][2], _f(points[i][0]), _f(rows[i][3]),
                    _ap(points[i][1]), roles.get(i, "")] for i in front])
    if ens:
        doc.p("Ensembles are timed by `train ensemble` (section \"Ensemble and multicrop\" "
              "below): their times compare with the cells' only when both ran on one machine.")


def _size_section(doc, trained, log, fig):
    doc.h("AP by object size (paper Fig. 4)")
    doc.img(_draw(log, "fig4", figures.ap_by_size, trained, fig("fig4_ap_by_size.png")),
            "AP on small, medium and large objects", "no trained cells")
    if trained:
        doc.table(["model", "AP", "AP50", "small", "medium", "large", "AR100", "measured on"],
                  [[short_name(c["cell"])] + [_ap(c["ap"][k]) for k in
                   ("AP", "AP50", "AP_small", "AP_medium", "AP_large", "AR100")]
                   + [c.get("ap_data") or "—"] for c in trained])


def _proposals_section(doc, cells, log, fig):
    doc.h("AP and time vs number of proposals (paper Fig. 6)")
    doc.img(_draw(log, "fig6", figures.proposals, cells, fig("fig6_proposals.png")),
            "Faster R-CNN and R-FCN: AP (solid) and time (dotted) vs proposals",
            "no Faster R-CNN or R-FCN cells")
    two = sorted((c for c in cells if c["cell"]["num_proposals"] is not None),
                 key=lambda c: (c["cell"]["meta_architecture"], c["cell"]["extractor"],
                                c["cell"]["resolution"], str(c["cell"]["stride"]),
                                c["cell"]["num_proposals"]))
    if two:
        doc.table(["model", "proposals", "time ms", "AP"],
                  [[short_name(c["cell"]), c["cell"]["num_proposals"], _f(_time(c)),
                    _ap((c.get("ap") or {}).get("AP"))] for c in two])


def _edge_section(doc, cells, epoints, threads, log, fig):
    doc.h("The frontier on the edge axis (LiteRT)")
    panels, here = [], {}
    for c in cells:
        for q, e in (c.get("tflite") or {}).items():
            ap = c.get("ap" if q == "float32" else "ap_int8")
            t = e["invoke_ms"].get(str(threads))
            if ap and t:
                m = c["machine"]
                here.setdefault(f"this CPU: {m.get('cpu', '?')}, {threads} thread(s)", []).append(
                    ((t["median"], ap["AP"]), f"{short_name(c['cell'])} {q}", q))
    devices = {}
    for p in epoints:
        devices.setdefault(p["device"], []).append(p)
    for device, pts in devices.items():
        have = sorted({p["threads"] or 0 for p in pts})
        use = threads if threads in have else have[0]
        chosen = []
        for p in pts:
            ap = p["cell"].get("ap" if p["quant"] == "float32" else "ap_int8")
            if (p["threads"] or 0) == use and ap:
                chosen.append(((p["median"], ap["AP"]), f"{short_name(p['cell']['cell'])} "
                               f"{p['quant']}", p["quant"]))
        here[f"{device}, {use or 'default'} thread(s)"] = chosen
    colours = {"float32": "tab:blue", "int8": "tab:orange"}
    for title, pts in here.items():
        panels.append((title, [p[0] for p in pts], [p[1] for p in pts],
                       [colours[p[2]] for p in pts]))
    doc.img(_draw(log, "edge", figures.edge_frontier, panels, fig("edge_frontier.png")),
            "AP vs LiteRT invoke time: this CPU and each Pi/phone JSON, frontier dashed",
            "no trained cell with a TFLite time at this thread count")
    rows = []
    for c in cells:
        for q, e in sorted((c.get("tflite") or {}).items()):
            inv = ", ".join(f"{t} thr: {_f(v['median'], 2)}" for t, v in
                            sorted(e["invoke_ms"].items(), key=lambda kv: int(kv[0])))
            mine = {}
            for p in epoints:
                if p["cell"] is c and p["quant"] == q:
                    mine.setdefault(p["device"], []).append(
                        f"{p['threads'] or 'default'} thr: {_f(p['median'], 2)}")
            far = "; ".join(f"{d}: {', '.join(v)}" for d, v in mine.items())
            ap = c.get("ap" if q == "float32" else "ap_int8")
            rows.append([short_name(c["cell"]), q, e["file"], _f(e["size_bytes"] / 1e6, 2),
                         inv or "—", far or "—", _ap((ap or {}).get("AP"))])
    if rows:
        doc.table(["model", "quant", "file", "MB", "invoke ms, this CPU (median)",
                   "invoke ms, Pi/phone (median)", "AP"], rows)


def _budget_section(doc, cells, epoints):
    doc.h("By budget: the most accurate model within T ms")
    doc.p("What `python -m benchmarks pick --budget-ms T [--device JSON]` answers, for round "
          "budgets (1-2-5 per decade) from the last that nothing fits to the first that fits "
          "the most accurate model (past it the pick no longer changes). A model is a cell x "
          "quantization x LiteRT thread count with its own measured AP (untrained cells are "
          "left out); it fits when its invoke median is within the budget, at its fastest "
          "thread count that fits.")
    groups = {}
    for p in sweep_points(cells):
        groups.setdefault(f"this CPU (the sweep's own times): {p['device']}", []).append(p)
    for p in epoints:
        groups.setdefault(f"{p['device']}, from `{p['file']}`", []).append(p)
    for title, points in groups.items():
        found, _ = options(points, "AP")
        doc.p(f"**{title}**")
        if found:
            doc.table(BUDGET_HEADER, budget_rows(found))
        else:
            doc.p("*No trained model with a time on this device.*")


def _int8_section(doc, cells):
    doc.h("int8 AP drop per model")
    rows = [[short_name(c["cell"]), _ap(c["ap"]["AP"]), _ap(c["ap_int8"]["AP"]),
             f"{(c['ap_int8']['AP'] - c['ap']['AP']) * 100:+.1f}",
             f"{(c['ap_int8']['AP'] / c['ap']['AP'] - 1) * 100:+.1f}%" if c["ap"]["AP"] > 0
             else "—"] for c in cells if c.get("ap") and c.get("ap_int8")]
    if rows:
        doc.table(["model", "AP float", "AP int8", "change (AP points)", "relative"], rows)
    else:
        doc.p("*No cell has both a float and an int8 AP.*")


def _ensemble_section(doc, ens):
    doc.h("Ensemble and multicrop (paper Sec. 4.2)")
    if not ens:
        doc.p("*No ensemble: pass `--ensemble OUT/eval.json`, written by `python -m train "
              "ensemble ... --out OUT` (add `--score-members` for each member alone).*")
        return
    rows = []
    for e in ens:
        s = e["ensemble"]
        rows.append([label(e), ", ".join(m["name"] for m in s["members"]), s["combine"],
                     s["merge"], s["multicrop"], s["network_evaluations_per_image"],
                     _f(e["ms_per_image"]["median"]), _f(e["ms_per_image"]["p90"]),
                     _ap(e["AP"]), _ap(e["AP_small"]), _ap(e["AR_small"]), file_name(e)])
        for name, m in (s.get("members_alone") or {}).items():
            at = f" at {s['image_size']}" if s.get("image_size") else ""
            rows.append([f"{name} alone{at}", name, "—", "—", "none", 1,
                         _f(m["ms_per_image"]["median"]), _f(m["ms_per_image"]["p90"]),
                         _ap(m["AP"]), _ap(m["AP_small"]), _ap(m["AR_small"]), file_name(e)])
    doc.table(["model", "members", "combine", "merge", "multicrop", "network evals / image",
               "ms / image (median)", "p90", "AP", "AP_small", "AR_small", "file"], rows)
    where = "; ".join(sorted({f"{t.get('machine', '?')}, {t.get('cores', '?')} cores, batch "
                              f"{t.get('batch', '?')}" for t in
                              (e["ensemble"]["timing"] for e in ens)}))
    doc.p("Time is the whole procedure per image (every member on the image and on each crop, "
          f"then the merge), measured by `train ensemble` ({where}); each member alone is "
          "scored and timed on the same images by the same code.")


def _cells_table(doc, cells):
    doc.h("All measured cells")
    doc.table(["cell id", "config", "device", "params M", "GFLOPs", "time ms", "p90",
               "runs", "post-proc ms", "memory MB", "AP", "trained run"],
              [[c["cell"]["id"], c["cell"]["config"], c["device"], _f(c["params"] / 1e6, 2),
                _f(c["flops"] / 1e9, 2), _f(_time(c)), _f(c["tf_latency_ms"]["p90"]),
                c["tf_latency_ms"]["runs"],
                _f((c.get("postprocess_ms") or {}).get("median")), _f(c["peak_memory_mb"], 0),
                _ap((c.get("ap") or {}).get("AP")),
                (c.get("trained_run") or {}).get("path", "untrained")] for c in cells])


def _zoo_section(doc, zoo_file, log):
    doc.h("Published, Titan X, TF1 — not comparable with ours, not on our frontier")
    try:
        with open(zoo_file) as f:
            zoo = json.load(f)
        rows = [[m["name"], m["speed_ms"], "—" if m["coco_map"] is None else m["coco_map"],
                 m["outputs"]] for m in zoo["models"]]
        src = zoo["source"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.append((zoo_file, f"published table left out: {e}"))
        doc.p("*The published TF1 zoo table could not be read (see the log).*")
        return
    doc.p(f"{zoo['conditions']}. Source: {src['repo']} `{src['path']}` (commit "
          f"{src['commit'][:12]}), table \"{src['table']}\". {zoo['note']}.")
    doc.table(["model (TF1 zoo)", "speed ms (Titan X)", "COCO mAP", "outputs"], rows)
