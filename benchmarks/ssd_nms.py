#!/usr/bin/env python
"""SSD's post-processing, every way the converter can build it, side by side (issue 23).

    python benchmarks/ssd_nms.py --run train/zoo/ssd_mobilenet_v2_shapes \
        --data data/shapes_large --out benchmarks/results

Each ``--nms`` graph of convert/ (postprocess_op.GRAPHS), exported by convert.export_tflite in
float32 and int8 (per-tensor, as ``make demo``; the built-in graphs keep their geometry float):

* ``fused``: ``TFLite_Detection_PostProcess``, per-class ("regular") NMS;
* ``fused_fast``: the same op's class-agnostic fast NMS (``--fast-nms``; not what TF does);
* ``per_class``: one NON_MAX_SUPPRESSION_V4 per class + TOPK_V2 (the two-stage exports' graph);
* ``batched``: one NON_MAX_SUPPRESSION_V4 over all classes, each class's boxes offset so that
  classes never overlap (torchvision's ``batched_nms``); ``batched_v5``: the same with V5;
* ``batched_float_softmax`` (integer modes only): ``batched`` with SOFTMAX kept float too
  (convert/builtin_nms.py leaves it int8) -- what that would cost and buy;
* ``none``: ``--no-postprocess`` (raw outputs), timed only: invoke minus its invoke is what
  the post-processing costs.

Reported per graph and mode: LiteRT invoke median / p90 at each ``--threads`` (all the models
and thread counts timed interleaved in this one process, in a shuffled order per round, on
``--time-images`` val images in turn, after ``--warmup`` untimed rounds; also each graph
alone, ``nms only``, fed the raw model's outputs on the same images, and, as a separate
interleaved group, the graphs alone for ``--many-classes``, a 90-class config with a 1e-8
score threshold, fed its untrained network's outputs: how each scales with classes); COCO AP of
``edge_runtime evaluate`` on the first ``--images`` val images at each thread count; the
detections per class at each thread count and whether they are identical to 1 thread's; the
converter's own TFLite-vs-TensorFlow check on ``--check-images`` val images (TensorFlow's NMS
is per class; float32 per-class graphs must be identical or the export fails). Writes
``ssd_nms.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRAPHS = {"fused": dict(nms="fused"), "fused_fast": dict(nms="fused", use_regular_nms=False),
          "per_class": dict(nms="per_class"), "batched": dict(nms="batched"),
          "batched_v5": dict(nms="batched_v5")}
NMS_OPS = ("TFLite_Detection_PostProcess", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
           "TOPK_V2")


def export_all(args, work: str) -> dict:
    """{(mode, graph): (path, sidecar)} for every mode and graph, plus ``none`` (raw)."""
    import dataclasses

    from convert import sources
    from convert.export_tflite import export_tflite
    from convert.quantize import INTEGER_MODES

    out = {}
    for graph, kwargs in [*GRAPHS.items(), ("batched_float_softmax", dict(nms="batched")),
                          ("none", {})]:
        source = sources.from_run(args.run, **kwargs)
        if graph == "batched_float_softmax":
            source = dataclasses.replace(source, float_ops=source.float_ops + ("SOFTMAX",))
        for mode in args.modes:
            if graph == "batched_float_softmax" and mode not in INTEGER_MODES:
                continue
            path = os.path.join(work, f"{mode}_{graph}.tflite")
            print(f"exporting {mode} / {graph}", flush=True)
            meta = export_tflite(source, path, mode, data=args.data,
                                 calibration_images=args.calibration_images,
                                 num_check_images=args.check_images, postprocess=graph != "none",
                                 granularity="per-tensor", progress=False)
            out[(mode, graph)] = (path, meta)
    return out


def nms_only_models(nms, anchors_yxyx, work: str, mode: str = "nms only") -> dict:
    """{(mode, graph): path}: .tflite files of the post-processing alone (float32
    box_encodings [1, A, 4], class_predictions [1, A, K+1] in, the four outputs out), for
    ``nms`` (NmsSettings) but each graph."""
    import dataclasses

    import tensorflow as tf

    from convert.graph import DETECTION_OUTPUTS, postprocess_function
    from convert.postprocess_op import center_size_anchors

    anchors = center_size_anchors(anchors_yxyx)
    a, k = len(anchors), nms.num_classes
    out = {}
    for graph, kwargs in GRAPHS.items():
        nms = dataclasses.replace(nms, graph=kwargs["nms"],
                                  use_regular_nms=kwargs.get("use_regular_nms", True))
        post = postprocess_function(nms, anchors)

        @tf.function(input_signature=[tf.TensorSpec([1, a, 4], name="box_encodings"),
                                      tf.TensorSpec([1, a, k + 1], name="class_predictions")])
        def serve(box_encodings, class_predictions):
            return dict(zip(DETECTION_OUTPUTS, post(box_encodings, class_predictions)))

        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], tf.Module())
        out[(mode, graph)] = os.path.join(work, f"{mode.replace(' ', '_')}_{graph}.tflite")
        with open(out[(mode, graph)], "wb") as f:
            f.write(converter.convert())
    return out


def many_classes(config: str, data: str, count: int, work: str):
    """The post-processing of ``config`` (an SSD config with many classes, e.g. COCO's 90 and a
    1e-8 score threshold: every (anchor, class) pair is an NMS candidate), alone, fed its
    untrained network's outputs on ``count`` val images of ``data``: ({key: path},
    {key: [{input index: array}]}, description)."""
    import numpy as np
    import tensorflow as tf

    from convert.export_tflite import check_images
    from convert.sources import nms_from_config
    from edge_runtime.interpreter import make_interpreter
    from train.builder import build_model
    from train.config import load_config
    from train.core.image_resizer import FixedShapeResizer

    model = build_model(load_config(config).model, 90)  # COCO's 90 categories
    spec = model.export_spec()
    nms = nms_from_config(spec["post_processing"], model.num_classes, spec["box_coder_scales"])
    images = check_images(data, "val", count, FixedShapeResizer(spec["image_size"]))
    score = tf.nn.softmax if spec["score_fn"] == "softmax" else tf.sigmoid
    raw = []
    for image in images:  # random weights: as many candidates as a trained model at 1e-8
        enc, logits = spec["keras_model"]((image[None].astype(np.float32) - 127.5) / 127.5,
                                          training=False)
        raw.append({"box_encodings": enc.numpy(), "class_predictions": score(logits).numpy()})
    mode = f"nms only, {os.path.basename(config)}"
    models = nms_only_models(nms, spec["anchors"], work, mode)
    inputs = {}
    for key, path in models.items():
        runner = make_interpreter(path, 1)[0].get_signature_runner()
        index = {n: d["index"] for n, d in runner.get_input_details().items()}
        inputs[key] = [{index[n]: o[n] for n in index} for o in raw]
    about = (f"{os.path.basename(config)}: {len(spec['anchors'])} anchors, "
             f"{model.num_classes} classes, score threshold {nms.score_threshold:g}, "
             f"{spec['score_fn']}; untrained network's outputs on {len(images)} val images")
    return models, inputs, about


def feeds(models: dict, raw_path: str, images) -> dict:
    """{key: [{input index: array} per image]}: each whole model's input tensor, and for the
    post-processing-only models the raw float32 model's outputs on the same images."""
    from edge_runtime import Detector
    from edge_runtime.interpreter import make_interpreter

    raw = Detector(raw_path)
    raw_outputs = []
    for image in images:
        raw.invoke(raw.to_input(image))
        raw_outputs.append({k: v.copy() for k, v in raw.raw_outputs().items()})
    out = {}
    for key, path in models.items():
        interpreter = make_interpreter(path, 1)[0]
        if key[0] == "nms only":
            runner = interpreter.get_signature_runner()
            index = {n: d["index"] for n, d in runner.get_input_details().items()}
            out[key] = [{index[n]: o[n] for n in index} for o in raw_outputs]
        else:
            det = Detector(path)
            out[key] = [{det.interpreter.get_input_details()[0]["index"]: det.to_input(im)}
                        for im in images]
    return out


