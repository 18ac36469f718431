"""One sweep cell, measured in its own process: ``python -m benchmarks.sweep_cell SPEC.json``.

Why a process per cell: peak memory is then the cell's own (RSS high-water mark from exec, or
TensorFlow's allocator peak on a GPU), nothing one model leaves behind (graphs, allocator
caches) slows the next, and a cell that crashes or runs out of memory costs only itself. The
parent (benchmarks/sweep.py) writes SPEC.json, waits with a timeout and records a failure.

The steps, in this order:

1. TensorFlow batch-1 latency with post-processing (benchmarks/tf_latency.py's timing loop:
   OpenCV resize of a 640x480 frame, ``model.detect``, outputs to numpy) of a trained run
   (``spec["run"]``: its config and weights at the cell's resolution and proposals) or of the
   cell's config with random weights (seed 0); then peak memory, so it is that model's alone;
2. untrained cells: random weights (seed 0) saved as a small run folder (config.yaml,
   labels.json, a checkpoint) under ``<out>/work/<cell id>/``, so that the exporter takes the
   same path as for a trained run (convert.sources.from_run);
3. the post-processing alone (decode + NMS on this model's own predictions for that frame),
   because untrained scores make NMS slower than a trained model's; see ``POSTPROCESS_NOTE``;
4. parameters and FLOPs (train/describe.py);
5. ``.tflite`` float32 / int8 (convert/export_tflite.py; int8 calibrated on the bundled shapes
   generator's images, so no dataset is needed) and LiteRT invoke latency per thread count
   (edge_runtime/benchmark.py); a failed export is recorded under ``errors`` and the cell goes on;
6. COCO AP of a trained run (train/evaluate.py) on ``spec["data"]`` (val split), and of its
   int8 model in LiteRT (edge_runtime/evaluate.py; grid setting ``ap_int8: false`` skips it).

The cell file is written atomically at the end (edge_runtime/files.py); a cell that dies writes
nothing, and the parent records it as failed.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402,F401  (TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

from benchmarks.results_schema import AP_KEYS, SCHEMA  # noqa: E402

POSTPROCESS_NOTE = (
    "tf_latency_ms is end to end with post-processing as configured (score threshold and NMS "
    "of the config), on this cell's own weights. Untrained (random) weights give scores near "
    "the NMS score threshold for every anchor, so NMS has more candidates than a trained "
    "model's and post-processing is slower: postprocess_ms times decode + NMS alone on this "
    "model's predictions for the same frame, so that part can be read off (or subtracted); "
    "a two-stage model's per-proposal work is fixed by its padded proposal count either way.")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the model -------------------------------------------------------------------------------
def cell_config(cell: dict):
    """The cell's config (bundled name + overrides, classes set, resolution and proposals
    applied) as a train.config.Config."""
    from train.config import load_config

    config = load_config(cell["config"])  # before TensorFlow is imported: a bad name fails fast
    from train.describe import default_num_classes
    from train.evaluate import apply_overrides

    fe = config.model.feature_extractor
    for key, value in cell.get("overrides", {}).items():
        section, name = key.split(".", 1)
        if section != "feature_extractor" or not hasattr(fe, name):
            raise ValueError(f"cell {cell_id(cell)}: unknown override {key!r}")
        setattr(fe, name, value)
    if cell.get("stride") is not None:
        fe.output_stride = cell["stride"]
    config.model.num_classes = default_num_classes(config, cell["config"])[0]
    return apply_overrides(config, cell.get("num_proposals"), cell["resolution"])


def cell_id(cell: dict) -> str:
    from benchmarks.grids import Cell
    return Cell(**cell).id


def untrained_run(config, folder: str) -> str:
    """A run folder with ``config`` and fresh random weights (config.yaml, labels.json,
    checkpoints/), so that TensorFlow, the exporter and LiteRT all see one model."""
    import tensorflow as tf

    from edge_runtime.files import write_json
    from train.builder import build_model
    from train.config import save_config

    os.makedirs(folder, exist_ok=True)
    k = config.model.num_classes
    save_config(config, os.path.join(folder, "config.yaml"))
    write_json(os.path.join(folder, "labels.json"),
               {"category_ids": list(range(1, k + 1)),
                "category_names": [f"class_{i}" for i in range(1, k + 1)]})
    tf.random.set_seed(0)
    model = build_model(config.model, k)
    model.checkpoint().save(os.path.join(folder, "checkpoints", "ckpt"))
    return folder


# --- measurements ----------------------------------------------------------------------------
def tf_latency(run: str | None, config_path: str, cell: dict, settings: dict) -> dict:
    """benchmarks/tf_latency.py's timing of a trained run at the cell's knobs, or of the cell's
    config (knobs applied) with random weights (seed 0, as the checkpoint made afterwards)."""
    import tensorflow as tf

    from benchmarks.tf_latency import tf_benchmark
    runs, warmup = settings["tf_runs"], settings["tf_warmup"]
    if run:
        n = cell.get("num_proposals")
        report = tf_benchmark(run, runs, warmup, [n] if n else None, [cell["resolution"]])
    else:
        tf.random.set_seed(0)
        report = tf_benchmark(None, runs, warmup, config=config_path)
    return report["results"][0]


def device_and_memory(rss_mb: float) -> tuple[str, float, str]:
    """-> (device, peak memory MiB, what the figure is)."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU", rss_mb, "peak RSS of the cell's process (VmHWM)"
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    return name, peak, "TensorFlow's GPU allocator peak (get_memory_info)"


