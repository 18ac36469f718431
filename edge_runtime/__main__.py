"""``python -m edge_runtime {detect,evaluate,benchmark,camera} ...``: TensorFlow-free tools for
exported ``.tflite`` detectors (LiteRT by default)."""
from __future__ import annotations

import argparse
import sys

from edge_runtime.files import write_json
from edge_runtime.interpreter import one_line


def _evaluate(args):
    from edge_runtime.evaluate import evaluate

    report = evaluate(args.model, args.data, split=args.split, json_path=args.json,
                      detections_path=args.detections, num_threads=args.threads,
                      max_images=args.max_images, progress=not args.no_progress,
                      use_xnnpack=not args.no_xnnpack, delegate=args.delegate,
                      runtime=args.runtime, interpolation=args.interpolation)
    print(report["coco_summary"], end="")
    print(f"{report['runtime']['runtime']} {report['runtime']['version']}: " + "  ".join(
        f"{k}={report[k]:.3f}" for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium",
                                         "AP_large", "AR100")))


def _detector(args):
    from edge_runtime.detector import Detector
    return Detector(args.model, num_threads=args.threads, use_xnnpack=not args.no_xnnpack,
                    delegate=args.delegate, runtime=args.runtime,
                    interpolation=args.interpolation)


# the names of edge_runtime/resize.py's RESIZERS (not imported here: it loads OpenCV)
INTERPOLATIONS = ("linear", "linear_exact", "nearest", "linear_fast", "area")


def _resize_flag(p, default="linear"):
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default=default,
                   help="resize to the model's input: linear (bilinear in fixed point: the same "
                   "detections on x86 and ARM), linear_exact (the same pixels, slower), nearest, "
                   "linear_fast (OpenCV INTER_LINEAR: rounds differently per CPU) or area (as in "
                   "training); costs: benchmarks/resize_cost.py")


def _detect(args):
    from edge_runtime.detect import detect_images, image_paths

    paths = image_paths(args.images)  # folders and glob patterns expanded
    det = _detector(args)
    results, errors = detect_images(det, paths, args.out, args.score,
                                    progress=not args.no_progress)
    for path, message in errors.items():
        print(f"skipped: {message}", file=sys.stderr)
    per_image = {}
    for r in results:
        per_image.setdefault(r["file_name"], []).append(f"{r['label']} {r['score']:.2f}")
    for path in paths:
        if path not in errors:
            found = per_image.get(path, [])
            print(f"{path}: {len(found)} detection(s) {', '.join(found[:8])}"
                  f"{' ...' if len(found) > 8 else ''}")
    if args.json:
        write_json(args.json, results, indent=1)
    print(f"{det.runtime['runtime']} {det.runtime['version']}; "
          f"{len(results)} detections in {len(paths) - len(errors)} image(s)"
          + (f", annotated images in {args.out}" if args.out else ""))
    if errors and len(errors) == len(paths):
        raise ValueError("no image could be read")


def _benchmark(args):
    from edge_runtime import benchmark as bench

    threads = [int(t) for t in str(args.threads_list).split(",") if t.strip()]
    against = bench.load_report(args.against) if args.against else None
    report = bench.run_benchmark(args.model, threads, runs=args.runs, warmup=args.warmup,
                                 use_xnnpack=not args.no_xnnpack, delegate=args.delegate,
                                 runtime=args.runtime, progress=not args.no_progress,
                                 interpolation=args.interpolation)
    if against:
        report["against"] = {"file": args.against, "machine": against.get("machine"),
                             "rows": bench.compare(report, against)}
    print(bench.format_table(report))
    if against:
        print(bench.format_comparison(report["against"]["rows"], against))
    if args.json:
        write_json(args.json, report, indent=1)
        print(f"wrote {args.json}")


def _interpreter_flags(p, threads=True):
    """The interpreter flags every command takes (``benchmark`` has its own ``--threads``
    list); they reach :class:`edge_runtime.detector.Detector` / ``make_interpreter``."""
    if threads:
        p.add_argument("--threads", type=int, default=None, help="interpreter threads")
    p.add_argument("--no-xnnpack", action="store_true", help="turn off the XNNPACK delegate")
    p.add_argument("--delegate", help="external delegate library, e.g. libedgetpu.so.1")
    p.add_argument("--runtime", choices=("litert", "tflite_runtime", "tensorflow"),
                   help="interpreter package (None: the first installed, LiteRT first)")
    p.add_argument("--no-probe", action="store_true",
                   help="skip loading and running the model once in a child process first "
                   "(that check turns an interpreter crash on a corrupt file into an error)")


