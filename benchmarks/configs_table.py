#!/usr/bin/env python
"""Parameters and FLOPs of every bundled COCO config, beside the TF1 detection zoo's published
Titan X times (never mixed: theirs are GPU milliseconds of trained TF1 graphs, ours are counts).

    python benchmarks/configs_table.py --out benchmarks/results/configs    # -> .json and .md

Each config is described by ``python -m train describe`` in a fresh process (a failing config is
recorded and the table goes on). FLOPs: TensorFlow's profiler at batch 1 on the whole detect path
(see train/describe.py for what is counted).
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

# detection_model_zoo.md (TF1, "COCO-trained models"): ms per 600x600 image on a GTX TITAN X,
# including pre- and post-processing, and COCO mAP; lowproposals = 50 proposals.
TF1_ZOO = {
    "ssd_mobilenet_v1_coco": (30, 21), "ssd_inception_v2_coco": (42, 24),
    "ssdlite_mobilenet_v2_coco": (27, 22), "faster_rcnn_inception_v2_coco": (58, 28),
    "rfcn_resnet101_coco": (92, 30), "faster_rcnn_resnet101_coco": (106, 32),
    "faster_rcnn_inception_resnet_v2_atrous_coco": (620, 37),
}
TF1_LOWPROPOSALS = {"faster_rcnn_resnet101_coco": 82,
                    "faster_rcnn_inception_resnet_v2_atrous_coco": 241}


def describe(name: str, num_proposals: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "d.json")
        cmd = [sys.executable, "-m", "train", "describe", "--config", name, "--json", out]
        if num_proposals:
            cmd += ["--num-proposals", str(num_proposals)]
        r = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
        if r.returncode != 0:
            return {"config": name, "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
        with open(out) as f:
            return json.load(f)


def _row(name, d, zoo_ms):
    if "error" in d:
        return f"| {name} | error: {d['error']} | | | | |"
    h, w = d["input"]["shape"][1:3]
    props = f" @{d['num_proposals']} proposals" if d.get("num_proposals") else ""
    return (f"| {name}{props} | {d['parameters']['total'] / 1e6:.1f} M | "
            f"{d['flops']['total'] / 1e9:.1f} G | {h}x{w} | {zoo_ms or ''} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="path prefix: writes OUT.json and OUT.md")
    p.add_argument("--configs", help="comma-separated config names (default: every *_coco)")
    args = p.parse_args(argv)
    from tqdm import tqdm

    import train  # noqa: F401
    from edge_runtime.benchmark import machine_info
    from edge_runtime.files import write_json, write_text
    from train.config import bundled_configs
    names = (args.configs.split(",") if args.configs
             else sorted(n for n in bundled_configs() if n.endswith("_coco")))
    jobs = [(n, None) for n in names] + [(n, 50) for n in names if n in TF1_LOWPROPOSALS]
    rows = {}
    for name, props in tqdm(jobs, desc="describing configs", unit="config"):
        rows[f"{name}@{props}" if props else name] = describe(name, props)
    write_json(args.out + ".json", {"tool": "benchmarks/configs_table.py", "machine": machine_info(),
                                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                    "tf1_zoo_titan_x_ms_map": TF1_ZOO, "configs": rows}, indent=1)
    lines = ["# Parameters and FLOPs of the bundled COCO configs", "",
             "FLOPs: TensorFlow profiler, batch 1, whole detect path (multiply-add = 2). TF1 zoo: "
             "published GTX TITAN X ms per 600x600 image of the trained TF1 models "
             "(detection_model_zoo.md), for orientation only.", "",
             "| config | parameters | FLOPs | input | TF1 zoo ms (Titan X) |",
             "|---|---:|---:|---|---:|"]
    for key, d in rows.items():
        name, _, props = key.partition("@")
        zoo = TF1_LOWPROPOSALS.get(name) if props else TF1_ZOO.get(name, (None,))[0]
        lines.append(_row(name, d, zoo))
    write_text(args.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
