#!/usr/bin/env python
"""SSD's post-processing, every way the converter can build it, side by side (issue 23).

    python benchmarks/ssd_nms.py --run train/zoo/ssd_mobilenet_v2_shapes \
        --data data/shapes_large --out benchmarks/results

Each ``--nms`` graph of convert/ (postprocess_op.GRAPHS), exported by convert.export_tflite in
float32 and int8 (per-tensor, as ``make demo``; the built-in graphs keep their geometry float):

* ``fused``: ``TFLite_Detection_PostProcess``, per-class ("regular") NMS;
* ``fused_fast``: the same op's class-agnostic fast NMS (``--fast-nms``; not what TF does);
* ``per_class``: one NON_MAX_SUPPRESSION_V4 per class + TOPK_V2 (the two-stage exports' graph);
* ``batched``: one NON_MAX_SUPPRESSION_V4 over all classes, each class's boxes offset so that
  classes never overlap (torchvision's ``batched_nms``); ``batched_v5``: the same with V5;
* ``none``: ``--no-postprocess`` (raw outputs), timed only: invoke minus its invoke is what
  the post-processing costs.

Reported per graph and mode: LiteRT invoke median / p90 at each ``--threads`` (all the models
and thread counts timed interleaved in this one process, in a shuffled order per round, on
``--time-images`` val images in turn, after ``--warmup`` untimed rounds); COCO AP of
``edge_runtime evaluate`` on the first ``--images`` val images at each thread count; the
detections per class at each thread count and whether they are identical to 1 thread's; the
converter's own TFLite-vs-TensorFlow check on ``--check-images`` val images (TensorFlow's NMS
is per class; float32 per-class graphs must be identical or the export fails). Writes
``ssd_nms.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRAPHS = {"fused": dict(nms="fused"), "fused_fast": dict(nms="fused", use_regular_nms=False),
          "per_class": dict(nms="per_class"), "batched": dict(nms="batched"),
          "batched_v5": dict(nms="batched_v5")}
NMS_OPS = ("TFLite_Detection_PostProcess", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
           "TOPK_V2")


def export_all(args, work: str) -> dict:
    """{(mode, graph): (path, sidecar)} for every mode and graph, plus ``none`` (raw)."""
    from convert import sources
    from convert.export_tflite import export_tflite

    out = {}
    for graph, kwargs in [*GRAPHS.items(), ("none", {})]:
        source = sources.from_run(args.run, **kwargs)
        for mode in args.modes:
            path = os.path.join(work, f"{mode}_{graph}.tflite")
            print(f"exporting {mode} / {graph}", flush=True)
            meta = export_tflite(source, path, mode, data=args.data,
                                 calibration_images=args.calibration_images,
                                 num_check_images=args.check_images, postprocess=graph != "none",
                                 granularity="per-tensor", progress=False)
            out[(mode, graph)] = (path, meta)
    return out


def time_all(models: dict, threads, images, runs: int, warmup: int) -> dict:
    """Invoke ms of every (mode, graph) at every thread count, interleaved: each round runs
    every interpreter once, in a shuffled order, on the round's image."""
    import numpy as np

    from edge_runtime import Detector
    from edge_runtime.benchmark import summarize

    dets, inputs = {}, {}
    for key, (path, _) in models.items():
        for t in threads:
            d = Detector(path, num_threads=t)
            dets[key + (t,)] = d
            inputs[key + (t,)] = [d.to_input(im) for im in images]
    ms = collections.defaultdict(list)
    rng = np.random.default_rng(0)
    keys = list(dets)
    clock = time.perf_counter
    for r in range(warmup + runs):
        for i in rng.permutation(len(keys)):
            key = keys[i]
            x = inputs[key][r % len(images)]
            t0 = clock()
            dets[key].invoke(x)
            if r >= warmup:
                ms[key].append((clock() - t0) * 1e3)
    return {key: summarize(v) for key, v in ms.items()}


