"""``python -m benchmarks <command>``: the paper's grid as commands.

    python -m benchmarks sweep --grid {quick,mobile,paper,FILE.yaml} --out DIR [--runs RUN ...]
                               [--shard I/N | --shard-count N]
    python -m benchmarks report --results DIR [--results DIR ...] --out DIR [--edge PI.json ...]
                                [--threads 1] [--ensemble EVAL_JSON ...]
    python -m benchmarks pick --budget-ms T [--results DIR] [--device JSON]
                              [--scores EVAL_JSON ...] [--metric AP] [--json OUT]

Each command is one ``add_<name>(subparsers)`` function that registers its parser and sets
``func``; a new command (e.g. ``sweep``) is one more such function and one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_report(sub):
    p = sub.add_parser("report", help="tables, figures and frontier from a sweep's results",
                       description="Reads a folder of sweep cell JSON files (schema: "
                       "benchmarks/results_schema.py) and writes report.md, a self-contained "
                       "index.html and the PNGs. Bad files are skipped and listed in the "
                       "report's log.")
    p.add_argument("--results", required=True, action="append", metavar="DIR",
                   help="folder of cell JSON files (and any edge_runtime benchmark JSON from a "
                   "Pi/phone); repeatable: the folders of a sharded sweep are merged, a cell in "
                   "two of them is read once if the files are identical, else the newer one "
                   "(its \"date\") is kept and the other listed in the log")
    p.add_argument("--out", required=True, help="folder for report.md, index.html, *.png")
    p.add_argument("--edge", action="append", default=[], metavar="JSON",
                   help="an `edge_runtime benchmark --json` file from a Pi/phone (repeatable)")
    p.add_argument("--threads", type=int, default=1,
                   help="LiteRT thread count drawn on the edge frontier (default 1)")
    p.add_argument("--ensemble", action="append", default=[], metavar="EVAL_JSON",
                   help="an eval.json written by `python -m train ensemble` (repeatable): a "
                   "point on the AP-vs-time frontier and a row of the ensemble section")
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    from benchmarks.report import build_report
    result = build_report(args.results, args.out, args.edge, args.threads,
                          ensembles=args.ensemble)
    for path, message in result["problems"]:
        print(f"{path}: {message}", file=sys.stderr)
    print(f"{len(result['cells'])} cell(s), {len(result['ensembles'])} ensemble(s), "
          f"{len(result['problems'])} problem(s); report: "
          f"{os.path.join(args.out, 'report.md')} and {os.path.join(args.out, 'index.html')}")
    return 0


def add_sweep(sub):
    p = sub.add_parser("sweep", help="measure every cell of a grid (one process per cell)",
                       description="Measures each cell of the grid in its own process and "
                       "writes DIR/<cell id>.json (schema: benchmarks/results_schema.py); a "
                       "rerun skips finished cells. See benchmarks/sweep.py.")
    p.add_argument("--grid", required=True, help="quick, mobile, paper (benchmarks/grids.py) "
                   "or a grid YAML file")
    p.add_argument("--out", required=True, help="results folder (cell JSON, models/, logs/)")
    p.add_argument("--runs", nargs="*", default=[], metavar="RUN",
                   help="trained run folders (e.g. runs/*): a cell of the same architecture "
                   "is measured from the run and gets its COCO AP")
    p.add_argument("--zoo", action="store_true", help="the zoo's trained models (train/zoo) "
                   "as --runs")
    p.add_argument("--data", help="where trained runs are scored (val split); default: the "
                   "data their eval.json names, if it is here")
    p.add_argument("--only", nargs="*", metavar="CELL_ID", help="only these cells of the grid")
    p.add_argument("--skip-failed", action="store_true", help="do not retry failed cells")
    p.add_argument("--threads", help="LiteRT thread counts, comma-separated (default: the "
                   "grid's, e.g. 1,2; 4 on a Pi)")
    p.add_argument("--timeout", type=int, help="seconds per cell (default: the grid's)")
    p.add_argument("--shard", metavar="I/N", help="measure only shard I of N (I counts from "
                   "0: 0/3, 1/3, 2/3), a deterministic share of the cells balanced by their "
                   "estimated cost (benchmarks/shards.py); N machines run one shard each into "
                   "one --out folder, or into their own folders that `report --results` merges")
    p.add_argument("--shard-count", metavar="N", help="N shards, this one's index "
                   "from the job engine: JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or "
                   "SLURM_ARRAY_TASK_ID (Slurm array numbered from 0: --array=0-<N-1>); an "
                   "engine index that disagrees with --shard is an error")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_sweep)


def run_sweep(args) -> int:
    import train  # noqa: F401  (TensorFlow's environment for the cells' processes)
    from benchmarks.grids import GridError
    from benchmarks.shards import resolve
    from benchmarks.sweep import sweep
    overrides = {}
    if args.threads:
        overrides["threads"] = [int(t) for t in args.threads.split(",")]
    if args.timeout:
        overrides["timeout_s"] = args.timeout
    try:
        shard = resolve(args.shard, args.shard_count)
        done = sweep(args.grid, args.out, args.runs, args.zoo, args.data, args.skip_failed,
                     overrides, progress=not args.no_progress, only=args.only, shard=shard)
    except (GridError, ValueError) as e:  # ShardError too
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    print((f"shard {shard[0]}/{shard[1]}: " if shard else "")
          + f"{len(done['ok'])} cell(s) measured, {len(done['failed'])} failed, "
          f"{len(done['skipped'])} already done -> {args.out}")
    for cid in done["failed"]:
        print(f"  failed: {cid} (see {os.path.join(args.out, cid + '.json')})")
    return 0


SWEEP = "benchmarks/results/sweep_mobile"  # pick's default --results, without --scores


def add_pick(sub):
    from benchmarks.results_schema import AP_KEYS
    p = sub.add_parser("pick", help="the most accurate model within a latency budget",
                       description="On one device, the most accurate model of a sweep whose "
                       "median LiteRT invoke time (the interpreter with its NMS op, batch 1) is "
                       "within --budget-ms, then the runners-up by accuracy with what each "
                       "costs; when none fits, the fastest and by how much it misses. A model "
                       "is a cell x quantization (float32: the cell's AP, int8: its ap_int8) x "
                       "thread count, as measured; untrained cells (no AP) are skipped and "
                       "counted. Models of the device file that are no cell's (e.g. the demo's "
                       "model_int8.tflite) compete when --scores gives their COCO metrics. "
                       "Only files are read, nothing is re-run. Exit 0: a pick; 1: nothing "
                       "fits; 2: bad input (one line naming the value or file).")
    p.add_argument("--budget-ms", required=True, metavar="T",
                   help="latency budget in milliseconds (> 0), held against the median")
    p.add_argument("--results", help=f"folder of sweep cell JSON files (default: {SWEEP}, "
                   "or none when --scores is given); edge JSON files in it are not read, give "
                   "the device with --device")
    p.add_argument("--device", metavar="JSON",
                   help="an `edge_runtime benchmark --json` file from the phone, the Pi or "
                   "this machine, its models matched to the cells by file name; default: "
                   "the cells' own LiteRT times on the machine that swept them")
    p.add_argument("--scores", nargs="+", action="extend", default=[], metavar="EVAL_JSON",
                   help="`edge_runtime evaluate --json` files (several, or repeated): the "
                   "COCO metrics of device-file models that are no sweep cell's, matched to "
                   "its results by .tflite path, else file name; needs --device, and uses a "
                   "sweep only when --results is given")
    p.add_argument("--metric", default="AP", choices=AP_KEYS,
                   help="COCO metric to maximise, of the file that runs (default AP)")
    p.add_argument("--json", metavar="OUT", help="also write the answer as JSON (atomically)")
    p.set_defaults(func=run_pick)


def run_pick(args) -> int:
    from benchmarks import pick
    from benchmarks.results_schema import load_results
    from edge_runtime.files import write_json
    results = args.results or (None if args.scores else SWEEP)
    try:
        budget = pick.parse_budget(args.budget_ms)
        if args.scores and not args.device:
            raise pick.PickError("--scores needs --device: the scored files are timed only in "
                                 "an `edge_runtime benchmark --json` file (the demo's: "
                                 "runs/demo/edge_benchmark.json)")
        scores = pick.load_scores(args.scores)
        cells = []
        if results:
            loaded = load_results(results)
            if not loaded.cells:
                why = "; ".join(m for _, m in loaded.problems[:1]) or "no cell JSON files"
                raise pick.PickError(f"--results {results}: no valid sweep cell ({why})")
            for path, message in loaded.problems:
                print(f"warning: {path}: {message}", file=sys.stderr)
            cells = loaded.cells
        inputs = " and ".join(x for x in (results, scores and f"{len(scores)} score file(s)")
                              if x)
        if args.device:
            points, warnings = pick.load_device(args.device, cells, scores)
            source = f"{args.device} on {inputs}"
        else:
            points, warnings = pick.sweep_points(cells), []
            source = f"the cells' own times, {results}"
        for message in warnings:
            print(f"warning: {args.device}: {message}", file=sys.stderr)
        found, skipped = pick.options(points, args.metric)
        if not found:
            raise pick.PickError(f"{args.device or results}: no model with a measured "
                                 f"{args.metric} ({len(skipped)} skipped: untrained or unscored)")
    except pick.PickError as e:
        print(f"pick: {e}", file=sys.stderr)
        return 2
    ans = pick.answer(found, budget)
    print(pick.format_answer(ans, args.metric, source))
    timed = {p["cell"]["cell"]["id"] for p in points if p.get("cell") and not p.get("scored")}
    untimed = len({c["cell"]["id"] for c in cells} - timed) if args.device else 0
    print(pick.summary(found, skipped, args.metric, with_cells=bool(results), untimed=untimed))
    if args.json:
        write_json(args.json, dict(ans, tool="benchmarks pick", metric=args.metric,
                                   results=results, device_file=args.device,
                                   scores=[s["file"] for s in scores], skipped=skipped))
    return 0 if ans["pick"] else pick.NOTHING_FITS


COMMANDS = [add_sweep, add_report, add_pick]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="The paper's grid: sweep results -> report.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
