"""``python -m edge_runtime {evaluate} ...``: TensorFlow-free tools for exported detectors."""
from __future__ import annotations

import argparse
import sys


def _evaluate(args):
    from edge_runtime.evaluate import evaluate

    report = evaluate(args.model, args.data, split=args.split, json_path=args.json,
                      detections_path=args.detections, num_threads=args.threads,
                      max_images=args.max_images, progress=not args.no_progress)
    print(report["coco_summary"], end="")
    print(f"{report['runtime']['runtime']} {report['runtime']['version']}: " + "  ".join(
        f"{k}={report[k]:.3f}" for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium",
                                         "AP_large", "AR100")))


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
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--max-images", type=int, default=None)
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_evaluate)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # DataError and runtime errors: message, not a traceback
        if type(e).__name__ in ("DataError", "RuntimeUnavailable"):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
