#!/usr/bin/env python
"""The paper's ensemble table (Sec. 4.2, Tables 2-4) on our data: each candidate alone, a
hand-selected and a diverse (greedy, pruned) ensemble, each with and without multicrop.

    python benchmarks/ensemble.py --runs A,B,C,D,E,F --hand A,B,C --data data/shapes_large \
        --select-data data/shapes_holdout --num-proposals 50 --multicrop 2x2:0.6 \
        --out benchmarks/results/ensemble

Every row is ``python -m train ensemble`` (train/ensemble/evaluate.py) on the same images, in
this process, one after another, batch 1; its eval.json goes to ``OUT/ROW/``. A row whose
eval.json exists is read, not re-run: the script resumes where a stopped session left it.
The diverse ensemble is chosen on ``--select-data`` (held out: never trained on, never
reported); its multicrop row reuses that choice. Each ensemble row's eval.json gets the
candidates' own scores (``members_alone``) for ``benchmarks report``'s finding row.
Two more rows merge the diverse members' detections instead (``--combine detections``), by
per-class NMS and by weighted box fusion, to pick the default merge by measurement.
Writes OUT/ensemble.json and OUT/ensemble.md (the table).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402,F401  (legacy Keras before TensorFlow)
from edge_runtime.benchmark import machine_info  # noqa: E402
from edge_runtime.files import write_json, write_text  # noqa: E402

KEYS = ("AP", "AP50", "AP_small", "AR100", "AR_small", "ms_per_image")


def _name(run: str) -> str:
    return os.path.basename(os.path.normpath(run))


def _row(out: str, row: str, progress: bool, **kwargs) -> dict:
    from train.ensemble.evaluate import run_ensemble

    path = os.path.join(out, row, "eval.json")
    if os.path.isfile(path):
        print(f"{row}: kept {path}")
        with open(path) as f:
            return json.load(f)
    print(f"{row}: running")
    return run_ensemble(out=os.path.join(out, row), progress=progress, save_detections=False,
                        **kwargs)


def run(args) -> dict:
    runs = [r for r in args.runs.split(",") if r]
    hand = [r for r in args.hand.split(",") if r]
    if not set(hand) <= set(runs):
        raise SystemExit(f"error: --hand {args.hand}: every hand-selected run must be in --runs")
    common = dict(data=args.data, split=args.split, images=args.images, combine=args.combine,
                  merge_method=args.merge, num_proposals=args.num_proposals,
                  image_size=args.image_size)
    rows = {}
    for r in runs:
        rows[f"alone_{_name(r)}"] = _row(args.out, f"alone_{_name(r)}", not args.no_progress,
                                         runs=[r], **dict(common, combine="detections"))
    alone = {_name(r): {k: rows[f"alone_{_name(r)}"][k] for k in KEYS} for r in runs}
    rows["hand"] = _row(args.out, "hand", not args.no_progress, runs=hand, **common)
    rows["hand_multicrop"] = _row(args.out, "hand_multicrop", not args.no_progress, runs=hand,
                                  multicrop_spec=args.multicrop, **common)
    rows["diverse"] = _row(args.out, "diverse", not args.no_progress, runs=runs,
                           select="greedy", max_models=args.max_models,
                           similarity=args.similarity, select_data=args.select_data,
                           select_split=args.select_split, select_images=args.select_images,
                           **common)
    chosen = rows["diverse"]["ensemble"]["selection"]["chosen"]
    by_name = {_name(r): r for r in runs}
    rows["diverse_multicrop"] = _row(args.out, "diverse_multicrop", not args.no_progress,
                                     runs=[by_name[n] for n in chosen],
                                     multicrop_spec=args.multicrop, **common)
    rows["diverse_multicrop"]["ensemble"]["selection"] = rows["diverse"]["ensemble"]["selection"]
    for merge in ("nms", "wbf"):  # --combine detections two ways, on the same members
        rows[f"detections_{merge}"] = _row(args.out, f"detections_{merge}", not args.no_progress,
                                           runs=[by_name[n] for n in chosen],
                                           **dict(common, combine="detections",
                                                  merge_method=merge))
    ensembles = [k for k in rows if not k.startswith("alone_")]
    for row in ensembles:
        members = [m["name"] for m in rows[row]["ensemble"]["members"]]
        rows[row]["ensemble"]["members_alone"] = {n: alone[n] for n in members}
        write_json(os.path.join(args.out, row, "eval.json"), rows[row])
    summary = {"machine": machine_info(), "settings": {k: v for k, v in vars(args).items()},
               "rows": {k: {**{m: v[m] for m in KEYS},
                            "network_evaluations_per_image":
                                v["ensemble"]["network_evaluations_per_image"],
                            "members": [m["name"] for m in v["ensemble"]["members"]],
                            "multicrop": v["ensemble"]["multicrop"]}
                        for k, v in rows.items()},
               "selection": rows["diverse"]["ensemble"]["selection"]}
    write_json(os.path.join(args.out, "ensemble.json"), summary)
    write_text(os.path.join(args.out, "ensemble.md"), table(summary))
    print(table(summary))
    return summary


def _why(d: dict, similarity: float) -> str:
    """The decision's reason, its cosine to 6 decimals (the held-out cosines differ there)."""
    if d.get("max_similarity") is None:
        return d["reason"]
    if not d["chosen"]:
        return f"too similar to {d['closest']} (cosine {d['max_similarity']:.6f} > {similarity})"
    return (f"best held-out AP left; cosine to {d['closest']} {d['max_similarity']:.6f} <= "
            f"{similarity}")


