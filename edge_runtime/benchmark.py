"""``python -m edge_runtime benchmark``: latency per stage, memory and machine, as JSON + table.

Stages of one frame: ``preprocess`` (resize a camera-size RGB image, convert to the input
dtype, straight into the interpreter's input tensor), ``invoke`` (the interpreter, NMS op included), ``postprocess`` (reading the outputs by
name into boxes/classes/scores) and ``end_to_end`` (all three). Each is reported as median,
p90, p99 and mean in milliseconds over ``runs`` timed frames after ``warmup`` untimed ones.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time

import numpy as np

from edge_runtime.detector import Detector

STAGES = ("preprocess", "invoke", "postprocess", "end_to_end")


def machine_info() -> dict:
    """CPU model, cores, architecture and OS of this machine."""
    cpu = platform.processor() or platform.machine()
    try:  # x86: "model name"; ARM boards: "Model" (e.g. Raspberry Pi 4 Model B) or "Hardware"
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        cpu = next((fields[k] for k in ("model name", "model", "hardware", "cpu model")
                    if fields.get(k) and not fields[k].isdigit()), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(),
            "hostname": platform.node()}


def summarize(ms) -> dict:
    """Median, p90, p99, mean, min of a list of milliseconds."""
    a = np.asarray(ms, np.float64)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "min": float(a.min()),
            "n": int(a.size)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB. Linux: VmHWM, which starts afresh
    at exec (ru_maxrss keeps the parent's high-water mark across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def sample_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A seeded camera-size RGB frame: a textured background with a few filled shapes.

    The fused post-processing op's work depends on how many boxes pass its score threshold, so
    pass a real frame (``image=``) where the content matters; benchmarks/ uses the bundled
    dataset's rendered images."""
    import cv2
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 200, 3) + 40 * np.sin(xx[..., None] / rng.uniform(20, 60, 3)
                                                 + yy[..., None] / rng.uniform(20, 60, 3))
    image = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    for _ in range(6):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(min(height, width) // 20, min(height, width) // 5))
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(image, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
        else:
            pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
            cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
    return image


def benchmark_model(model_path: str, threads: int | None = None, runs: int = 200,
                    warmup: int = 20, image: np.ndarray | None = None, use_xnnpack: bool = True,
                    delegate: str | None = None, runtime: str | None = None,
                    interpolation: str = "linear") -> dict:
    """Times ``runs`` frames of ``model_path`` with ``threads`` (see module docstring);
    ``interpolation``: the preprocessing's resizer (edge_runtime/resize.py)."""
    det = Detector(model_path, num_threads=threads, use_xnnpack=use_xnnpack, delegate=delegate,
                   runtime=runtime, interpolation=interpolation)
    image = sample_image() if image is None else image
    times = {s: [] for s in STAGES}
    clock = time.perf_counter
    for i in range(warmup + runs):
        t0 = clock()
        det.load(image)
        t1 = clock()
        det.invoke()
        t2 = clock()
        outputs = det.raw_outputs()
        if not det.raw:
            det.parse(outputs)
        t3 = clock()
        if i >= warmup:
            for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t0, t3))):
                times[stage].append((b - a) * 1000.0)
    stages = {s: summarize(v) for s, v in times.items()}
    meta = det.metadata
    return {
        "model": os.path.basename(model_path), "path": os.path.abspath(model_path),
        "model_bytes": os.path.getsize(model_path),
        "quantize": meta.get("export", {}).get("quantize"),
        "input": {"shape": [1, det.height, det.width, 3], "dtype": str(det.input_dtype)},
        "image": list(image.shape), "interpolation": det.interpolation, "threads": threads,
        "runs": runs, "warmup": warmup,
        "runtime": det.runtime, "stages_ms": stages,
        "fps": 1000.0 / stages["end_to_end"]["median"],
        "overhead_fraction": (stages["preprocess"]["median"] + stages["postprocess"]["median"])
        / stages["invoke"]["median"],
        "peak_rss_mb": peak_rss_mb(),
    }


