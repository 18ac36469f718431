#!/usr/bin/env python
"""Edge runtime latency, held against the official tool (issue 4's performance checks).

    python benchmarks/edge_latency.py [--threads 1,2] [--runs 200] [--warmup 20] [--out DIR]

Builds a 300x300 SSDLite-MobileNet-v2 (the paper's fast end, 1917 anchors; random weights:
latency does not depend on training, but see the NMS note below) and exports it with
convert/ as float32 and int8, each with the fused post-processing op and without it. Then, in
this one run, on this machine, for every model and thread count:

* our runtime's per-stage medians (pre-processing, invoke, output parsing, end to end) and the
  overhead of our own work outside ``invoke()``;
* ``litert-benchmark`` (shipped with ai-edge-litert) on the same file and thread count, and
  the ratio of the two invoke medians;
* the post-processing op's cost: invoke median with the op minus without it.

The NMS cost depends on how many boxes pass the score threshold: the untrained model scores
every anchor near its prior (0.01), the worst case for the threshold of 0.01; a trained model
(the demo detector in tests/assets) is measured too. Writes ``edge_latency.json`` and
``edge_latency.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ASSET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                     "assets", "shapes_ssd_mobilenet_v2_int8.tflite")


def make_run(root: str, config_name: str = "ssdlite_mobilenet_v2_coco", num_classes: int = 8):
    """A run directory with a randomly initialised model, as `train fit` would leave it."""
    import tensorflow as tf

    from train.builder import build_model
    from train.config import load_config, save_config

    config = load_config(config_name)
    config.model.num_classes = num_classes
    config.model.ssd.post_processing.score_threshold = 0.01
    tf.random.set_seed(0)
    model = build_model(config.model, num_classes)
    os.makedirs(root, exist_ok=True)
    save_config(config, os.path.join(root, "config.yaml"))
    with open(os.path.join(root, "labels.json"), "w") as f:
        json.dump({"category_ids": list(range(1, num_classes + 1)),
                   "category_names": [f"class{i}" for i in range(1, num_classes + 1)]}, f)
    model.checkpoint().save(os.path.join(root, "checkpoints", "ckpt"))
    return model.num_anchors


def litert_benchmark(model: str, threads: int, runs: int, warmup: int) -> dict:
    """Runs the official ``litert-benchmark`` and returns its latency block (milliseconds)."""
    exe = os.path.join(os.path.dirname(sys.executable), "litert-benchmark")
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        proc = subprocess.run([exe, "--model", model, "--num_threads", str(threads),
                               "--num_runs", str(runs), "--warmup_runs", str(warmup),
                               "--result_json", f.name], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"litert-benchmark failed: {proc.stderr[-500:]}")
        return json.load(open(f.name))["latency"]


_MEMORY_CODE = """
import json, sys
from edge_runtime.benchmark import peak_rss_mb, sample_image
from edge_runtime.detector import Detector
det = Detector(sys.argv[1], num_threads=1)
image = sample_image()
for _ in range(100):
    det.detect(image)
before = peak_rss_mb()
for _ in range(int(sys.argv[2])):
    det.detect(image)
print(json.dumps({"before": before, "after": peak_rss_mb(),
                  "tensorflow_loaded": "tensorflow" in sys.modules}))
"""


def memory_growth(model: str, invokes: int = 10000) -> dict:
    """Peak RSS of a fresh TF-free process after 100 warm-up detections and after ``invokes``
    more (issue 4: at most +5%)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", _MEMORY_CODE, model, str(invokes)],
                          capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-1000:])
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"model": os.path.basename(model), "invokes": invokes,
            "peak_rss_mb_before": m["before"], "peak_rss_mb_after": m["after"],
            "growth_fraction": m["after"] / m["before"] - 1.0,
            "tensorflow_loaded": m["tensorflow_loaded"]}


