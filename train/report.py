"""``python -m train report --run DIR``: a Markdown report of a run (numbers, config, machine)."""
from __future__ import annotations

import json
import os

import yaml

from edge_runtime.files import write_text


def _load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _exported_models(run_dir: str, ev: dict | None) -> list[str]:
    """The table of exported models: ``model_*.tflite`` with their sidecar ``model_*.json``
    (convert/) and ``eval_model_*.json`` (``python -m edge_runtime evaluate``, interpreter only).
    Only files are read: train/ never imports convert/, nor edge_runtime/'s detector."""
    rows = []
    for name in sorted(os.listdir(run_dir)):
        if not (name.startswith("model_") and name.endswith(".tflite")):
            continue
        stem = name[: -len(".tflite")]
        meta = _load(os.path.join(run_dir, stem + ".json")) or {}
        score = _load(os.path.join(run_dir, f"eval_{stem}.json"))
        export = meta.get("export", {})
        check = meta.get("check", {})
        agree = (f"{check['paired']} paired, min IoU {check['min_iou']:.4f}, max score diff "
                 f"{check['max_score_diff']:.2g}" if check.get("min_iou") is not None else "")
        kind = export.get("quantize", "?") + (
            f" ({export['granularity']})" if export.get("granularity") else "")
        rows.append((f"TFLite {kind} `{name}`", os.path.getsize(os.path.join(run_dir, name)),
                     score, meta.get("input", {}).get("dtype", "?"), agree))
    if not rows:
        return []
    lines = ["## Exported models (COCO on the same split; TFLite scored by the LiteRT "
             "interpreter, not TensorFlow)", "",
             "| model | input | file size | AP | AP50 | AP_small | agreement with TensorFlow "
             "(check images) |", "|---|---|---|---|---|---|---|"]
    if ev:
        lines.append(f"| TensorFlow (checkpoint) | float32 | - | {ev['AP']:.3f} "
                     f"| {ev['AP50']:.3f} | {ev['AP_small']:.3f} | reference |")
    for label, size, score, dtype, agree in rows:
        metrics = (" | ".join(f"{score[k]:.3f}" for k in ("AP", "AP50", "AP_small"))
                   if score else "not evaluated | - | -")
        lines.append(f"| {label} | {dtype} | {size / 1e6:.2f} MB | {metrics} | {agree} |")
    return lines + [""]