def time_all(models: dict, inputs: dict, threads, runs: int, warmup: int) -> dict:
    """Invoke ms of every model (``{key: path}``) at every thread count, interleaved: each
    round sets every interpreter's input (untimed) and invokes it (timed), in a shuffled order,
    on the round's image."""
    import numpy as np

    from edge_runtime.benchmark import summarize
    from edge_runtime.interpreter import make_interpreter

    interpreters = {key + (t,): make_interpreter(path, t)[0]
                    for key, path in models.items() for t in threads}
    ms = collections.defaultdict(list)
    rng = np.random.default_rng(0)
    keys = list(interpreters)
    clock = time.perf_counter
    for r in range(warmup + runs):
        for i in rng.permutation(len(keys)):
            key = keys[i]
            interpreter = interpreters[key]
            for index, value in inputs[key[:2]][r % len(inputs[key[:2]])].items():
                interpreter.set_tensor(index, value)
            t0 = clock()
            interpreter.invoke()
            if r >= warmup:
                ms[key].append((clock() - t0) * 1e3)
    return {key: summarize(v) for key, v in ms.items()}


def accuracy(path: str, data: str, threads, images: int, labels) -> dict:
    """AP, detections per class and identity with 1 thread's, at each thread count."""
    from edge_runtime.evaluate import evaluate

    out, found = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in threads:
            dets = os.path.join(tmp, f"{t}.json")
            report = evaluate(path, data, num_threads=t, max_images=images, progress=False,
                              detections_path=dets)
            found[t] = json.load(open(dets))
            per_class = collections.Counter(d["category_id"] for d in found[t])
            out[str(t)] = {"AP": report["AP"], "AP50": report["AP50"],
                           "num_images": report["num_images"],
                           "detections": len(found[t]),
                           "per_class": [per_class[c] for c in labels["category_ids"]],
                           "identical_to_1_thread": found[t] == found[threads[0]]}
    return out