def postprocess_ms(model, runs: int, warmup: int) -> dict:
    """Decode + NMS alone, on ``model``'s predictions for benchmarks' sample frame."""
    import tensorflow as tf

    from edge_runtime.benchmark import sample_image, summarize

    canvas, window = model.image_resizer.resize_numpy(sample_image())
    x, w = tf.constant(canvas[None], tf.float32), tf.constant(window[None])
    predictions = tf.function(lambda x, w: model.predict(x, w, training=False))(x, w)
    post = tf.function(model.postprocess)
    times, out = [], None
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        out = {k: v.numpy() for k, v in post(predictions, w).items()}
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
    s = summarize(times)
    return {"median": s["median"], "p90": s["p90"], "runs": runs,
            "detections": int(out["num_detections"][0])}


def export_and_time(run_dir: str, cell: dict, spec: dict, errors: dict) -> dict | None:
    """float32 / int8 ``.tflite`` named after the cell, and LiteRT invoke time per thread count."""
    from convert.export_tflite import export_tflite
    from convert.sources import from_run
    from edge_runtime.benchmark import benchmark_model

    settings, trained = spec["settings"], spec.get("run") is not None
    if not settings["quantize"]:
        return None
    n = cell.get("num_proposals")
    source = from_run(run_dir, num_proposals=n if trained else None,
                      image_size=cell["resolution"] if trained else None)
    models = os.path.join(spec["out"], "models")
    os.makedirs(models, exist_ok=True)
    out = {}
    for q in settings["quantize"]:
        name = f"{spec['id']}.{q}.tflite"
        path = os.path.join(models, name)
        try:
            _log(f"export {q}")
            data = spec["calibration_data"] if q != "float32" else None
            if data:
                from train.data import generate
                generate(data, "tiny", progress=False)  # skipped once it is there
            export_tflite(source, path, q, data=data, calibration_images=16,
                          num_check_images=2, progress=False)
            invoke = {}
            for t in settings["threads"]:
                _log(f"LiteRT {q}, {t} thread(s)")
                r = benchmark_model(path, threads=t, runs=settings["lite_runs"],
                                    warmup=settings["lite_warmup"])
                invoke[str(t)] = {k: r["stages_ms"]["invoke"][k] for k in ("median", "p90")}
                invoke[str(t)]["end_to_end_median"] = r["stages_ms"]["end_to_end"]["median"]
            out[q] = {"file": name, "size_bytes": os.path.getsize(path), "invoke_ms": invoke,
                      "runs": settings["lite_runs"], "warmup": settings["lite_warmup"]}
        except Exception as e:  # noqa: BLE001 - one failed export must not cost the cell
            errors[f"tflite.{q}"] = f"{type(e).__name__}: {str(e).strip()[:400]}"
            _log(f"export {q} failed: {errors[f'tflite.{q}']}")
    return out


def average_precision(run_dir: str, cell: dict, data: str, work: str) -> dict:
    from train.evaluate import evaluate
    report = evaluate(run_dir, data, "val", out_dir=work, progress=False,
                      num_proposals=cell.get("num_proposals"), image_size=cell["resolution"])
    return {k: float(report[k]) for k in AP_KEYS}


def int8_precision(model_path: str, data: str, threads: int) -> dict:
    from edge_runtime.evaluate import evaluate
    report = evaluate(model_path, data, "val", num_threads=threads, progress=False)
    return {k: float(report[k]) for k in AP_KEYS}