def accuracy(path: str, data: str, threads, images: int, labels) -> dict:
    """AP, detections per class and identity with 1 thread's, at each thread count."""
    from edge_runtime.evaluate import evaluate

    out, found = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in threads:
            dets = os.path.join(tmp, f"{t}.json")
            report = evaluate(path, data, num_threads=t, max_images=images, progress=False,
                              detections_path=dets)
            found[t] = json.load(open(dets))
            per_class = collections.Counter(d["category_id"] for d in found[t])
            out[str(t)] = {"AP": report["AP"], "AP50": report["AP50"],
                           "num_images": report["num_images"],
                           "detections": len(found[t]),
                           "per_class": [per_class[c] for c in labels["category_ids"]],
                           "identical_to_1_thread": found[t] == found[threads[0]]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, help="an SSD training run (e.g. the zoo's)")
    p.add_argument("--data", required=True, help="calibration (train) and val images")
    p.add_argument("--modes", default="float32,int8")
    p.add_argument("--threads", default="1,2,4")
    p.add_argument("--images", type=int, default=100, help="val images for AP and counts")
    p.add_argument("--check-images", type=int, default=100,
                   help="val images of the converter's TFLite-vs-TensorFlow check")
    p.add_argument("--calibration-images", type=int, default=200)
    p.add_argument("--time-images", type=int, default=10)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    args.modes = args.modes.split(",")
    threads = [int(t) for t in args.threads.split(",")]

    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from convert import sources
    from convert.export_tflite import check_images
    from edge_runtime.benchmark import machine_info
    from edge_runtime.files import write_json, write_text
    from edge_runtime.interpreter import make_interpreter, op_names

    t_start = time.time()
    work = tempfile.mkdtemp(prefix="ssd_nms_")
    models = export_all(args, work)
    source = sources.from_run(args.run)
    labels = source.labels
    print("timing", flush=True)
    timing = time_all(models, threads, check_images(args.data, "val", args.time_images,
                                                    source.resizer), args.runs, args.warmup)
    rows = []
    for (mode, graph), (path, meta) in models.items():
        ops = op_names(make_interpreter(path, use_xnnpack=False)[0])
        row = {"mode": mode, "graph": graph, "bytes": os.path.getsize(path),
               "operators": len(ops), "nms_ops": sorted({o for o in ops if o in NMS_OPS}),
               "postprocess": meta["postprocess"],
               "invoke_ms": {str(t): timing[(mode, graph, t)] for t in threads}}
        if graph != "none":
            print(f"scoring {mode} / {graph}", flush=True)
            row["check"] = meta["check"]
            row["accuracy"] = accuracy(path, args.data, threads, args.images, labels)
        rows.append(row)
    m = machine_info()
    report = {"tool": "benchmarks/ssd_nms.py", "run": os.path.abspath(args.run),
              "data": os.path.abspath(args.data), "anchors": len(source.anchors),
              "nms": source.nms.as_dict(), "labels": labels["category_names"], "machine": m,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": threads,
              "runs": args.runs, "warmup": args.warmup, "time_images": args.time_images,
              "images": args.images, "check_images": args.check_images,
              "seconds": round(time.time() - t_start), "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "ssd_nms.json"), report, indent=1)
    md = markdown(report)
    write_text(os.path.join(args.out, "ssd_nms.md"), md)
    print(md)
    return 0


def markdown(r: dict) -> str:
    m, threads = r["machine"], r["threads"]
    head = " | ".join(f"{t} thr" for t in threads)
    lines = [
        f"# SSD post-processing graphs, {os.path.basename(r['run'])} ({r['anchors']} anchors, "
        f"{len(r['labels'])} classes)", "",
        f"Machine: {m['cpu']} ({m['cores']} cores), {m['os']}; {r['date']}. LiteRT invoke in "
        f"ms, median (p90): {r['warmup']} warm-up + {r['runs']} timed rounds, every model and "
        f"thread count interleaved in one process, on {r['time_images']} val images in turn. "
        f"`post` = median minus `none`'s (raw outputs) at the same threads. AP: edge_runtime "
        f"evaluate on the first {r['images']} val images of {os.path.basename(r['data'])}. "
        f"Detections per class ({', '.join(r['labels'])}); 'same' = identical to 1 thread's. "
        f"TF: the converter's check on {r['check_images']} val images.", ""]
    for mode in dict.fromkeys(row["mode"] for row in r["rows"]):
        rows = [row for row in r["rows"] if row["mode"] == mode]
        none = next(row for row in rows if row["graph"] == "none")["invoke_ms"]
        lines += [f"## {mode}", "",
                  f"| graph | NMS ops | ops | invoke {head} | post {head} |",
                  "|---|---|---|" + "---|" * (2 * len(threads))]
        for row in rows:
            inv = row["invoke_ms"]
            lines.append(
                f"| {row['graph']} | {', '.join(row['nms_ops']) or '-'} | {row['operators']} | "
                + " | ".join(f"{inv[str(t)]['median']:.2f} ({inv[str(t)]['p90']:.2f})"
                             for t in threads) + " | "
                + " | ".join(f"{inv[str(t)]['median'] - none[str(t)]['median']:+.2f}"
                             for t in threads) + " |")
        lines += ["", f"| graph | AP {head} | detections per class, {head} | vs TensorFlow |",
                  "|---|" + "---|" * (2 * len(threads)) + "---|"]
        for row in rows:
            if row["graph"] == "none":
                continue
            acc, c = row["accuracy"], row["check"]
            counts = [" ".join(map(str, acc[str(t)]["per_class"])) if t == threads[0]
                      or not acc[str(t)]["identical_to_1_thread"] else "same" for t in threads]
            tf = (f"{'identical' if c['identical'] else 'differs'}: {c['paired']} paired, "
                  f"{c['unpaired_not_borderline']} unpaired (not ties), max score diff "
                  f"{c['max_score_diff'] or 0:.2g}")
            lines.append(f"| {row['graph']} | "
                         + " | ".join(f"{acc[str(t)]['AP']:.4f}" for t in threads) + " | "
                         + " | ".join(counts) + f" | {tf} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
