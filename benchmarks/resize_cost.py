#!/usr/bin/env python
"""What each of the detector's resize choices costs per camera frame, and whether it gives the
same pixels on every CPU (the reason edge_runtime's default is OpenCV's INTER_LINEAR_EXACT).

    python benchmarks/resize_cost.py [--threads 1,2] [--runs 500]

OpenCV's INTER_LINEAR uses SIMD fixed-point code whose rounding differs between x86 and ARM
(one pixel in six off by one: benchmarks/pi_check.py), INTER_LINEAR_EXACT is bit-exact
everywhere, INTER_AREA is what training uses. Times each on 640x480 and 1280x720 frames to the
300x300 SSD input, side by side in this one run, and writes ``resize_cost.json`` / ``.md``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FRAMES = [(480, 640), (720, 1280)]


def time_resize(cv2, image, size, flag, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        cv2.resize(image, size, interpolation=flag)
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        cv2.resize(image, size, interpolation=flag)
        ms.append((time.perf_counter() - t) * 1e3)
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", default="1,2", help="OpenCV threads (cv2.setNumThreads)")
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--size", type=int, default=300, help="the model input's side")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    import cv2

    from benchmarks.frames import dataset_frame
    from edge_runtime.benchmark import machine_info
    from edge_runtime.detector import Detector
    from edge_runtime.files import write_json, write_text

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        cv2.setNumThreads(threads)
        for h, w in FRAMES:
            frame = dataset_frame(h, w)
            for name, flag in Detector.INTERPOLATIONS.items():
                t = time_resize(cv2, frame, (args.size, args.size), flag, args.runs, args.warmup)
                rows.append({"threads": threads, "frame": f"{w}x{h}", "interpolation": name,
                             "median_ms": round(t["median"], 4), "p90_ms": round(t["p90"], 4)})
                print(f"threads {threads} {w}x{h} -> {args.size}: {name:13s} median "
                      f"{t['median']:.3f} ms, p90 {t['p90']:.3f} ms", flush=True)
    m = machine_info()
    report = {"machine": m, "opencv": cv2.__version__, "runs": args.runs,
              "warmup": args.warmup, "size": args.size, "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "resize_cost.json"), report, indent=1)
    md = [f"# Resize cost per frame ({m['cpu']}, {m['cores']} cores, {m['arch']}; OpenCV "
          f"{cv2.__version__}; {args.warmup} warm-up + {args.runs} timed resizes to "
          f"{args.size}x{args.size})", "",
          "| threads | frame | interpolation | median ms | p90 ms |", "|---|---|---|---|---|"]
    md += [f"| {r['threads']} | {r['frame']} | {r['interpolation']} | {r['median_ms']:.3f} | "
           f"{r['p90_ms']:.3f} |" for r in rows]
    write_text(os.path.join(args.out, "resize_cost.md"), "\n".join(md) + "\n")
    print(f"wrote {os.path.join(args.out, 'resize_cost.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
