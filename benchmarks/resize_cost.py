#!/usr/bin/env python
"""What each of the detector's resizers (edge_runtime/resize.py) costs per camera frame, whether
it gives the integer reference's pixels (the same on every CPU), and what the rest of a frame's
pre/post-processing costs around the interpreter.

    python benchmarks/resize_cost.py [--threads 1,2] [--runs 500] [--sizes 256,300]
                                     [--model tests/assets/shapes_ssd_mobilenet_v2_int8.tflite]

Part 1 resizes 640x480 and 1280x720 frames to each input size with every resizer, side by side:
each timed round runs all of them once, in an order rotated every round, after ``--warmup``
untimed rounds; ``--threads`` are OpenCV's (``cv2.setNumThreads``). It also times the float32
models' input conversion (``Detector.to_input``) and counts the values each resizer puts off
its integer reference (:func:`edge_runtime.resize.bilinear_reference`, INTER_LINEAR_EXACT's
arithmetic, for the bilinear ones; ``nearest_reference`` for nearest; none for area).
Part 2 (``--model``) runs one frame through the detector at interpreter thread 1 with each
resizer, rotated the same way: preprocess, invoke, outputs + parse, end to end, and the
end-to-end / invoke ratio of the medians. Writes ``resize_cost.json`` / ``.md`` with the
machine, OpenCV version and thread counts.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FRAMES = [(480, 640), (720, 1280)]
DEFAULT_MODEL = "tests/assets/shapes_ssd_mobilenet_v2_int8.tflite"


def stats(ms) -> dict:
    return {"median_ms": round(float(np.median(ms)), 4),
            "p90_ms": round(float(np.percentile(ms, 90)), 4)}


def interleaved(jobs: dict, runs: int, warmup: int) -> dict:
    """{name: fn()} -> {name: [ms per call]}: every round calls each job once, in an order
    rotated by one each round (no job always runs first, after the same neighbour)."""
    names = list(jobs)
    ms = {n: [] for n in names}
    for r in range(warmup + runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t = time.perf_counter()
            jobs[name]()
            if r >= warmup:
                ms[name].append((time.perf_counter() - t) * 1e3)
    return ms


def resize_rows(cv2, threads, sizes, runs, warmup) -> list[dict]:
    from benchmarks.frames import dataset_frame
    from edge_runtime.resize import RESIZERS, bilinear_reference, nearest_reference

    rows = []
    for h, w in FRAMES:
        frame = dataset_frame(h, w)
        for size in sizes:
            jobs = {name: (lambda f=f: f(frame, (size, size))) for name, f in RESIZERS.items()}
            small = RESIZERS["linear"](frame, (size, size))
            x = np.empty((1, size, size, 3), np.float32)

            def to_input(small=small, x=x):  # Detector.to_input for a float32 model
                np.multiply(small, np.float32(1 / 127.5), out=x[0], casting="unsafe")
                x -= np.float32(1.0)
            jobs["to_input float32"] = to_input
            ms = interleaved(jobs, runs, warmup)
            refs = {"nearest": nearest_reference(frame, (size, size)), "area": None}
            bilinear = bilinear_reference(frame, (size, size))
            for name, t in ms.items():
                ref = refs.get(name, bilinear)
                off = (None if name not in RESIZERS or ref is None else
                       float(np.mean(RESIZERS[name](frame, (size, size)) != ref)))
                rows.append({"opencv_threads": threads, "frame": f"{w}x{h}",
                             "size": size, "step": name, **stats(t),
                             "off_reference": off})
                print(f"opencv threads {threads} {w}x{h} -> {size}: {name:16s} median "
                      f"{rows[-1]['median_ms']:.3f} ms, p90 {rows[-1]['p90_ms']:.3f} ms"
                      + ("" if off is None else f", {off:.1%} of values off the reference"),
                      flush=True)
    return rows


def detector_rows(model, threads, runs, warmup) -> list[dict]:
    from benchmarks.frames import dataset_frame
    from edge_runtime.detector import Detector
    from edge_runtime.resize import RESIZERS

    det = Detector(model, num_threads=1)
    frame = dataset_frame(480, 640)
    times = {}

    def frame_with(name):
        def run():
            det.interpolation = name
            t0 = time.perf_counter()
            tensor = det.preprocess(frame)
            t1 = time.perf_counter()
            det.invoke(tensor)
            t2 = time.perf_counter()
            det.parse(det.raw_outputs())
            t3 = time.perf_counter()
            times.setdefault(name, []).append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
        return run

    interleaved({n: frame_with(n) for n in RESIZERS}, runs, warmup)
    rows = []
    for name, t in times.items():
        a = np.asarray(t[warmup:]) * 1e3
        stages = {s: stats(a[:, i]) for i, s in
                  enumerate(("preprocess", "invoke", "postprocess", "end_to_end"))}
        ratio = stages["end_to_end"]["median_ms"] / stages["invoke"]["median_ms"]
        rows.append({"opencv_threads": threads, "interpolation": name, "stages": stages,
                     "e2e_over_invoke": round(ratio, 3)})
        print(f"opencv threads {threads} {os.path.basename(model)} 640x480, interpreter 1 "
              f"thread, {name:12s}: pre {stages['preprocess']['median_ms']:.3f} invoke "
              f"{stages['invoke']['median_ms']:.3f} post {stages['postprocess']['median_ms']:.3f}"
              f" e2e {stages['end_to_end']['median_ms']:.3f} ms (p90 "
              f"{stages['end_to_end']['p90_ms']:.3f}), e2e/invoke {ratio:.3f}", flush=True)
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    md = [f"# Resize cost per frame ({m['cpu']}, {m['cores']} cores, {m['arch']}; OpenCV "
          f"{report['opencv']}; {report['warmup']} warm-up + {report['runs']} timed rounds, "
          "candidates interleaved)", "",
          "`off reference`: share of output values that differ from the integer reference of "
          "their method in edge_runtime/resize.py (`bilinear_reference`: INTER_LINEAR_EXACT's "
          "arithmetic, for the three bilinear ones; `nearest_reference`: the rule OpenCV "
          "documents for INTER_NEAREST_EXACT); 0.0% = the same pixels on every CPU.", "",
          "| OpenCV threads | frame | input | step | median ms | p90 ms | off reference |",
          "|---|---|---|---|---|---|---|"]
    for r in report["resize"]:
        off = "" if r["off_reference"] is None else f"{r['off_reference']:.1%}"
        md.append(f"| {r['opencv_threads']} | {r['frame']} | {r['size']} | {r['step']} | "
                  f"{r['median_ms']:.3f} | {r['p90_ms']:.3f} | {off} |")
    if report.get("detector"):
        md += ["", f"## One 640x480 frame through `{report['model']}` (interpreter 1 thread)", "",
               "| OpenCV threads | interpolation | preprocess | invoke | postprocess | end to end "
               "| e2e p90 | e2e / invoke |", "|---|---|---|---|---|---|---|---|"]
        for r in report["detector"]:
            s = r["stages"]
            md.append(f"| {r['opencv_threads']} | {r['interpolation']} | "
                      f"{s['preprocess']['median_ms']:.3f} | {s['invoke']['median_ms']:.3f} | "
                      f"{s['postprocess']['median_ms']:.3f} | {s['end_to_end']['median_ms']:.3f}"
                      f" | {s['end_to_end']['p90_ms']:.3f} | {r['e2e_over_invoke']:.3f} |")
        md.append("\n(milliseconds, medians unless marked p90)")
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", default="1,2", help="OpenCV threads (cv2.setNumThreads)")
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--sizes", default="256,300", help="model input sides (demo SSD: 256)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="a .tflite detector for part 2 ('' skips it)")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    import cv2

    from edge_runtime.benchmark import machine_info
    from edge_runtime.files import write_json, write_text

    sizes = [int(s) for s in args.sizes.split(",")]
    resize, detector = [], []
    for threads in [int(t) for t in args.threads.split(",")]:
        cv2.setNumThreads(threads)
        resize += resize_rows(cv2, threads, sizes, args.runs, args.warmup)
        if args.model:
            detector += detector_rows(args.model, threads, args.runs, args.warmup)
    report = {"machine": machine_info(), "opencv": cv2.__version__, "numpy": np.__version__,
              "runs": args.runs, "warmup": args.warmup, "sizes": sizes,
              "model": args.model or None, "resize": resize, "detector": detector}
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "resize_cost.json"), report, indent=1)
    write_text(os.path.join(args.out, "resize_cost.md"), markdown(report))
    print(f"wrote {os.path.join(args.out, 'resize_cost.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