def _run_record(run_dir: str) -> dict:
    from train.config import load_config
    m = load_config(os.path.join(run_dir, "config.yaml")).model
    return {"path": _shown(run_dir), "meta_architecture": m.meta_architecture,
            "extractor": m.feature_extractor.name, "stride": m.feature_extractor.output_stride}


# --- the cell ----------------------------------------------------------------------------------
def measure(spec: dict) -> dict:
    """Every figure of one cell (see the module docstring) -> the cell file's dict."""
    cell, settings, run = spec["cell"], spec["settings"], spec.get("run")
    work = os.path.join(spec["out"], "work", spec["id"])
    t0 = time.time()
    config = None if run else cell_config(cell)
    from edge_runtime.benchmark import machine_info
    from train.describe import describe
    from train.evaluate import load_run

    from train.config import load_config, save_config
    from train.evaluate import apply_overrides

    if run:
        config = apply_overrides(load_config(os.path.join(run, "config.yaml")),
                                 cell.get("num_proposals"), cell["resolution"])
        config_path, run_dir = None, run
        key = dict(_cell_key(spec), config=_shown(os.path.join(run, "config.yaml")))
    else:
        os.makedirs(work, exist_ok=True)
        config_path = os.path.join(work, "config.yaml")
        save_config(config, config_path)
        key = _cell_key(spec)
    # first in the process, so that its peak memory is the timed model's alone
    _log("TensorFlow latency")
    lat = tf_latency(run, config_path, cell, settings)
    device, memory, memory_what = device_and_memory(lat["peak_rss_mb"])
    e2e = lat["stages_ms"]["end_to_end"]
    if not run:
        _log("fresh random weights, saved as a run")
        run_dir = untrained_run(config, work)
    _log("post-processing alone")
    model = load_run(run_dir, num_proposals=cell.get("num_proposals") if run else None,
                     image_size=cell["resolution"] if run else None)[2]
    post = postprocess_ms(model, settings["tf_runs"], settings["tf_warmup"])
    _log("parameters and FLOPs")
    facts = describe(config, config.model.num_classes or model.num_classes,
                     source=key["config"])
    errors: dict = {}
    tflite = export_and_time(run_dir, cell, spec, errors)
    ap = ap8 = None
    if run and spec.get("data"):
        _log(f"COCO AP on {spec['data']} val")
        ap = average_precision(run, cell, spec["data"], work)
        if settings.get("ap_int8", True) and (tflite or {}).get("int8"):
            _log("COCO AP of the int8 model (LiteRT)")
            ap8 = int8_precision(os.path.join(spec["out"], "models", tflite["int8"]["file"]),
                                 spec["data"], max(settings["threads"]))
    result = {
        "schema": SCHEMA, "cell": key, "status": "ok", "machine": machine_info(),
        "device": device, "params": int(facts["parameters"]["total"]),
        "flops": int(facts["flops"]["total"]),
        "tf_latency_ms": {"median": e2e["median"], "p90": e2e["p90"],
                          "warmup": settings["tf_warmup"], "runs": settings["tf_runs"],
                          "threads": None, "invoke_median": lat["stages_ms"]["invoke"]["median"],
                          "tensorflow": lat["runtime"]["version"]},
        "postprocess_ms": post, "postprocess_note": POSTPROCESS_NOTE,
        "peak_memory_mb": memory, "peak_memory_of": memory_what,
        "tflite": tflite, "ap": ap, "ap_int8": ap8,
        "ap_data": f"{_shown(spec['data'])} val" if ap else None,
        "trained_run": _run_record(run) if run else None, "trained": bool(run),
        "input_shape": list(model.input_shape), "num_classes": model.num_classes,
        "overrides": cell.get("overrides") or {}, "errors": errors,
        "seconds": round(time.time() - t0, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **spec.get("record", {})}
    return result


def _shown(path: str) -> str:
    """``path`` relative to the working directory (the repository root, where the report
    runs and checks ``trained_run.path``) when it lies inside it."""
    rel = os.path.relpath(os.path.abspath(path))
    return path if rel.startswith("..") else rel


def _cell_key(spec: dict) -> dict:
    from benchmarks.grids import Cell
    return Cell(**spec["cell"]).key()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m benchmarks.sweep_cell SPEC.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        spec = json.load(f)
    from edge_runtime.files import write_json
    result = measure(spec)
    write_json(os.path.join(spec["out"], f"{spec['id']}.json"), result, indent=1)
    _log(f"done in {result['seconds']} s -> {spec['id']}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