def _latency(run_dir: str) -> list[str]:
    """Latency of the exported models (``edge_benchmark.json``, ``python -m edge_runtime
    benchmark``) next to TensorFlow's on the same machine (``tf_benchmark.json``)."""
    edge = _load(os.path.join(run_dir, "edge_benchmark.json"))
    tf_bench = _load(os.path.join(run_dir, "tf_benchmark.json"))
    results = (tf_bench or {}).get("results", []) + (edge or {}).get("results", [])
    if not results:
        return []
    m = (edge or tf_bench)["machine"]
    lines = [f"## Latency on this machine ({m['cpu']}, {m['cores']} cores, {m['arch']}; batch 1, "
             "a 640x480 frame resized; post-processing included; milliseconds)", "",
             "| model | runtime | threads | preprocess | invoke (median) | invoke p90 | "
             "end to end (median) | end to end p90 | FPS |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["stages_ms"]
        rt = r["runtime"]
        lines.append(f"| {r['model']} | {rt['runtime']} {rt['version']} | "
                     f"{r['threads'] or rt.get('threads') or '-'} | "
                     f"{s['preprocess']['median']:.2f} | {s['invoke']['median']:.2f} | "
                     f"{s['invoke']['p90']:.2f} | {s['end_to_end']['median']:.2f} | "
                     f"{s['end_to_end']['p90']:.2f} | {r['fps']:.0f} |")
    runs = results[-1]
    return lines + ["", f"{runs['warmup']} warm-up + {runs['runs']} timed frames per row.", ""]


def _mediapipe_peer(run_dir: str) -> list[str]:
    """edge_runtime beside MediaPipe's ObjectDetector (``mediapipe_peer.json`` and the table
    ``benchmarks/mediapipe_peer.py`` writes beside it)."""
    doc = _load(os.path.join(run_dir, "mediapipe_peer.json"))
    table = os.path.join(run_dir, "mediapipe_peer.md")
    if not isinstance(doc, dict) or doc.get("tool") != "benchmarks/mediapipe_peer.py" or \
            not os.path.exists(table):
        return []
    with open(table) as f:
        return ["## The same models in MediaPipe Tasks (`benchmarks/mediapipe_peer.py`)", "",
                f.read().rstrip(), ""]


NAMES = {"ssd": "SSD", "faster_rcnn": "Faster R-CNN", "rfcn": "R-FCN"}


def _proposal_sweep(run_dir: str) -> list[str]:
    """AP at each evaluated number of proposals (``eval_proposals_N.json``; paper Fig. 6)."""
    rows = []
    for name in os.listdir(run_dir):
        if name.startswith("eval_proposals_") and name.endswith(".json"):
            ev = _load(os.path.join(run_dir, name))
            rows.append((ev["settings"]["num_proposals"], ev))
    if not rows:
        return []
    lines = ["## AP by number of proposals (`train evaluate --num-proposals N`)", "",
             "| proposals | split | images | AP | AP50 | AP_small | AP_medium | AP_large | "
             "eval seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for n, ev in sorted(rows, key=lambda r: r[0]):
        lines.append(f"| {n} | {ev['split']} | {ev['num_images']} | " + " | ".join(
            f"{ev[k]:.3f}" for k in ("AP", "AP50", "AP_small", "AP_medium", "AP_large"))
            + f" | {ev['seconds']:.1f} |")
    return lines + [""]


def _two_stage_edge(paths: list[str]) -> list[str]:
    """Rows of two-stage exports (``two_stage_edge.json`` of ``benchmarks/two_stage_edge.py``,
    e.g. ``make two-stage-edge``) beside this run's: the demo is SSD, the paper's other half
    is measured once and shown here when it exists. A file of another tool is skipped, named."""
    lines, notes, last = [], [], None
    for path in paths:
        try:
            doc = _load(path)
        except (OSError, ValueError) as e:  # half-written or not JSON
            doc = f"unreadable ({e})"
        if not isinstance(doc, dict) or doc.get("tool") != "benchmarks/two_stage_edge.py":
            why = doc if isinstance(doc, str) else "not a `benchmarks/two_stage_edge.py` result"
            notes.append(f"- skipped `{path}`: {why}")
            continue
        last = doc
        m, name = doc["machine"], os.path.basename(os.path.normpath(doc["run"]))
        if not lines:
            lines = ["## Two-stage models on the edge (`benchmarks/two_stage_edge.py`; LiteRT "
                     "invoke median ms, TensorFlow batch 1 end to end)", "",
                     "| run | mode | proposals | file size | AP | LiteRT 1T | LiteRT 2T | "
                     "TensorFlow | float32 parity | machine |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in doc["rows"]:
            edge = r.get("edge", {})
            ms = [f"{edge[t]['invoke']['median']:.1f}" if t in edge else "-" for t in ("1", "2")]
            coco = r.get("coco")
            check = r.get("check") or {}
            parity = (f"{check['images']} images, identical" if check.get("identical")
                      else "-" if r["mode"] != "float32" else "NOT identical")
            ap = f"{coco['AP']:.3f}" if coco else "-"
            lines.append(f"| {name} | {r['mode']} | {r['num_proposals']} | "
                         f"{r['bytes'] / 1e6:.2f} MB | {ap} | {ms[0]} | {ms[1]} | "
                         f"{r['tensorflow']['end_to_end']['median']:.1f} | {parity} | "
                         f"{m['cpu']}, {m['cores']} cores, {doc['date'][:10]} |")
    if last:
        lines += ["", f"AP on the `{last['split']}` split; {last['warmup']} warm-up + {last['runs']} "
                  "timed frames per figure.", ""]
    return lines + (notes + [""] if notes else [])


def _plots(run_dir: str, ev: dict | None, history: list[dict]) -> list[str]:
    """PNGs beside report.md (loss curves, AP by size, latency per runtime) and the annotated
    val images of ``run_dir/detections/`` (``edge_runtime detect --out``), as Markdown images."""
    from train import report_figures as figs

    scores = {"TensorFlow (checkpoint)": ev} if ev else {}
    for name in sorted(os.listdir(run_dir)):
        if name.startswith("eval_model_") and name.endswith(".json"):
            scores["TFLite " + name[len("eval_model_"):-len(".json")]] = _load(
                os.path.join(run_dir, name))
    results = []
    for name in ("tf_benchmark.json", "edge_benchmark.json"):
        results += (_load(os.path.join(run_dir, name)) or {}).get("results", [])
    drawn = [(title, p) for title, p in (
        ("Training losses", figs.loss_curves(history, os.path.join(run_dir, "losses.png"))),
        ("AP by object size", figs.ap_by_size(scores, os.path.join(run_dir, "ap_by_size.png"))),
        ("Latency per runtime", figs.latency_per_runtime(
            results, os.path.join(run_dir, "latency.png")))) if p]
    lines = ["## Plots", ""] if drawn else []
    for title, p in drawn:
        lines += [f"![{title}]({os.path.basename(p)})", ""]
    det_dir = os.path.join(run_dir, "detections")
    shots = sorted(n for n in os.listdir(det_dir) if n.lower().endswith((".jpg", ".png"))
                   ) if os.path.isdir(det_dir) else []
    if shots:
        lines += ["## Detections on val images (`edge_runtime detect`, float32 TFLite, "
                  "score >= 0.5)", "", " ".join(f"![{n}](detections/{n})" for n in shots[:6]), ""]
    return lines


def _started_from(run_dir: str) -> str:
    """", started from <checkpoint> (<scope>: N variables)" when the run used train.init_from."""
    info = _load(os.path.join(run_dir, "init_from.json"))
    if not info:
        return ""
    rest = "; the other layers from scratch" if info["scope"] == "backbone" else ""
    return (f", started from `{info['checkpoint']}` ({info['scope']}: {info['restored']} of "
            f"{info['model_variables']} variables restored{rest})")


def write_report(run_dir: str, two_stage_edge: list[str] = ()) -> str:
    """Writes ``run_dir/report.md`` from config.yaml, train_log.json and eval.json (and the
    ``two_stage_edge.json`` files given, as rows of their own)."""
    with open(os.path.join(run_dir, "config.yaml")) as f:
        config = yaml.safe_load(f)
    train_log = _load(os.path.join(run_dir, "train_log.json")) or {}
    ev = _load(os.path.join(run_dir, "eval.json"))
    m = config["model"]
    fe = m["feature_extractor"]
    arch = m.get("meta_architecture", "ssd")
    section = m.get(arch) or m  # old flat SSD configs keep their keys under model
    if arch == "ssd":
        shape = f"{section['image_size']}x{section['image_size']} input"
    else:
        shape = (f"shorter edge {section['image_size']} (longer at most "
                 f"{section['max_image_size']}, padded square), "
                 f"{section['first_stage']['max_proposals']} proposals")
    lines = [f"# Run `{os.path.basename(os.path.abspath(run_dir))}`", "",
             f"{NAMES.get(arch, arch)} ({arch}) with {fe['name']} (depth multiplier "
             f"{fe['depth_multiplier']}), {shape}, {m['num_classes']} classes, "
             f"trained {train_log.get('steps', '?')} steps of batch "
             f"{config['train']['batch_size']}{_started_from(run_dir)}.", ""]
    if ev:
        lines += [f"## COCO metrics ({ev['split']} split, {ev['num_images']} images, "
                  f"step {ev['step']}; pycocotools)", "",
                  "| AP | AP50 | AP75 | AP_small | AP_medium | AP_large | AR100 |",
                  "|---|---|---|---|---|---|---|",
                  "| " + " | ".join(f"{ev[k]:.3f}" for k in
                                   ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                                    "AR100")) + " |", "",
                  f"Evaluation: {ev['seconds']:.1f} s for {ev['num_images']} images "
                  f"(batch 16, post-processing included).", ""]
    lines += _proposal_sweep(run_dir)
    lines += _exported_models(run_dir, ev)
    lines += _latency(run_dir)
    lines += _mediapipe_peer(run_dir)
    lines += _two_stage_edge(list(two_stage_edge))
    lines += _plots(run_dir, ev, train_log.get("history") or [])
    if train_log:
        mach = train_log.get("machine", {})
        lines += ["## Training", "",
                  f"- wall time of the last `fit` invocation: {train_log['wall_seconds'] / 60:.1f} min "
                  f"for {train_log['steps_this_run']} steps "
                  f"({train_log['images_per_second']:.1f} images/s, including input pipeline)",
                  f"- training images: {train_log['num_train_images']}",
                  f"- data problems skipped or fixed: {train_log.get('skipped') or 'none'}",
                  f"- machine: {mach.get('platform')}, {mach.get('processor')}, "
                  f"{mach.get('cpu_count')} logical CPUs, TensorFlow {mach.get('tensorflow')}, "
                  f"devices {mach.get('devices')}", ""]
        hist = train_log.get("history") or []
        if hist:  # every loss term the model reported (two-stage: both stages)
            terms = [k for k in hist[-1] if k not in ("step", "images_per_second", "lr")]
            lines += ["| step | " + " | ".join(terms) + " | images/s |",
                      "|---|" + "---|" * (len(terms) + 1)]
            picks = hist[:: max(1, len(hist) // 8)] + ([hist[-1]] if len(hist) > 1 else [])
            for h in picks:
                lines.append(f"| {h['step']} | " + " | ".join(f"{h.get(k, float('nan')):.3f}"
                                                             for k in terms)
                             + f" | {h['images_per_second']:.1f} |")
            lines.append("")
    lines += ["## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", ""]
    path = os.path.join(run_dir, "report.md")
    write_text(path, "\n".join(lines))
    return path
