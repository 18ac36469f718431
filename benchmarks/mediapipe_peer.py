#!/usr/bin/env python
"""edge_runtime beside MediaPipe Tasks' ObjectDetector on the same exported models and frames.

    python benchmarks/mediapipe_peer.py runs/demo/model_int8.tflite runs/demo/model_float32.tflite \
        --data data/shapes_small --images 100 --json runs/demo/mediapipe_peer.json

For each model, on the first ``--images`` val images:
  agreement   detections scoring >= ``--score`` of each, paired one to one by class at IoU >= 0.5:
              the share of MediaPipe's that pair, their IoU and score differences
  AP          pycocotools on every detection of each (MediaPipe stretches two-stage inputs;
              edge_runtime letterboxes them as in training: the AP difference is that cost)
  speed       end to end per frame (image in, detections out), the two interleaved frame by
              frame in this process (the order rotating) after ``--warmup`` untimed frames; edge_runtime at
              ``--threads`` (default 1) and its bare invoke beside it, MediaPipe with its
              defaults (its Python API sets no thread count). Median and p90.
Prints a table and writes JSON (+ .md beside it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edge_runtime.benchmark import machine_info, summarize  # noqa: E402
from edge_runtime.coco import coco_metrics, read_ground_truth, to_coco_results  # noqa: E402
from edge_runtime.detector import Detector  # noqa: E402
from edge_runtime.files import write_json  # noqa: E402
from edge_runtime.images import read_image  # noqa: E402
from edge_runtime.mediapipe_peer import MediaPipeDetector, available, pair  # noqa: E402


def agreement(det, peer, images, score: float) -> dict:
    n_det = n_peer = 0
    ious, diffs = [], []
    for rgb in images:
        mine, theirs = det.detect(rgb, score), peer.detect(rgb)
        theirs_kept = theirs.scores >= score
        theirs = type(theirs)(theirs.boxes[theirs_kept], theirs.classes[theirs_kept],
                              theirs.scores[theirs_kept])
        pairs = pair(theirs, mine)
        n_det, n_peer = n_det + len(mine), n_peer + len(theirs)
        ious += [p[2] for p in pairs]
        diffs += [abs(float(theirs.scores[i] - mine.scores[j])) for i, j, _ in pairs]
    q = lambda a, f: float(f(a)) if a else None  # noqa: E731
    return {"score_threshold": score, "edge_runtime": n_det, "mediapipe": n_peer,
            "paired": len(ious), "paired_share_of_mediapipe": len(ious) / max(n_peer, 1),
            "iou_median": q(ious, np.median), "iou_min": q(ious, np.min),
            "score_diff_median": q(diffs, np.median), "score_diff_max": q(diffs, np.max)}


def ap(detect, truth, images, category_ids) -> dict:
    results = []
    for im, rgb in images:
        d = detect(rgb)
        size = SimpleNamespace(image_id=im["id"], height=im["height"], width=im["width"])
        results += to_coco_results(size, d.boxes, d.scores, d.classes + 1, category_ids)
    ids = {im["id"] for im, _ in images}
    gt = dict(truth.coco, images=[im for im, _ in images],
              annotations=[a for a in truth.coco["annotations"] if a["image_id"] in ids])
    metrics, _ = coco_metrics(gt, results)
    return {k: metrics[k] for k in ("AP", "AP50", "AP_small", "AR100")}


def speed(det, peer, frames, runs: int, warmup: int) -> dict:
    """Per frame: edge_runtime end to end, its bare invoke (input loaded untimed) and
    MediaPipe end to end, in an order that rotates every frame (MediaPipe's worker threads may
    still be winding down when its call returns; whatever runs next would pay for it)."""
    clock = time.perf_counter
    times = {"edge_runtime_end_to_end": [], "edge_runtime_invoke": [],
             "mediapipe_end_to_end": []}

    def edge(rgb):
        det.detect(rgb)

    def invoke(rgb):
        det.invoke()  # on the input loaded untimed just before

    steps = [("edge_runtime_end_to_end", edge), ("edge_runtime_invoke", invoke),
             ("mediapipe_end_to_end", peer.detect)]
    for i in range(warmup + runs):
        rgb = frames[i % len(frames)]
        for name, step in steps[i % 3:] + steps[:i % 3]:
            if step is invoke:
                det.load(rgb)
            t0 = clock()
            step(rgb)
            if i >= warmup:
                times[name].append((clock() - t0) * 1e3)
    out = {name: summarize(v) for name, v in times.items()}
    out["edge_vs_mediapipe"] = (out["edge_runtime_end_to_end"]["median"]
                                / out["mediapipe_end_to_end"]["median"])
    out["edge_end_to_end_vs_invoke"] = (out["edge_runtime_end_to_end"]["median"]
                                        / out["edge_runtime_invoke"]["median"])
    return out


def measure(model: str, data: str, split: str, n_images: int, score: float, threads: int,
            runs: int, warmup: int) -> dict:
    truth = read_ground_truth(data, split)
    listed = truth.coco["images"][:n_images]
    images = [(im, read_image(truth.files[im["id"]])) for im in listed]
    det = Detector(model, num_threads=threads)
    if not det.labels:
        raise ValueError(f"{model}: no labels in its metadata; MediaPipe needs them")
    category_ids = det.metadata.get("category_ids") or truth.category_ids
    with MediaPipeDetector(model, det.labels, score_threshold=0.0) as peer:
        rgbs = [rgb for _, rgb in images]
        row = {"model": os.path.basename(model), "path": os.path.abspath(model),
               "quantize": (det.metadata.get("export") or {}).get("quantize"),
               "input": [det.height, det.width], "images": len(images),
               "threads": {"edge_runtime": threads, "mediapipe": "MediaPipe's default"},
               "interpolation": det.interpolation,
               "agreement": agreement(det, peer, rgbs, score),
               "ap": {"edge_runtime": ap(lambda x: det.detect(x), truth, images, category_ids),
                      "mediapipe": ap(peer.detect, truth, images, category_ids)},
               "speed": speed(det, peer, rgbs[:20], runs, warmup)}
    return row


def table(report: dict) -> str:
    m = report["machine"]
    lines = [f"edge_runtime vs MediaPipe {report['mediapipe']} ObjectDetector -- {m['cpu']} "
             f"({m['cores']} cores, {m['arch']}); edge_runtime at {report['threads']} thread(s), "
             f"MediaPipe at its default; {report['warmup']} warm-up + {report['runs']} frames, "
             "interleaved", "",
             "| model | images | paired (of MediaPipe's) | IoU median | score diff median / max "
             "| AP edge / MP | e2e edge ms (p90) | e2e MP ms (p90) | edge / MP | edge e2e / invoke |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        a, s = r["agreement"], r["speed"]
        e, p = s["edge_runtime_end_to_end"], s["mediapipe_end_to_end"]
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        lines.append(
            f"| {r['model']} | {r['images']} | {a['paired']}/{a['mediapipe']} "
            f"({a['paired_share_of_mediapipe']:.1%}; edge {a['edge_runtime']}) | "
            f"{fmt(a['iou_median'], '.3f')} | {fmt(a['score_diff_median'], '.4f')} / "
            f"{fmt(a['score_diff_max'], '.4f')} | {r['ap']['edge_runtime']['AP']:.3f} / "
            f"{r['ap']['mediapipe']['AP']:.3f} | {e['median']:.2f} ({e['p90']:.2f}) | "
            f"{p['median']:.2f} ({p['p90']:.2f}) | {s['edge_vs_mediapipe']:.2f} | "
            f"{s['edge_end_to_end_vs_invoke']:.2f} |")
    lines.append(f"\n(detections scoring >= {report['score']} paired by class at IoU >= 0.5; "
                 "AP over every detection of each)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--data", required=True, help="COCO dataset root (its val images and truth)")
    p.add_argument("--split", default="val")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--score", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1, help="edge_runtime's interpreter threads")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--json", help="write the results here (and a .md table beside it)")
    args = p.parse_args(argv)
    version = available()
    if version is None:
        print("error: MediaPipe is not installed (`pip install --no-deps mediapipe==1.2.3` "
              "beside TensorFlow, or `pip install mediapipe`)", file=sys.stderr)
        return 2
    results = []
    try:
        for model in args.models:
            print(f"{model}: agreement and AP on {args.images} images, then {args.warmup} + "
                  f"{args.runs} interleaved frames", flush=True)
            results.append(measure(model, args.data, args.split, args.images, args.score,
                                   args.threads, args.runs, args.warmup))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {"tool": "benchmarks/mediapipe_peer.py", "machine": machine_info(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mediapipe": version,
              "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
              "score": args.score, "results": results}
    text = table(report)
    print(text)
    if args.json:
        write_json(args.json, report)
        md = os.path.splitext(args.json)[0] + ".md"
        with open(md + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(md + ".tmp", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
