#!/usr/bin/env python
"""A Faster R-CNN / R-FCN run on the edge: exports, COCO AP of the .tflite files, LiteRT vs
TensorFlow latency by number of proposals (issue 12; the paper's Fig. 6 on the edge).

    python benchmarks/two_stage_edge.py --run train/zoo/faster_rcnn_mobilenet_v2_shapes \
        --data data/shapes_large --proposals 300,50,20 --out runs/edge_frcnn

For each proposal count N: float32 and int8 exports (convert/export_tflite.py: built-in ops and
the fused NMS op only; the float32 export of the first N is checked against TensorFlow on the
whole ``--check-split``, the others on 8 images), and with ``--qat-steps`` a QAT export at the
first N. COCO AP of each mode (edge_runtime evaluate on ``--split``) at the first N
(``--ap-all``: at every N). Then, in this one process
and side by side: ``edge_runtime benchmark`` medians at each ``--threads`` and TensorFlow's
batch-1 latency (benchmarks/tf_latency.py, all of TensorFlow's threads) of the same run and
N, and their ratio. Writes ``two_stage_edge.json`` and ``two_stage_edge.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODES = ("float32", "int8", "qat")


def export_all(run, data, proposals, out, check_split="val", calibration_images=200,
               granularity="per-tensor", qat_steps=0):
    """-> {(mode, n): (path, metadata)}; nothing is re-exported if the file exists. QAT
    (``qat_steps`` > 0) at the first N only: it fine-tunes, the others only convert."""
    from convert import export_tflite, sources

    models = {}
    for i, n in enumerate(proposals):
        source = sources.from_run(run, num_proposals=n)
        for mode in MODES:
            if mode == "qat" and (i or qat_steps <= 0):
                continue
            path = os.path.join(out, f"model_{mode}_{n}.tflite")
            if not os.path.exists(path):
                full = i == 0 and mode == "float32"
                print(f"exporting {mode} with {n} proposals"
                      f"{' (checked on the whole ' + check_split + ' split)' if full else ''}",
                      flush=True)
                export_tflite.export_tflite(
                    source, path, mode, data=data, calibration_images=calibration_images,
                    num_check_images=None if full else 8, check_split=check_split,
                    granularity=granularity, qat_steps=qat_steps, progress=False)
            with open(os.path.splitext(path)[0] + ".json") as f:
                models[mode, n] = (path, json.load(f))
    return models


def measure(run, data, proposals, out, split="val", threads=(1, 2), runs=100, warmup=10,
            ap_all=False, check_split="val", granularity="per-tensor", qat_steps=0) -> dict:
    from benchmarks.tf_latency import tf_benchmark
    from edge_runtime.benchmark import benchmark_model, machine_info
    from edge_runtime.evaluate import evaluate

    os.makedirs(out, exist_ok=True)
    models = export_all(run, data, proposals, out, check_split, granularity=granularity,
                        qat_steps=qat_steps)
    rows = []
    for (mode, n), (path, meta) in models.items():
        row = {"mode": mode, "num_proposals": n, "model": os.path.basename(path),
               "bytes": os.path.getsize(path), "check": meta["check"]}
        if ap_all or n == proposals[0]:
            print(f"COCO AP of {row['model']} on {split}", flush=True)
            metrics = evaluate(path, data, split, progress=False)
            row["coco"] = {k: metrics[k] for k in ("AP", "AP50", "AP75", "AP_small",
                                                  "AP_medium", "AP_large")}
        row["edge"] = {}
        for t in threads:
            print(f"timing {row['model']} with {t} thread(s)", flush=True)
            r = benchmark_model(path, t, runs, warmup)
            row["edge"][str(t)] = {"invoke": r["stages_ms"]["invoke"],
                                   "end_to_end": r["stages_ms"]["end_to_end"],
                                   "runtime": r["runtime"]}
        rows.append(row)
    print("timing TensorFlow (batch 1)", flush=True)
    tf_report = tf_benchmark(run, runs=runs, warmup=warmup, num_proposals=list(proposals))
    tf_by_n = {r["num_proposals"]: r["stages_ms"] for r in tf_report["results"]}
    for row in rows:
        row["tensorflow"] = tf_by_n[row["num_proposals"]]
        for t, edge in row["edge"].items():
            edge["edge_over_tensorflow"] = (edge["invoke"]["median"]
                                            / row["tensorflow"]["invoke"]["median"])
    return {"tool": "benchmarks/two_stage_edge.py", "run": os.path.abspath(run),
            "machine": machine_info(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "threads": list(threads), "runs": runs, "warmup": warmup, "split": split,
            "granularity": granularity, "qat_steps": qat_steps,
            "tensorflow_threads": "TensorFlow default (all cores)", "rows": rows}


def format_table(report: dict) -> str:
    m = report["machine"]
    lines = [f"Two-stage on the edge: {report['run']}",
             f"Machine: {m['cpu']} ({m['cores']} cores, {m['arch']}); {report['warmup']} "
             f"warm-up + {report['runs']} timed frames; LiteRT invoke median (p90) ms at "
             f"{', '.join(map(str, report['threads']))} thread(s); TensorFlow batch 1 "
             f"(all threads); AP on {report['split']}; int8 weights "
             f"{report.get('granularity', 'per-channel')}.", "",
             "| mode | proposals | MB | AP | AP50 | AP_small | "
             + " | ".join(f"LiteRT {t}T" for t in report["threads"])
             + " | TF | LiteRT/TF (1T) | float32 parity |",
             "|" + "---|" * (8 + len(report["threads"]))]
    for r in report["rows"]:
        coco = r.get("coco") or {}
        ap = lambda k: f"{coco[k]:.3f}" if k in coco else "-"  # noqa: E731
        edge = [f"{r['edge'][str(t)]['invoke']['median']:.1f} "
                f"({r['edge'][str(t)]['invoke']['p90']:.1f})" for t in report["threads"]]
        c = r["check"]
        parity = (f"{c['images']} images, identical={c['identical']}"
                  if r["mode"] == "float32" else f"{c['paired']} paired, min IoU "
                  f"{c['min_iou'] if c['min_iou'] is None else round(c['min_iou'], 3)}")
        first = str(report["threads"][0])
        lines.append(f"| {r['mode']} | {r['num_proposals']} | {r['bytes'] / 1e6:.2f} | "
                     f"{ap('AP')} | {ap('AP50')} | {ap('AP_small')} | {' | '.join(edge)} | "
                     f"{r['tensorflow']['invoke']['median']:.1f} | "
                     f"{r['edge'][first]['edge_over_tensorflow']:.2f} | {parity} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, help="a Faster R-CNN or R-FCN run or zoo directory")
    p.add_argument("--data", required=True, help="COCO dataset (calibration, check, AP)")
    p.add_argument("--proposals", default="300,50,20")
    p.add_argument("--split", default="val")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--ap-all", action="store_true", help="AP at every proposal count")
    p.add_argument("--granularity", default="per-tensor", choices=("per-tensor", "per-channel"),
                   help="int8 weight scales (per-tensor: the smaller file)")
    p.add_argument("--qat-steps", type=int, default=0,
                   help="> 0: also a QAT export (at the first proposal count), fine-tuned so long")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from convert.sources import ExportError
    from edge_runtime.files import write_json, write_text

    try:
        proposals = [int(v) for v in args.proposals.split(",")]
        threads = tuple(int(v) for v in args.threads.split(","))
    except ValueError:
        print("error: --proposals and --threads are comma-separated integers", file=sys.stderr)
        return 2
    try:
        report = measure(args.run, args.data, proposals, args.out, args.split, threads,
                         args.runs, args.warmup, args.ap_all, granularity=args.granularity,
                         qat_steps=args.qat_steps)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json(os.path.join(args.out, "two_stage_edge.json"), report)
    table = format_table(report)
    write_text(os.path.join(args.out, "two_stage_edge.md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
