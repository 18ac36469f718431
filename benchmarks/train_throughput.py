#!/usr/bin/env python
"""Training images/s: one process against a local cluster of N workers, side by side.

    python benchmarks/train_throughput.py --config train/configs/ssd_mobilenet_v2_shapes.yaml \
        --data data/shapes_small [--workers 1,2] [--steps 60] [--log-every 5]

Each setting trains the same config (global batch, seed) for ``--steps`` steps in a fresh
folder: ``python -m train fit`` for 1 worker, ``python -m train launch --workers N`` otherwise
(MultiWorkerMirroredStrategy over 127.0.0.1). Throughput is read from the chief's
``train_log.json``: global images/s of each ``--log-every`` window; the first window (graph
tracing, the cluster's first all-reduce) is the warm-up and is left out. On one machine the
workers share its cores, so N workers are not expected to be faster: this measures what the
cluster costs, not what it gains. Writes ``train_throughput.json`` / ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def measure(config: str, data: str, workers: int, steps: int, log_every: int, tmp: str,
            batch_size: int | None) -> dict:
    """Trains ``steps`` steps with ``workers`` local workers in a folder under ``tmp``;
    -> the figures."""
    import numpy as np
    import yaml

    from train.config import load_config

    resolved = load_config(config)
    resolved.train.steps, resolved.train.log_every = steps, log_every
    if batch_size:
        resolved.train.batch_size = batch_size
    out = os.path.join(tmp, f"w{workers}")
    path = os.path.join(tmp, f"config_w{workers}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(resolved.to_dict(), f)
    command = ["fit"] if workers == 1 else ["launch", "--workers", str(workers)]
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "train", *command, "--config", path, "--data",
                        data, "--out", out, "--no-progress"], cwd=ROOT, text=True,
                       capture_output=True)
    if r.returncode:
        raise SystemExit(f"error: {workers} worker(s) failed (exit {r.returncode}):\n"
                         f"{r.stderr[-3000:]}")
    with open(os.path.join(out, "train_log.json")) as f:
        log = json.load(f)
    windows = [h["images_per_second"] for h in log["history"]][1:]
    return {"workers": workers, "replicas": log["replicas"], "batch_size": log["batch_size"],
            "steps": log["steps"], "log_every": log_every, "warmup_windows": 1,
            "windows": len(windows),
            "median_images_per_second": float(np.median(windows)),
            "p90_images_per_second": float(np.percentile(windows, 90)),
            "p10_images_per_second": float(np.percentile(windows, 10)),
            "overall_images_per_second": log["images_per_second"],
            "command_seconds": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (1,2)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--log-every", type=int, default=5, help="steps per throughput window")
    p.add_argument("--batch-size", type=int, help="override train.batch_size (global)")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    if args.steps < 3 * args.log_every:
        p.error("--steps must give at least 3 windows of --log-every steps")
    for path in (args.config, args.data):
        if not os.path.exists(path):
            p.error(f"{path} does not exist")

    from edge_runtime.benchmark import machine_info
    from edge_runtime.files import write_json, write_text

    rows = []
    with tempfile.TemporaryDirectory(prefix="frontier-throughput-") as tmp:
        for n in counts:
            print(f"training {args.steps} steps with {n} worker(s) ...", flush=True)
            rows.append(measure(args.config, args.data, n, args.steps, args.log_every, tmp,
                                args.batch_size))
            print(f"  {rows[-1]['median_images_per_second']:.1f} images/s (median window)")
    doc = {"config": args.config, "data": args.data, "machine": machine_info(),
           "threads": "TensorFlow default (all cores, per worker process)", "results": rows}
    lines = [f"# Training throughput: {os.path.basename(args.config)}", "",
             f"Machine: {doc['machine']}. Threads: {doc['threads']}. Global batch "
             f"{rows[0]['batch_size']}, {args.steps} steps, windows of {args.log_every} steps, "
             "the first left out as warm-up.", "",
             "| workers | replicas | median img/s | p90 | p10 | whole run img/s | command s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['replicas']} | {r['median_images_per_second']:.1f} "
                     f"| {r['p90_images_per_second']:.1f} | {r['p10_images_per_second']:.1f} | "
                     f"{r['overall_images_per_second']:.1f} | {r['command_seconds']} |")
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "train_throughput_" + os.path.splitext(
        os.path.basename(args.config))[0])
    write_json(stem + ".json", doc)
    write_text(stem + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