def table(summary: dict) -> str:
    m, s = summary["machine"], summary["settings"]
    lines = [f"Ensembles on {s['data']} ({s['split']}, {s['images'] or 'all'} images) -- "
             f"{m['cpu']} ({m['cores']} cores); batch 1, time = the whole procedure per image "
             f"(median, p90); combine {s['combine']}, merge {s['merge'] or 'nms'}, proposals per member "
             f"{s['num_proposals'] or 'as configured'}, input resolution "
             f"{s.get('image_size') or 'as configured'}", "",
             "| row | members | evaluations / image | ms / image (p90) | AP | AP_small | "
             "AR_small |", "|---|---|---|---|---|---|---|"]
    for name, r in summary["rows"].items():
        ms = r["ms_per_image"]
        lines.append(f"| {name} | {', '.join(r['members'])} | "
                     f"{r['network_evaluations_per_image']} | {ms['median']:.0f} "
                     f"({ms['p90']:.0f}) | {r['AP']:.3f} | {r['AP_small']:.3f} | "
                     f"{r['AR_small']:.3f} |")
    best = max((r for k, r in summary["rows"].items() if k.startswith("alone_")),
               key=lambda r: r["AP"])
    top = summary["rows"]["diverse_multicrop"]
    lines += ["", f"Diverse ensemble + multicrop vs the best single member: "
              f"{100 * (top['AP'] - best['AP']):+.1f} AP points, AR_small "
              f"{best['AR_small']:.3f} -> {top['AR_small']:.3f}."]
    sel = summary.get("selection")
    if sel:
        lines += ["", f"Diverse: greedy on {sel['data']} ({sel['split']}, {sel['images']} "
                  f"images, never trained on nor reported), similarity {sel['similarity']}, "
                  f"at most {sel['max_models']} models:", "",
                  "| candidate | held-out AP | chosen | why |", "|---|---|---|---|"]
        lines += [f"| {d['name']} | {d['AP']:.4f} | {'yes' if d['chosen'] else 'no'} | "
                  f"{_why(d, sel['similarity'])} |" for d in sel["decisions"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", required=True, help="comma-separated candidate runs")
    p.add_argument("--hand", required=True, help="the hand-selected subset of --runs")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--images", type=int, help="only the first N images")
    p.add_argument("--select-data", required=True, help="held-out dataset for the selection")
    p.add_argument("--select-split", default="val")
    p.add_argument("--select-images", type=int)
    p.add_argument("--max-models", type=int, default=5)
    p.add_argument("--similarity", type=float, default=0.99)
    p.add_argument("--combine", default="proposals", choices=("proposals", "detections"))
    p.add_argument("--merge", choices=("nms", "wbf"), help="default: as `train ensemble`")
    p.add_argument("--num-proposals", type=int)
    p.add_argument("--image-size", type=int, help="every member's input resolution (default: "
                   "each config's)")
    p.add_argument("--multicrop", default="2x2:0.6")
    p.add_argument("--out", required=True)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        run(args)
    except ValueError as e:  # EnsembleError, MulticropError, DataError: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
