#!/usr/bin/env python
"""What each of the detector's resizers (edge_runtime/resize.py) costs per camera frame, whether
it gives INTER_LINEAR_EXACT's integer pixels (the same on every CPU), and what the rest of a
frame's pre/post-processing costs around the interpreter.

    python benchmarks/resize_cost.py [--threads 1,2] [--runs 500] [--sizes 256,300]
                                     [--model tests/assets/shapes_ssd_mobilenet_v2_int8.tflite]

Part 1 resizes 640x480 and 1280x720 frames to each input size with every resizer, and converts
the result for a float32 model (``Detector.to_input``). Part 2 (``--model``) runs a 640x480
frame through the detector at interpreter thread 1 with each resizer: preprocess, invoke,
outputs + parse, end to end, and end-to-end / invoke of the medians. Everything is side by
side: each round runs every candidate once, in an order rotated every round, and blocks of
``--block`` rounds alternate OpenCV's thread counts (``--threads``, ``cv2.setNumThreads``),
each block after a few untimed rounds, the whole after ``--warmup`` untimed rounds per thread
count. ``off reference`` counts the values a bilinear resizer puts off
:func:`edge_runtime.resize.bilinear_reference`. Writes ``resize_cost.json`` / ``.md`` with the
machine, the OpenCV version and the thread counts.
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
BILINEAR = ("linear", "linear_exact", "linear_fast")


def order(row: dict) -> tuple:
    """Rows by frame (smallest first), input size, step as run, OpenCV threads."""
    from edge_runtime.resize import RESIZERS
    steps = list(RESIZERS) + ["to_input float32"]
    return (int(row["frame"].split("x")[0]), row["size"], steps.index(row["step"]),
            row["opencv_threads"])


def stats(ms) -> dict:
    return {"median_ms": round(float(np.median(ms)), 4),
            "p90_ms": round(float(np.percentile(ms, 90)), 4)}


def interleaved(jobs: dict, threads: list[int], runs: int, warmup: int, block: int) -> dict:
    """{name: fn() -> None or [ms...]} -> {(threads, name): [results]}: a result is the call's
    milliseconds, or what the job returns (its own timings). Each round calls every job once,
    rotated by one each round; blocks of ``block`` rounds alternate OpenCV thread counts."""
    import cv2

    names = list(jobs)
    out = {(t, n): [] for t in threads for n in names}

    def one_round(r: int, t: int | None):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            got = jobs[name]()
            if t is not None:
                out[(t, name)].append(got if got is not None
                                      else (time.perf_counter() - start) * 1e3)

    for t in threads:
        cv2.setNumThreads(t)
        for r in range(warmup):
            one_round(r, None)
    done = 0
    while done < runs:
        n = min(block, runs - done)
        for t in threads:
            cv2.setNumThreads(t)
            for r in range(3):  # the thread pool after the switch
                one_round(r, None)
            for r in range(done, done + n):
                one_round(r, t)
        done += n
    return out


def resize_rows(threads, sizes, runs, warmup, block) -> list[dict]:
    from benchmarks.frames import dataset_frame
    from edge_runtime.resize import RESIZERS, bilinear_reference

    rows = []
    for h, w in FRAMES:
        frame = dataset_frame(h, w)
        for size in sizes:
            jobs = {name: (lambda f=f: [f(frame, (size, size))] and None)
                    for name, f in RESIZERS.items()}  # None: the call is timed
            small = RESIZERS["linear"](frame, (size, size))
            x = np.empty((1, size, size, 3), np.float32)

            def to_input(small=small, x=x):  # Detector.to_input of a float32 model
                np.multiply(small, np.float32(1 / 127.5), out=x[0], casting="unsafe")
                x -= np.float32(1.0)
            jobs["to_input float32"] = to_input
            ms = interleaved(jobs, threads, runs, warmup, block)
            ref = bilinear_reference(frame, (size, size))
            for (t, name), times in ms.items():
                off = (float(np.mean(RESIZERS[name](frame, (size, size)) != ref))
                       if name in BILINEAR else None)
                rows.append({"opencv_threads": t, "frame": f"{w}x{h}", "size": size,
                             "step": name, **stats(times), "off_reference": off})
    for r in sorted(rows, key=order):
        print(f"opencv threads {r['opencv_threads']} {r['frame']} -> {r['size']}: "
              f"{r['step']:16s} median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f} ms"
              + ("" if r["off_reference"] is None else
                 f", {r['off_reference']:.1%} of values off the reference"), flush=True)
    return rows


def detector_rows(model, threads, runs, warmup, block) -> list[dict]:
    from benchmarks.frames import dataset_frame
    from edge_runtime.detector import Detector
    from edge_runtime.resize import RESIZERS

    det = Detector(model, num_threads=1)
    frame = dataset_frame(480, 640)

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
            return [(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3]
        return run

    times = interleaved({n: frame_with(n) for n in RESIZERS}, threads, runs, warmup, block)
    rows = []
    for (t, name), per_frame in times.items():
        a = np.asarray(per_frame)
        stages = {s: stats(a[:, i]) for i, s in
                  enumerate(("preprocess", "invoke", "postprocess", "end_to_end"))}
        ratio = stages["end_to_end"]["median_ms"] / stages["invoke"]["median_ms"]
        rows.append({"opencv_threads": t, "interpolation": name, "stages": stages,
                     "e2e_over_invoke": round(ratio, 3)})
        print(f"opencv threads {t} {os.path.basename(model)} 640x480, interpreter 1 thread, "
              f"{name:12s}: pre {stages['preprocess']['median_ms']:.3f} invoke "
              f"{stages['invoke']['median_ms']:.3f} post {stages['postprocess']['median_ms']:.3f}"
              f" e2e {stages['end_to_end']['median_ms']:.3f} ms (p90 "
              f"{stages['end_to_end']['p90_ms']:.3f}), e2e/invoke {ratio:.3f}", flush=True)
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    md = [f"# Resize cost per frame ({m['cpu']}, {m['cores']} cores, {m['arch']}; OpenCV "
          f"{report['opencv']}; {report['warmup']} warm-up + {report['runs']} timed rounds per "
          f"OpenCV thread count, candidates interleaved, thread counts alternating every "
          f"{report['block']} rounds; {report['date']})", "",
          "`off reference`: share of output values that differ from INTER_LINEAR_EXACT's "
          "integer arithmetic (edge_runtime/resize.py `bilinear_reference`; bilinear resizers "
          "only). 0.0% = the same pixels on every CPU.", "",
          "| frame | input | step | OpenCV threads | median ms | p90 ms | off reference |",
          "|---|---|---|---|---|---|---|"]
    for r in sorted(report["resize"], key=order):
        off = "" if r["off_reference"] is None else f"{r['off_reference']:.1%}"
        md.append(f"| {r['frame']} | {r['size']} | {r['step']} | {r['opencv_threads']} | "
                  f"{r['median_ms']:.3f} | {r['p90_ms']:.3f} | {off} |")
    if report.get("detector"):
        md += ["", f"## One 640x480 frame through `{report['model']}` (interpreter 1 thread)", "",
               "| interpolation | OpenCV threads | preprocess | invoke | postprocess | end to end "
               "| e2e p90 | e2e / invoke |", "|---|---|---|---|---|---|---|---|"]
        for r in report["detector"]:
            s = r["stages"]
            md.append(f"| {r['interpolation']} | {r['opencv_threads']} | "
                      f"{s['preprocess']['median_ms']:.3f} | {s['invoke']['median_ms']:.3f} | "
                      f"{s['postprocess']['median_ms']:.3f} | {s['end_to_end']['median_ms']:.3f}"
                      f" | {s['end_to_end']['p90_ms']:.3f} | {r['e2e_over_invoke']:.3f} |")
        md.append("\n(milliseconds, medians unless marked p90)")
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", default="1,2", help="OpenCV threads (cv2.setNumThreads)")
    p.add_argument("--runs", type=int, default=500, help="timed rounds per thread count")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--block", type=int, default=50,
                   help="rounds per OpenCV thread count before switching to the next")
    p.add_argument("--sizes", default="256,300", help="model input sides (demo SSD: 256)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="a .tflite detector for part 2 ('' skips it)")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    import cv2

    from edge_runtime.benchmark import machine_info
    from edge_runtime.files import write_json, write_text

    threads = [int(t) for t in args.threads.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    resize = resize_rows(threads, sizes, args.runs, args.warmup, args.block)
    detector = (detector_rows(args.model, threads, args.runs, args.warmup, args.block)
                if args.model else [])
    report = {"machine": machine_info(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "opencv": cv2.__version__, "numpy": np.__version__, "runs": args.runs,
              "warmup": args.warmup, "block": args.block, "opencv_threads": threads,
              "sizes": sizes, "model": args.model or None, "resize": resize,
              "detector": detector}
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "resize_cost.json"), report, indent=1)
    write_text(os.path.join(args.out, "resize_cost.md"), markdown(report))
    print(f"wrote {os.path.join(args.out, 'resize_cost.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