def run_benchmark(models, threads=(1,), runs: int = 200, warmup: int = 20, progress=True,
                  **kwargs) -> dict:
    """Every model at every thread count, one after another in this process."""
    results = []
    for model in models:
        for t in threads:
            if progress:
                print(f"benchmarking {os.path.basename(model)} with {t} thread(s): {warmup} "
                      f"warm-up + {runs} timed frames", flush=True)
            results.append(benchmark_model(model, t, runs, warmup, **kwargs))
    return {"tool": "edge_runtime benchmark", "machine": machine_info(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}


def format_table(report: dict) -> str:
    m = report["machine"]
    lines = [f"{m['cpu']} ({m['cores']} cores, {m['arch']}), {m['os']}",
             f"{'model':32s} {'thr':>3s} {'pre':>7s} {'invoke':>8s} {'p90':>7s} {'post':>6s} "
             f"{'e2e':>7s} {'p90':>7s} {'p99':>7s} {'fps':>6s} {'MB':>6s} {'RSS':>6s}  runtime"]
    for r in report["results"]:
        s = r["stages_ms"]
        lines.append(
            f"{r['model'][:32]:32s} {r['threads'] or '-':>3} {s['preprocess']['median']:7.2f} "
            f"{s['invoke']['median']:8.2f} {s['invoke']['p90']:7.2f} "
            f"{s['postprocess']['median']:6.2f} {s['end_to_end']['median']:7.2f} "
            f"{s['end_to_end']['p90']:7.2f} {s['end_to_end']['p99']:7.2f} {r['fps']:6.1f} "
            f"{r['model_bytes'] / 1e6:6.2f} {r['peak_rss_mb']:6.0f}  "
            f"{r['runtime']['runtime']} {r['runtime']['version']}")
    lines.append("(milliseconds, medians unless marked p90/p99; MB = model file, RSS = peak "
                 "resident MB of the process)")
    return "\n".join(lines)


def load_report(path: str) -> dict:
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read benchmark JSON ({e})") from None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise ValueError(f"{path}: not a benchmark JSON (no \"results\" list); write one with "
                         "`python -m edge_runtime benchmark MODEL --json FILE`")
    return report


def compare(report: dict, against: dict) -> list[dict]:
    """Edge/desktop ratios of invoke and end-to-end medians. Each result is held against the
    desktop entry of the same model file and thread count (an entry without threads matches
    any); models the desktop file lacks are held against its TensorFlow entries (written by
    benchmarks/tf_latency.py), if any."""
    rows = []
    desktop = against["results"]
    tensorflow = [d for d in desktop if d.get("runtime", {}).get("runtime") == "tensorflow"]
    for r in report["results"]:
        same = [d for d in desktop if d["model"] == r["model"]
                and d.get("threads") in (None, r["threads"])]
        for d in same[:1] or tensorflow:
            row = {"model": r["model"], "threads": r["threads"], "desktop_model": d["model"]}
            for stage in ("invoke", "end_to_end"):
                mine, theirs = r["stages_ms"][stage]["median"], d["stages_ms"][stage]["median"]
                row[stage] = {"edge_ms": mine, "desktop_ms": theirs, "ratio": mine / theirs}
            rows.append(row)
    return rows


def format_comparison(rows: list[dict], against: dict) -> str:
    m = against.get("machine", {})
    lines = [f"against {m.get('cpu', '?')} ({m.get('cores', '?')} cores, {m.get('arch', '?')}):",
             f"{'model':32s} {'thr':>3s} {'invoke edge':>11s} {'desktop':>8s} {'ratio':>6s} "
             f"{'e2e edge':>9s} {'desktop':>8s} {'ratio':>6s}  desktop model"]
    for r in rows:
        i, e = r["invoke"], r["end_to_end"]
        lines.append(f"{r['model'][:32]:32s} {r['threads'] or '-':>3} {i['edge_ms']:11.2f} "
                     f"{i['desktop_ms']:8.2f} {i['ratio']:6.2f} {e['edge_ms']:9.2f} "
                     f"{e['desktop_ms']:8.2f} {e['ratio']:6.2f}  {r['desktop_model']}")
    if not rows:
        lines.append("(no model/thread count in common)")
    return "\n".join(lines)