def camera_rate(model: str, work: str, threads: int = 1, frames: int = 300) -> dict:
    """The camera pipeline on a rendered video of the bundled dataset's objects, against
    1000 / (invoke median) of the same detector measured in the same run."""
    from edge_runtime.benchmark import benchmark_model
    from edge_runtime.camera import run_camera
    from edge_runtime.detector import Detector
    from train.data.video import render_clip, write_video

    clip, _ = render_clip(frames, size=(480, 640), seed=1, num_objects=2,
                          object_size=(160, 220))
    video = os.path.join(work, "clip.mp4")
    write_video(clip, video, fps=30)
    bench = benchmark_model(model, threads, runs=200, warmup=20, image=clip[0])
    summary = run_camera(Detector(model, num_threads=threads), video, progress=False,
                         score_threshold=0.5)
    annotated = run_camera(Detector(model, num_threads=threads), video, progress=False,
                           score_threshold=0.5, out_video=os.path.join(work, "annotated.mp4"))
    bound = 1000.0 / bench["stages_ms"]["invoke"]["median"]
    return {"model": os.path.basename(model), "threads": threads,
            "frames": summary["frames_processed"],
            "dropped": summary["frames_dropped"], "pipeline_fps": summary["fps"],
            "invoke_median_ms": bench["stages_ms"]["invoke"]["median"],
            "invoke_bound_fps": bound, "fraction_of_bound": summary["fps"] / bound,
            "with_annotated_video_fps": annotated["fps"],
            "with_annotated_video_fraction": annotated["fps"] / bound}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--memory-invokes", type=int, default=10000)
    p.add_argument("--trained-run", help="a trained run (e.g. runs/demo): the NMS op's cost with "
                                         "real scores")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]

    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from convert import sources
    from convert.export_tflite import export_tflite
    from benchmarks.frames import dataset_frame
    from edge_runtime.benchmark import benchmark_model, machine_info
    from edge_runtime.files import write_json, write_text
    from train.data import generate

    work = tempfile.mkdtemp(prefix="edge_latency_")
    run = os.path.join(work, "run")
    anchors = make_run(run)
    data = os.path.join(work, "data")
    generate(data, "tiny", progress=False, _counts=(16, 4))
    source = sources.from_run(run, nms="fused")  # this benchmark times the fused op
    fast = sources.from_run(run, use_regular_nms=False)
    models = {}
    variants = [("float32", True, source, ""), ("float32", False, source, "_raw"),
                ("int8", True, source, ""), ("int8", False, source, "_raw"),
                ("float32", True, fast, "_fastnms")]
    for mode, fused, src, suffix in variants:
        name = f"ssdlite_mobilenet_v2_300_{mode}{suffix}.tflite"
        path = os.path.join(work, name)
        print(f"exporting {name}", flush=True)
        export_tflite(src, path, mode, data=data, calibration_images=16, num_check_images=2,
                      postprocess=fused, progress=False)
        models[name] = path
    models["demo_trained_int8 (256px)"] = ASSET
    if args.trained_run:  # realistic scores: a trained detector, fused and raw
        trained = sources.from_run(args.trained_run, nms="fused")
        for fused, suffix in ((True, ""), (False, "_raw")):
            name = f"trained_{os.path.basename(os.path.abspath(args.trained_run))}_float32{suffix}.tflite"
            path = os.path.join(work, name)
            print(f"exporting {name}", flush=True)
            export_tflite(trained, path, "float32", postprocess=fused, num_check_images=2,
                          progress=False)
            models[name] = path
        trained_anchors = len(trained.anchors)
    frame = dataset_frame()
    results = []
    for t in threads:
        for name, path in models.items():
            ours = benchmark_model(path, t, args.runs, args.warmup, image=frame)
            official = litert_benchmark(path, t, args.runs, args.warmup)
            s = ours["stages_ms"]
            row = {"model": name, "threads": t, "ours": s, "litert_benchmark": official,
                   "invoke_ratio_ours_over_official": s["invoke"]["median"] / official["median_ms"],
                   "overhead_fraction": ours["overhead_fraction"],
                   "peak_rss_mb": ours["peak_rss_mb"], "model_bytes": ours["model_bytes"]}
            results.append(row)
            print(f"{name:42s} t={t} invoke {s['invoke']['median']:7.2f} ms (p90 "
                  f"{s['invoke']['p90']:.2f}) | litert-benchmark {official['median_ms']:7.2f} | "
                  f"ratio {row['invoke_ratio_ours_over_official']:.3f} | pre "
                  f"{s['preprocess']['median']:.2f} post {s['postprocess']['median']:.3f} | "
                  f"overhead {100 * row['overhead_fraction']:.1f}%", flush=True)
    def invoke(name, t):
        return next(r for r in results if r["threads"] == t
                    and r["model"] == name)["ours"]["invoke"]["median"]

    pairs = [(f"ssdlite_mobilenet_v2_300_{m}{v}.tflite", f"ssdlite_mobilenet_v2_300_{m}_raw.tflite",
              f"{m}{' fast NMS' if v else ''}, untrained (scores near the threshold)", anchors)
             for m, v in (("float32", ""), ("int8", ""), ("float32", "_fastnms"))]
    if args.trained_run:
        base = f"trained_{os.path.basename(os.path.abspath(args.trained_run))}_float32"
        pairs.append((f"{base}.tflite", f"{base}_raw.tflite", "float32, trained",
                      trained_anchors))
    op_cost = [{"model": label, "threads": t, "anchors": n, "with_op_ms": invoke(a, t),
                "without_op_ms": invoke(b, t), "op_ms": invoke(a, t) - invoke(b, t)}
               for t in threads for a, b, label, n in pairs]
    cameras = [camera_rate(m, work) for m in
               (ASSET, models["ssdlite_mobilenet_v2_300_float32.tflite"])]
    for camera in cameras:
        print(f"camera pipeline, {camera['model']}, 640x480 video: {camera['pipeline_fps']:.1f} "
              f"FPS = {100 * camera['fraction_of_bound']:.0f}% of 1000/invoke median "
              f"({camera['invoke_bound_fps']:.1f} FPS)")
    memory = memory_growth(ASSET, args.memory_invokes)
    print(f"peak RSS {memory['peak_rss_mb_before']:.1f} MB -> {memory['peak_rss_mb_after']:.1f} "
          f"MB after {memory['invokes']} more detections ({100 * memory['growth_fraction']:+.2f}%)")
    report = {"machine": machine_info(), "runs": args.runs, "warmup": args.warmup,
              "results": results, "postprocess_op": op_cost, "memory": memory,
              "camera": cameras}
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "edge_latency.json"), report, indent=1)
    m = report["machine"]
    md = [f"# Edge runtime latency ({m['cpu']}, {m['cores']} cores, {m['arch']}; "
          f"{args.warmup} warm-up + {args.runs} timed runs, medians in ms)", "",
          "| model | threads | ours: pre | invoke | p90 | parse | end to end | litert-benchmark "
          "invoke | ours / official | overhead |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["ours"]
        md.append(f"| {r['model']} | {r['threads']} | {s['preprocess']['median']:.2f} | "
                  f"{s['invoke']['median']:.2f} | {s['invoke']['p90']:.2f} | "
                  f"{s['postprocess']['median']:.3f} | {s['end_to_end']['median']:.2f} | "
                  f"{r['litert_benchmark']['median_ms']:.2f} | "
                  f"{r['invoke_ratio_ours_over_official']:.3f} | "
                  f"{100 * r['overhead_fraction']:.1f}% |")
    md += ["", "Post-processing op (invoke with the fused op minus the same model without it):",
           "", "| model | anchors | threads | invoke with op | without | op cost |",
           "|---|---|---|---|---|---|"]
    md += [f"| {o['model']} | {o['anchors']} | {o['threads']} | {o['with_op_ms']:.2f} | "
           f"{o['without_op_ms']:.2f} | {o['op_ms']:.2f} |" for o in op_cost]
    for camera in cameras:
        md += ["", f"Camera pipeline ({camera['model']}, {camera['threads']} thread, 640x480 "
               f"video, {camera['frames']} frames): {camera['pipeline_fps']:.1f} FPS = "
               f"{100 * camera['fraction_of_bound']:.0f}% of 1000 / invoke median "
               f"({camera['invoke_median_ms']:.2f} ms -> {camera['invoke_bound_fps']:.1f} FPS); "
               f"drawing and writing an annotated video too: "
               f"{camera['with_annotated_video_fps']:.1f} FPS "
               f"({100 * camera['with_annotated_video_fraction']:.0f}%)."]
    md += ["", f"Memory: peak RSS {memory['peak_rss_mb_before']:.1f} MB after 100 detections, "
           f"{memory['peak_rss_mb_after']:.1f} MB after {memory['invokes']} more "
           f"({100 * memory['growth_fraction']:+.2f}%)."]
    write_text(os.path.join(args.out, "edge_latency.md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