def measure(args, threads, work: str) -> dict:
    """Exports, times and scores every graph (see module docstring) in ``work``: the report."""
    from convert import sources
    from convert.export_tflite import check_images
    from edge_runtime.benchmark import machine_info
    from edge_runtime.interpreter import make_interpreter, op_names

    t_start = time.time()
    models = export_all(args, work)
    source = sources.from_run(args.run)
    labels = source.labels
    nms_only = nms_only_models(source.nms, source.anchors, work)
    timed = {**{key: path for key, (path, _) in models.items()}, **nms_only}
    images = check_images(args.data, "val", args.time_images, source.resizer)
    print("timing", flush=True)
    timing = time_all(timed, feeds(timed, models[("float32", "none")][0], images), threads,
                      args.runs, args.warmup)
    many, about = {}, None
    if args.many_classes:
        print(f"timing the post-processing of {args.many_classes}", flush=True)
        many, many_inputs, about = many_classes(args.many_classes, args.data, args.time_images,
                                                work)
        timing.update(time_all(many, many_inputs, threads, args.many_classes_runs,
                               args.many_classes_warmup))
    rows = []
    for (mode, graph), (path, meta) in models.items():
        ops = op_names(make_interpreter(path, use_xnnpack=False)[0])
        row = {"mode": mode, "graph": graph, "bytes": os.path.getsize(path),
               "operators": len(ops), "nms_ops": sorted({o for o in ops if o in NMS_OPS}),
               "postprocess": meta["postprocess"],
               "invoke_ms": {str(t): timing[(mode, graph, t)] for t in threads}}
        if graph != "none":
            print(f"scoring {mode} / {graph}", flush=True)
            row["check"] = meta["check"]
            row["accuracy"] = accuracy(path, args.data, threads, args.images, labels)
        rows.append(row)
    for (mode, graph), path in {**nms_only, **many}.items():
        ops = op_names(make_interpreter(path, use_xnnpack=False)[0])
        rows.append({"mode": mode, "graph": graph, "bytes": os.path.getsize(path),
                     "operators": len(ops), "nms_ops": sorted({o for o in ops if o in NMS_OPS}),
                     "invoke_ms": {str(t): timing[(mode, graph, t)] for t in threads}})
    m = machine_info()
    report = {"tool": "benchmarks/ssd_nms.py", "run": os.path.abspath(args.run),
              "data": os.path.abspath(args.data), "anchors": len(source.anchors),
              "nms": source.nms.as_dict(), "labels": labels["category_names"], "machine": m,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": threads,
              "runs": args.runs, "warmup": args.warmup, "time_images": args.time_images,
              "many_classes": about, "many_classes_runs": args.many_classes_runs,
              "many_classes_warmup": args.many_classes_warmup,
              "images": args.images, "check_images": args.check_images,
              "seconds": round(time.time() - t_start), "rows": rows}
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, help="an SSD training run (e.g. the zoo's)")
    p.add_argument("--data", required=True, help="calibration (train) and val images")
    p.add_argument("--modes", default="float32,int8")
    p.add_argument("--threads", default="1,2,4")
    p.add_argument("--images", type=int, default=100, help="val images for AP and counts")
    p.add_argument("--check-images", type=int, default=100,
                   help="val images of the converter's TFLite-vs-TensorFlow check")
    p.add_argument("--calibration-images", type=int, default=200)
    p.add_argument("--time-images", type=int, default=10)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--many-classes", default="ssdlite_mobilenet_v2_coco",
                   help="also time the post-processing alone of this config (90 classes); "
                        "'' to skip")
    p.add_argument("--many-classes-runs", type=int, default=40)
    p.add_argument("--many-classes-warmup", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    args.modes = args.modes.split(",")
    threads = [int(t) for t in args.threads.split(",")]

    import train  # noqa: F401  (legacy Keras before TensorFlow)
    from edge_runtime.files import write_json, write_text

    with tempfile.TemporaryDirectory(prefix="ssd_nms_") as work:
        report = measure(args, threads, work)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "ssd_nms.json"), report, indent=1)
    md = markdown(report)
    write_text(os.path.join(args.out, "ssd_nms.md"), md)
    print(md)
    return 0


