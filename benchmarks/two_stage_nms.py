#!/usr/bin/env python
"""The second stage's class-aware NMS of a two-stage export, two ways, side by side.

    python benchmarks/two_stage_nms.py --run train/zoo/faster_rcnn_mobilenet_v2_shapes \
        --data data/shapes_large --out benchmarks/results

* ``fused``: ``TFLite_Detection_PostProcess`` with the proposals as its anchors (per-class rows
  for Faster R-CNN's per-class boxes), the first version of the export;
* ``builtin``: what convert/two_stage.py exports now (convert/builtin_nms.py): the same rows
  decoded in the graph, one NON_MAX_SUPPRESSION_V4 per class (padded, a valid count) and a
  TOPK_V2 over the K x per-class candidates.

Both are float32 .tflite files of the same run; reported: LiteRT invoke median / p90 at each
``--threads`` (warm-up first), the operator count, and whether the two give the same
detections on ``--images`` val images (same classes, IoU >= 0.999, scores within 1e-4).
Writes ``two_stage_nms.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def convert(source, builtin: bool) -> bytes:
    """A float32 .tflite of ``source`` ending in built-in NMS (what convert/ exports) or in
    the fused op with the proposals as its anchors."""
    import tensorflow as tf

    from convert.graph import DETECTION_OUTPUTS, serving_function
    from convert.postprocess_op import fused_postprocess
    from convert.quantize import make_converter

    if builtin:
        concrete = serving_function(source)
    else:
        h, w = source.input_shape
        fused = fused_postprocess(source.nms)

        @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
        def serve(image):
            return dict(zip(DETECTION_OUTPUTS, fused(*source.predict(image))))
        concrete = serve.get_concrete_function()
    return make_converter(concrete, source.trackable, "float32").convert()


def same(a, b) -> bool:
    from convert.checks import _iou

    if len(a) != len(b):
        return False
    for i in range(len(a)):
        if a.classes[i] != b.classes[i] or abs(a.scores[i] - b.scores[i]) > 1e-4:
            return False
        if _iou(a.boxes[i], b.boxes[i:i + 1])[0] < 0.999:
            return False
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--num-proposals", type=int)
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import train  # noqa: F401
    from convert import sources
    from convert.export_tflite import check_images
    from edge_runtime import Detector
    from edge_runtime.benchmark import benchmark_model, machine_info
    from edge_runtime.files import write_json, write_text
    from edge_runtime.interpreter import make_interpreter, op_names

    source = sources.from_run(args.run, num_proposals=args.num_proposals)
    images = check_images(args.data, "val", args.images, source.resizer)
    threads = [int(t) for t in args.threads.split(",")]
    rows, detections = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("fused", "builtin"):
            path = os.path.join(tmp, f"{name}.tflite")
            with open(path, "wb") as f:
                f.write(convert(source, name == "builtin"))
            interpreter, _ = make_interpreter(path, use_xnnpack=False)
            ops = op_names(interpreter)
            det = Detector(path)
            detections[name] = []
            for image in images:
                det.invoke(det.to_input(image))
                detections[name].append(det.parse(det.raw_outputs(), window=(1.0, 1.0)))
            timing = {str(t): benchmark_model(path, t, args.runs, args.warmup)["stages_ms"]["invoke"]
                      for t in threads}
            rows.append({"nms": name, "operators": len(ops),
                         "nms_ops": sorted({o for o in ops if "SUPPRESSION" in o
                                            or o in ("TOPK_V2", "TFLite_Detection_PostProcess")}),
                         "bytes": os.path.getsize(path), "invoke_ms": timing})
    agree = sum(same(a, b) for a, b in zip(detections["fused"], detections["builtin"]))
    m = machine_info()
    report = {"tool": "benchmarks/two_stage_nms.py", "run": os.path.abspath(args.run),
              "meta_architecture": source.meta_architecture,
              "num_proposals": source.num_proposals, "num_classes": source.nms.num_classes,
              "machine": m, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
              "warmup": args.warmup, "images_compared": len(images),
              "images_identical": int(agree), "rows": rows}
    lines = [f"Second-stage NMS of {source.meta_architecture} ({source.num_proposals} proposals, "
             f"{source.nms.num_classes} classes), {os.path.basename(os.path.abspath(args.run))}",
             f"Machine: {m['cpu']} ({m['cores']} cores); LiteRT float32 invoke median (p90) ms, "
             f"{args.warmup} warm-up + {args.runs} timed; same detections on {agree}/"
             f"{len(images)} val images.", "",
             "| NMS | ops | " + " | ".join(f"{t} thread(s)" for t in threads) + " |",
             "|---|---|" + "---|" * len(threads)]
    for r in rows:
        lines.append(f"| {r['nms']} ({', '.join(r['nms_ops'])}) | {r['operators']} | " + " | ".join(
            f"{r['invoke_ms'][str(t)]['median']:.2f} ({r['invoke_ms'][str(t)]['p90']:.2f})"
            for t in threads) + " |")
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"two_stage_nms_{source.meta_architecture}")
    write_json(stem + ".json", report)
    write_text(stem + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