# --- camera: live detection (edge_runtime/camera.py) ---------------------------------------
def _camera(args):
    from edge_runtime.camera import run_camera

    s = run_camera(_detector(args), args.source, display=args.display, out_video=args.out,
                   json_path=args.json, score_threshold=args.score, max_frames=args.max_frames,
                   realtime=args.realtime, reconnect_tries=args.reconnect_tries,
                   progress=not args.no_progress)

    def fmt(v):
        return "-" if v is None else f"{v:.1f}"

    print(f"{s['source']}: {s['frames_processed']} frames processed, {s['frames_dropped']} "
          f"dropped, {fmt(s['fps'])} FPS; invoke {fmt(s['invoke_ms_median'])} ms median "
          f"({fmt(s['invoke_ms_p90'])} p90), end-to-end {fmt(s['latency_ms_median'])} ms "
          f"({fmt(s['latency_ms_p90'])} p90); {s['ended']}"
          + "".join(f"; wrote {f}" for f in (args.out, args.json) if f))


def _camera_parser(sub):
    c = sub.add_parser("camera", help="live detection: camera, video file, rtsp/http stream",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("model")
    c.add_argument("--source", default="0",
                   help="camera index (0), video file, rtsp://... / http://... URL, or picamera")
    c.add_argument("--display", action="store_true", help="show the annotated frames (q quits)")
    c.add_argument("--out", help="write the annotated video here (.mp4/.avi)")
    c.add_argument("--json", help="write per-frame latency records and the summary here")
    c.add_argument("--score", type=float, default=0.5, help="score threshold")
    c.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    c.add_argument("--realtime", action="store_true",
                   help="play a video file at its own FPS (frames drop like a live camera)")
    c.add_argument("--reconnect-tries", type=int, default=5,
                   help="reconnection attempts when a camera/stream stops delivering")
    c.add_argument("--no-progress", action="store_true")
    _resize_flag(c)
    _interpreter_flags(c)
    c.set_defaults(func=_camera)
# --- end camera ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_runtime", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="COCO AP of a .tflite model (pycocotools)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("model", help="a .tflite detector (with its sidecar .json)")
    e.add_argument("--data", required=True, help="COCO-format dataset (dir or json)")
    e.add_argument("--split", default="val")
    e.add_argument("--json", help="write the metrics here (same keys as train's eval.json)")
    e.add_argument("--detections", help="write the COCO results list here")
    e.add_argument("--max-images", type=int, default=None)
    e.add_argument("--no-progress", action="store_true")
    _resize_flag(e, default="area")  # as `train evaluate`: the same pixels, the same scores
    _interpreter_flags(e)
    e.set_defaults(func=_evaluate)

    d = sub.add_parser("detect", help="detect objects in image files",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("model")
    d.add_argument("images", nargs="+", help="image files, folders (their .jpg/.jpeg/.png/"
                   ".bmp/.webp files) or quoted glob patterns such as 'photos/*.jpg'")
    d.add_argument("--out", help="directory for annotated images")
    d.add_argument("--json", help="write detections (COCO results style, pixels) here")
    d.add_argument("--score", type=float, default=0.5, help="score threshold")
    d.add_argument("--no-progress", action="store_true")
    _resize_flag(d)
    _interpreter_flags(d)
    d.set_defaults(func=_detect)

    b = sub.add_parser("benchmark", help="latency per stage, FPS, memory; JSON + table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("model", nargs="+")
    b.add_argument("--threads", dest="threads_list", default="1",
                   help="comma-separated thread counts, e.g. 1,2,4")
    b.add_argument("--runs", type=int, default=200)
    b.add_argument("--warmup", type=int, default=20)
    b.add_argument("--json", help="write the full report here")
    b.add_argument("--against", help="a desktop benchmark JSON: print edge/desktop ratios")
    b.add_argument("--no-progress", action="store_true")
    _resize_flag(b)
    _interpreter_flags(b, threads=False)
    b.set_defaults(func=_benchmark)

    _camera_parser(sub)
    return p


def _probe(args) -> str | None:
    """The first model that a child process could not load and run once (edge_runtime/probe.py),
    as its error; None if all could."""
    from edge_runtime.interpreter import check_model_file
    from edge_runtime.probe import probe_model

    models = args.model if isinstance(args.model, list) else [args.model]
    threads = args.threads if hasattr(args, "threads") else max(  # benchmark: its largest
        (int(t) for t in str(args.threads_list).split(",") if t.strip()), default=None)
    for model in models:
        check_model_file(model)  # no child for a file that is not a model
        error = probe_model(model, threads, not args.no_xnnpack, args.delegate, args.runtime)
        if error:
            return error
    return None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        error = None if args.no_probe else _probe(args)
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # DataError and runtime errors: message, not a traceback
        if type(e).__name__ in ("DataError", "RuntimeUnavailable"):
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