def markdown(r: dict) -> str:
    m, threads = r["machine"], r["threads"]
    head = " | ".join(f"{t} thr" for t in threads)
    lines = [
        f"# SSD post-processing graphs, {os.path.basename(r['run'])} ({r['anchors']} anchors, "
        f"{len(r['labels'])} classes)", "",
        f"Machine: {m['cpu']} ({m['cores']} cores), {m['os']}; {r['date']}. LiteRT invoke in "
        f"ms, median (p90): {r['warmup']} warm-up + {r['runs']} timed rounds, every model and "
        f"thread count interleaved in one process, on {r['time_images']} val images in turn. "
        f"`post` = median minus `none`'s (raw outputs) at the same threads. AP: edge_runtime "
        f"evaluate on the first {r['images']} val images of {os.path.basename(r['data'])}. "
        f"Detections per class ({', '.join(r['labels'])}); 'same' = identical to 1 thread's. "
        f"TF: the converter's check on {r['check_images']} val images.", ""]
    for mode in dict.fromkeys(row["mode"] for row in r["rows"]):
        rows = [row for row in r["rows"] if row["mode"] == mode]
        none = next((row["invoke_ms"] for row in rows if row["graph"] == "none"), None)
        post = f" post {head} |" if none else ""
        lines += [f"## {mode}", ""]
        if mode == "nms only":
            lines += ["The post-processing alone (float32), fed the raw float32 model's outputs "
                      "on the same images, timed in the same rounds.", ""]
        elif not none:
            lines += [f"The post-processing alone (float32) of {r['many_classes']}; "
                      f"{r['many_classes_warmup']} warm-up + {r['many_classes_runs']} timed "
                      "rounds, interleaved.", ""]
        lines += [f"| graph | NMS ops | ops | invoke {head} |{post}",
                  "|---|---|---|" + "---|" * (len(threads) * (2 if none else 1))]
        for row in rows:
            inv = row["invoke_ms"]
            lines.append(
                f"| {row['graph']} | {', '.join(row['nms_ops']) or '-'} | {row['operators']} | "
                + " | ".join(f"{inv[str(t)]['median']:.2f} ({inv[str(t)]['p90']:.2f})"
                             for t in threads) + " |"
                + ("".join(f" {inv[str(t)]['median'] - none[str(t)]['median']:+.2f} |"
                           for t in threads) if none else ""))
        scored = [row for row in rows if "accuracy" in row]
        if scored:
            lines += ["", f"| graph | AP {head} | detections per class, {head} | vs TensorFlow |",
                      "|---|" + "---|" * (2 * len(threads)) + "---|"]
        for row in scored:
            acc, c = row["accuracy"], row["check"]
            counts = [" ".join(map(str, acc[str(t)]["per_class"])) if t == threads[0]
                      or not acc[str(t)]["identical_to_1_thread"] else "same" for t in threads]
            tf = (f"{'identical' if c['identical'] else 'differs'}: {c['paired']} paired, "
                  f"{c['unpaired_not_borderline']} unpaired (not ties), max score diff "
                  f"{c['max_score_diff'] or 0:.2g}")
            lines.append(f"| {row['graph']} | "
                         + " | ".join(f"{acc[str(t)]['AP']:.4f}" for t in threads) + " | "
                         + " | ".join(counts) + f" | {tf} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
