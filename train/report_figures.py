"""The run report's plots (matplotlib Agg): loss curves, AP by object size, latency per runtime.

Each function draws one PNG from the run's own JSON files and returns its path, or None when
there is nothing to draw (the report then leaves the plot out). Files are written to a temporary
name and renamed, so a reader never sees half a PNG.
"""
from __future__ import annotations

import os
import uuid

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NOT_LOSSES = ("step", "images_per_second", "lr")


def save_png(fig, path: str, dpi: int = 100) -> str:
    """savefig to a temporary name beside ``path``, then rename (a reader never sees half)."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def loss_curves(history: list[dict], path: str) -> str | None:
    """Every loss term of ``train_log.json``'s history against the step (log y: the terms span
    decades), with the learning rate on a second axis when it was logged."""
    if len(history) < 2:
        return None
    terms = [k for k in history[-1] if k not in NOT_LOSSES]
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in terms:
        ys = [h.get(k, float("nan")) for h in history]
        ax.plot(steps, ys, label=k, lw=1.6 if k in ("loss", "total_loss") else 1.0)
    if all(h.get(k, 1) > 0 for h in history for k in terms):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    if "lr" in history[-1]:
        lr_ax = ax.twinx()
        lr_ax.plot(steps, [h.get("lr", float("nan")) for h in history], "k:", lw=1, label="lr")
        lr_ax.set_ylabel("learning rate (dotted)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Training losses")
    return save_png(fig, path)


def ap_by_size(scores: dict[str, dict], path: str) -> str | None:
    """Grouped bars of AP / AP_small / AP_medium / AP_large, one group per model
    (``{"TensorFlow": eval.json, "TFLite int8": eval_model_int8.json, ...}``)."""
    keys = ("AP", "AP_small", "AP_medium", "AP_large")
    scores = {n: s for n, s in scores.items() if s and all(k in s for k in keys)}
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(scores)
    for i, (name, s) in enumerate(scores.items()):
        xs = [j + (i - (len(scores) - 1) / 2) * width for j in range(len(keys))]
        bars = ax.bar(xs, [max(s[k], 0) for k in keys], width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(keys)), ["all", "small", "medium", "large"])
    ax.set_ylabel("COCO AP (IoU .50:.95)")
    ax.set_title("AP by object size (pycocotools; -1 = no objects of that size: drawn as 0)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


def _runtime_label(r: dict) -> str:
    """``model_int8.tflite - litert 2.3.0, 1 thread``; TensorFlow's rows (benchmarks/
    tf_latency.py: no thread count, the runtime says "all (TensorFlow default)") read
    ``demo - tensorflow 2.21.0, default threads``."""
    rt = r["runtime"]
    threads = r.get("threads") or rt.get("threads")
    if isinstance(threads, int) or str(threads).isdigit():
        threads = f"{threads} thread{'' if int(threads) == 1 else 's'}"
    else:  # "all (TensorFlow default)" and the like
        threads = "default threads"
    model = r["model"].removeprefix("tensorflow:")
    return f"{model} - {rt['runtime']} {rt.get('version', '')}".rstrip() + f", {threads}"


def latency_per_runtime(results: list[dict], path: str) -> str | None:
    """Horizontal bars of end-to-end median latency per (model, runtime, threads), invoke part
    darker, p90 as an error whisker, the figures written past the whisker's end
    (``tf_benchmark.json`` + ``edge_benchmark.json`` rows)."""
    rows = [r for r in results if "stages_ms" in r]
    if not rows:
        return None
    labels = [_runtime_label(r) for r in rows]
    e2e = [r["stages_ms"]["end_to_end"]["median"] for r in rows]
    p90 = [max(r["stages_ms"]["end_to_end"]["p90"], m) for r, m in zip(rows, e2e)]
    invoke = [r["stages_ms"]["invoke"]["median"] for r in rows]
    height = 0.45 * len(rows) + 1.6
    fig, ax = plt.subplots(figsize=(8, height))
    ys = range(len(rows))
    ax.barh(ys, e2e, xerr=[[0] * len(rows), [q - m for q, m in zip(p90, e2e)]],
            color="tab:blue", alpha=0.45, label="end to end (median; whisker to p90)")
    ax.barh(ys, invoke, color="tab:blue", label="invoke (median)")
    for y, m, q in zip(ys, e2e, p90):  # past the whisker, so the line never crosses the text
        ax.annotate(f"{m:.1f} ms (p90 {q:.1f})", (q, y), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, max(p90) * 1.4)  # room for the longest row's figures
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds per frame (batch 1)")
    ax.set_title("Latency per runtime on this machine")
    # below the x label (0.6 in under the axes, which fill 77% of the figure's height)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.6 / (0.77 * height)),
              ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)
