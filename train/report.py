"""``python -m train report --run DIR``: a Markdown report of a run (numbers, config, machine)."""
from __future__ import annotations

import json
import os

import yaml


def _load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_report(run_dir: str) -> str:
    """Writes ``run_dir/report.md`` from config.yaml, train_log.json and eval.json."""
    with open(os.path.join(run_dir, "config.yaml")) as f:
        config = yaml.safe_load(f)
    train_log = _load(os.path.join(run_dir, "train_log.json")) or {}
    ev = _load(os.path.join(run_dir, "eval.json"))
    m = config["model"]
    fe = m["feature_extractor"]
    lines = [f"# Run `{os.path.basename(os.path.abspath(run_dir))}`", "",
             f"SSD with {fe['name']} (depth multiplier {fe['depth_multiplier']}), "
             f"{m['image_size']}x{m['image_size']} input, {m['num_classes']} classes, "
             f"trained {train_log.get('steps', '?')} steps of batch "
             f"{config['train']['batch_size']}.", ""]
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
        if hist:
            lines += ["| step | total loss | localization | classification | images/s |",
                      "|---|---|---|---|---|"]
            picks = hist[:: max(1, len(hist) // 8)] + ([hist[-1]] if len(hist) > 1 else [])
            for h in picks:
                lines.append(f"| {h['step']} | {h['total']:.3f} | {h['localization']:.3f} | "
                             f"{h['classification']:.3f} | {h['images_per_second']:.1f} |")
            lines.append("")
    lines += ["## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", ""]
    path = os.path.join(run_dir, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
    return path
