#!/usr/bin/env python
"""TensorFlow latency of a trained run on this machine, in the edge benchmark's JSON schema.

    python benchmarks/tf_latency.py --run runs/demo --json runs/demo/tf_benchmark.json
    python benchmarks/tf_latency.py --run runs/long_faster_rcnn_mobilenet_v2 \
        --num-proposals 300,100,50,20,10 --json frcnn_latency.json      # paper Fig. 6
    python benchmarks/tf_latency.py --image-size 600,300 --runs 5 --warmup 2 --json resnet.json \
        --config faster_rcnn_resnet101_coco,faster_rcnn_resnet101_stride8_coco   # untrained

The model runs as the paper timed it: batch 1, post-processing (decode + NMS) included, one
``tf.function`` call per frame on all of TensorFlow's threads. Stages: ``preprocess`` (resize a
640x480 frame with OpenCV), ``invoke`` (the TensorFlow detector), ``postprocess`` (tensors to
numpy), ``end_to_end``. The file can be given to ``python -m edge_runtime benchmark
--against`` to print edge/desktop ratios. Two-stage runs (Faster R-CNN, R-FCN) take the frame
through their keep-aspect resizer; ``--num-proposals`` times each proposal count in one run,
side by side (one result per count), as ``--image-size`` does for input sizes.

``--config`` times a config without a trained run (random weights, ``--num-classes``, default 90
as COCO). Untrained scores sit near the NMS thresholds, so post-processing may take longer than a
trained model's; a two-stage model's per-proposal work is fixed by its padded proposal count
either way.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tf_benchmark(run_dir: str | None, runs: int = 100, warmup: int = 10,
                 num_proposals: list[int] | None = None, image_sizes: list[int] | None = None,
                 config: str | None = None, num_classes: int = 90) -> dict:
    configs = config.split(",") if config else [None]
    results = [_one(run_dir, runs, warmup, n, m, c, num_classes) for c in configs
               for m in (image_sizes or [None]) for n in (num_proposals or [None])]
    from edge_runtime.benchmark import machine_info
    return {"tool": "benchmarks/tf_latency.py", "machine": machine_info(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}


def _model(run_dir, config_name, num_classes, num_proposals, image_size):
    """-> (config, model, checkpoint path or None) of a trained run or an untrained config."""
    from train.evaluate import load_run
    if run_dir:
        config, _, model, ckpt = load_run(run_dir, num_proposals=num_proposals,
                                          image_size=image_size)
        return config, model, ckpt
    from train.builder import build_model
    from train.config import load_config
    from train.evaluate import apply_overrides
    config = apply_overrides(load_config(config_name), num_proposals, image_size)
    return config, build_model(config.model, config.model.num_classes or num_classes), None


def _one(run_dir, runs, warmup, num_proposals, image_size, config_name, num_classes) -> dict:
    import tensorflow as tf

    from edge_runtime.benchmark import STAGES, peak_rss_mb, sample_image, summarize

    config, model, ckpt = _model(run_dir, config_name, num_classes, num_proposals, image_size)
    h, w = model.input_shape
    detect = tf.function(model.detect, input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32),
                                                        tf.TensorSpec([1, 2], tf.float32)])
    image = sample_image()
    times = {s: [] for s in STAGES}
    clock = time.perf_counter
    for i in range(warmup + runs):
        t0 = clock()
        canvas, window = model.image_resizer.resize_numpy(image)
        x = tf.constant(canvas[None], tf.float32)
        t1 = clock()
        out = detect(x, tf.constant(window[None]))
        t2 = clock()
        out = {k: v.numpy() for k, v in out.items()}
        t3 = clock()
        if i >= warmup:
            for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t0, t3))):
                times[stage].append((b - a) * 1000.0)
    stages = {s: summarize(v) for s, v in times.items()}
    name = "tensorflow:" + (os.path.basename(os.path.abspath(run_dir)) if run_dir
                            else f"{config_name} (untrained)")
    if image_size:
        name += f"@{image_size}px"
    if num_proposals:
        name += f"@{num_proposals}proposals"
    result = {"model": name, "path": os.path.abspath(ckpt) if ckpt else None, "model_bytes": None,
              "meta_architecture": config.model.meta_architecture,
              "trained": bool(ckpt), "parameters": model.count_params(),
              "output_stride": getattr(model.extractor, "output_stride", None),
              "num_proposals": getattr(model, "max_proposals", None),
              "quantize": "float32 (TensorFlow)", "input": {"shape": [1, h, w, 3],
                                                             "dtype": "float32"},
              "image": list(image.shape), "threads": None, "runs": runs, "warmup": warmup,
              "runtime": {"runtime": "tensorflow", "version": tf.__version__,
                          "threads": "all (TensorFlow default)"},
              "stages_ms": stages, "fps": 1000.0 / stages["end_to_end"]["median"],
              "overhead_fraction": (stages["preprocess"]["median"]
                                    + stages["postprocess"]["median"])
              / stages["invoke"]["median"], "peak_rss_mb": peak_rss_mb()}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a trained run directory (python -m train fit --out)")
    src.add_argument("--config", help="config(s) (file or bundled name; comma-separated: each "
                     "timed in this run), untrained")
    p.add_argument("--num-classes", type=int, default=90, help="--config: classes (COCO: 90)")
    p.add_argument("--json", required=True)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--num-proposals", help="two-stage runs: comma-separated proposal counts, "
                   "each timed in this run (e.g. 300,100,50,20,10)")
    p.add_argument("--image-size", help="comma-separated input sizes (SSD side, two-stage "
                   "shorter edge), each timed in this run (e.g. 600,300)")
    args = p.parse_args(argv)
    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from edge_runtime.files import write_json
    counts = [int(n) for n in args.num_proposals.split(",")] if args.num_proposals else None
    sizes = [int(n) for n in args.image_size.split(",")] if args.image_size else None
    report = tf_benchmark(args.run, args.runs, args.warmup, counts, sizes, args.config,
                          args.num_classes)
    write_json(args.json, report, indent=1)
    m = report["machine"]
    for r in report["results"]:
        s = r["stages_ms"]
        print(f"{r['model']}: TensorFlow {r['runtime']['version']} on {m['cpu']} ({m['cores']} "
              f"cores): end to end median {s['end_to_end']['median']:.2f} ms (p90 "
              f"{s['end_to_end']['p90']:.2f}), invoke {s['invoke']['median']:.2f} ms")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
