#!/usr/bin/env python
"""TensorFlow latency of a trained run on this machine, in the edge benchmark's JSON schema.

    python benchmarks/tf_latency.py --run runs/demo --json runs/demo/tf_benchmark.json

The model runs as the paper timed it: batch 1, post-processing (decode + NMS) included, one
``tf.function`` call per frame on all of TensorFlow's threads. Stages: ``preprocess`` (resize a
640x480 frame with OpenCV), ``invoke`` (the TensorFlow detector), ``postprocess`` (tensors to
numpy), ``end_to_end``. The file can be given to ``python -m edge_runtime benchmark
--against`` to print edge/desktop ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tf_benchmark(run_dir: str, runs: int = 100, warmup: int = 10) -> dict:
    import cv2
    import numpy as np
    import tensorflow as tf

    from edge_runtime.benchmark import STAGES, machine_info, peak_rss_mb, sample_image, summarize
    from train.evaluate import load_run

    config, labels, model, ckpt = load_run(run_dir)
    m = model.image_size
    detect = tf.function(model.detect, input_signature=[tf.TensorSpec([1, m, m, 3], tf.float32)])
    image = sample_image()
    times = {s: [] for s in STAGES}
    clock = time.perf_counter
    for i in range(warmup + runs):
        t0 = clock()
        x = tf.constant(cv2.resize(image, (m, m), interpolation=cv2.INTER_AREA)[None],
                        tf.float32)
        t1 = clock()
        out = detect(x)
        t2 = clock()
        out = {k: v.numpy() for k, v in out.items()}
        t3 = clock()
        if i >= warmup:
            for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t0, t3))):
                times[stage].append((b - a) * 1000.0)
    stages = {s: summarize(v) for s, v in times.items()}
    name = "tensorflow:" + os.path.basename(os.path.abspath(run_dir))
    result = {"model": name, "path": os.path.abspath(ckpt), "model_bytes": None,
              "quantize": "float32 (TensorFlow)", "input": {"shape": [1, m, m, 3],
                                                             "dtype": "float32"},
              "image": list(image.shape), "threads": None, "runs": runs, "warmup": warmup,
              "runtime": {"runtime": "tensorflow", "version": tf.__version__,
                          "threads": "all (TensorFlow default)"},
              "stages_ms": stages, "fps": 1000.0 / stages["end_to_end"]["median"],
              "overhead_fraction": (stages["preprocess"]["median"]
                                    + stages["postprocess"]["median"])
              / stages["invoke"]["median"], "peak_rss_mb": peak_rss_mb()}
    return {"tool": "benchmarks/tf_latency.py", "machine": machine_info(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": [result]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)
    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from edge_runtime.files import write_json
    report = tf_benchmark(args.run, args.runs, args.warmup)
    write_json(args.json, report, indent=1)
    s = report["results"][0]["stages_ms"]
    print(f"TensorFlow {report['results'][0]['runtime']['version']} on "
          f"{report['machine']['cpu']} ({report['machine']['cores']} cores): end to end median "
          f"{s['end_to_end']['median']:.2f} ms (p90 {s['end_to_end']['p90']:.2f}), invoke "
          f"{s['invoke']['median']:.2f} ms -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
