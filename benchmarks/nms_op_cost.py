#!/usr/bin/env python
"""What the fused post-processing op costs inside a trained detector (issue 4: <= 1 ms for 1917
anchors; the paper's CPU NMS took ~40 ms).

    python benchmarks/nms_op_cost.py --run runs/NAME --data data/shapes_small [--threads 1,2]

Exports the run three times with convert/ -- the fused op with per-class ("regular") NMS, the
fused op with its fast class-agnostic NMS, and no op (raw outputs) -- in float32 and int8, then
times ``invoke()`` of each on a rendered frame of the bundled dataset, side by side in this one
run: op cost = invoke with the op - invoke without it. The cost depends on how many boxes score
above the NMS threshold, so it is measured on trained detectors, not random weights. Writes
``nms_op_cost.json`` / ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True, help="calibration images for int8")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]

    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from convert import sources
    from convert.export_tflite import export_tflite
    from benchmarks.frames import dataset_frame
    from edge_runtime.benchmark import benchmark_model, machine_info
    from edge_runtime.files import write_json, write_text

    work = tempfile.mkdtemp(prefix="nms_op_cost_")
    regular = sources.from_run(args.run, nms="fused")  # the op itself, not built-in NMS
    fast = sources.from_run(args.run, use_regular_nms=False)
    paths = {}
    for mode in ("float32", "int8"):
        for label, src, fused in (("regular NMS", regular, True), ("fast NMS", fast, True),
                                  ("no op", regular, False)):
            path = os.path.join(work, f"{mode}_{label.replace(' ', '_')}.tflite")
            print(f"exporting {mode} / {label}", flush=True)
            export_tflite(src, path, mode, data=args.data, calibration_images=100,
                          num_check_images=2, postprocess=fused, granularity="per-tensor",
                          progress=False)
            paths[(mode, label)] = path
    frame = dataset_frame()
    rows = []
    for t in threads:
        for mode in ("float32", "int8"):
            inv = {label: benchmark_model(paths[(mode, label)], t, args.runs, args.warmup,
                                          image=frame)["stages_ms"]["invoke"]
                   for label in ("regular NMS", "fast NMS", "no op")}
            for label in ("regular NMS", "fast NMS"):
                rows.append({"mode": mode, "nms": label, "threads": t,
                             "anchors": len(regular.anchors), "classes": regular.nms.num_classes,
                             "invoke_with_op_ms": inv[label]["median"],
                             "invoke_without_op_ms": inv["no op"]["median"],
                             "op_ms": inv[label]["median"] - inv["no op"]["median"]})
                r = rows[-1]
                print(f"{mode:8s} {label:12s} t={t}: invoke {r['invoke_with_op_ms']:.2f} ms, "
                      f"without the op {r['invoke_without_op_ms']:.2f} ms -> op "
                      f"{r['op_ms']:.2f} ms", flush=True)
    m = machine_info()
    report = {"machine": m, "run": os.path.abspath(args.run), "runs": args.runs,
              "warmup": args.warmup, "score_threshold": regular.nms.score_threshold,
              "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "nms_op_cost.json"), report, indent=1)
    md = [f"# Post-processing op cost ({m['cpu']}, {m['cores']} cores; {args.warmup} warm-up + "
          f"{args.runs} timed invokes, medians in ms; run {os.path.basename(args.run)}, "
          f"score threshold {regular.nms.score_threshold})", "",
          "| model | NMS | threads | anchors | invoke with op | without | op cost |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['mode']} | {r['nms']} | {r['threads']} | {r['anchors']} | "
           f"{r['invoke_with_op_ms']:.2f} | {r['invoke_without_op_ms']:.2f} | {r['op_ms']:.2f} |"
           for r in rows]
    write_text(os.path.join(args.out, "nms_op_cost.md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
