"""Command line: ``python -m train {generate,fit,evaluate,ensemble,report,package,describe}
...``."""
from __future__ import annotations

import argparse
import logging
import os
import sys

import train  # noqa: F401  (selects legacy Keras before TensorFlow loads)


def _fit(args):
    from train.config import load_config
    from train.trainer import fit

    config = load_config(args.config)
    if args.steps:
        config.train.steps = args.steps
    if args.batch_size:
        config.train.batch_size = args.batch_size
    if args.init_from is not None:
        config.train.init_from = args.init_from
    summary = fit(config, args.data, args.out, strategy=args.strategy,
                  progress=not args.no_progress, cpu_replicas=args.cpu_replicas)
    if summary.get("chief", True):
        print(f"trained {summary['steps']} steps -> {args.out}")


def _launch(args, fit_argv):
    from train.launch import launch

    return launch(args.workers, fit_argv)


def _evaluate(args):
    from train.evaluate import evaluate

    report = evaluate(args.run, args.data, split=args.split, checkpoint=args.checkpoint,
                      out_dir=args.out, progress=not args.no_progress,
                      num_proposals=args.num_proposals, image_size=args.image_size)
    print(report["coco_summary"], end="")
    print("  ".join(f"{k}={report[k]:.3f}" for k in
                    ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100")))


def _ensemble(args):
    from train.ensemble.evaluate import run_ensemble

    report = run_ensemble(
        [r for r in args.runs.split(",") if r], args.data, args.split, args.images,
        args.select, args.max_models, args.similarity, args.select_data, args.select_split,
        args.select_images, args.combine, args.merge, args.multicrop, args.out,
        progress=not args.no_progress, score_members=args.score_members,
        num_proposals=args.num_proposals, image_size=args.image_size)
    e = report["ensemble"]
    if e["selection"]:
        for d in e["selection"]["decisions"]:
            print(f"  {'chose ' if d['chosen'] else 'skipped'} {d['name']} (held-out AP "
                  f"{d['AP']:.3f}): {d['reason']}")
    print(f"ensemble of {', '.join(m['name'] for m in e['members'])}: combine {e['combine']}, "
          f"multicrop {e['multicrop']}, {e['network_evaluations_per_image']} network "
          f"evaluations per image, {report['ms_per_image']['median']:.0f} ms per image")
    print("  ".join(f"{k}={report[k]:.3f}" for k in
                    ("AP", "AP50", "AP75", "AP_small", "AR100", "AR_small")))
    if args.out:
        print(f"wrote {os.path.join(args.out, 'eval.json')}")


def _report(args):
    from train.report import write_report

    print(f"wrote {write_report(args.run, args.two_stage_edge)}")


def _package(args):
    from train.package import package_run

    info = package_run(args.run, args.out, args.checkpoint, dtype=args.dtype)
    print(f"packaged {info['source_checkpoint']} -> {args.out} ({info['parameters']:,} "
          f"parameters, {info['bytes'] / 1e6:.1f} MB of weights)")


def _describe(args):
    from train.describe import main as describe_main

    describe_main(args)


def _fit_arguments(p, launcher: bool = False):
    p.add_argument("--config", required=True,
                   help="YAML file, or the name of a bundled config in train/configs/")
    p.add_argument("--data", required=True,
                   help="COCO-format dataset root, annotation .json, or TFRecord file/glob")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, config)")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--batch-size", type=int, help="override train.batch_size")
    p.add_argument("--init-from", help="override train.init_from: a run or zoo directory, a "
                   "checkpoint prefix or a Keras .h5 weights file to start from ('' = none)")
    if not launcher:
        p.add_argument("--strategy", default="auto",
                       choices=["auto", "default", "mirrored", "multi_worker"],
                       help="tf.distribute strategy (auto: multi_worker when TF_CONFIG names a "
                       "cluster, mirrored with 2+ GPUs, else default: one device; see "
                       "train/distribute.py)")
        p.add_argument("--cpu-replicas", type=int, default=0, metavar="N",
                       help="CPU-only machines: split the CPU into N devices under "
                       "MirroredStrategy (to test replica code without GPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train", description="Train and evaluate Frontier detectors.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="train a model (resumes from --out's last checkpoint)")
    _fit_arguments(p)
    p.set_defaults(func=_fit)

    p = sub.add_parser("launch", help="train on a local cluster of N worker processes "
                       "(MultiWorkerMirroredStrategy; each runs `fit` with its own TF_CONFIG)",
                       description="Starts N `python -m train fit` workers on free 127.0.0.1 "
                       "ports with TF_CONFIG each (worker 0 the chief, whose progress shows "
                       "here); if one fails the others are stopped and the same command "
                       "resumes from the last checkpoint. Takes fit's arguments.")
    p.add_argument("--workers", type=int, default=2, help="number of worker processes (2)")
    _fit_arguments(p, launcher=True)
    p.set_defaults(func=_launch)

    p = sub.add_parser("evaluate", help="COCO metrics of a run on a dataset split")
    p.add_argument("--run", required=True, help="run directory written by `fit`")
    p.add_argument("--data", required=True, help="dataset (same forms as for fit)")
    p.add_argument("--split", default="val", help="split name (default: val)")
    p.add_argument("--checkpoint", help="a checkpoint prefix (default: the run's latest)")
    p.add_argument("--out", help="where eval.json goes (default: the run directory)")
    p.add_argument("--num-proposals", type=int, help="two-stage models: proposals per image "
                   "(default: the config's first_stage.max_proposals); paper Fig. 6")
    p.add_argument("--image-size", type=int, help="input resolution: SSD M x M; two-stage: the "
                   "shorter edge (the longer-edge cap scales with it)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "ensemble", help="an ensemble of runs, with multicrop, scored like evaluate (paper "
        "Sec. 4.2; desktop only)",
        description="Runs several trained runs as one detector on a split and writes COCO "
        "metrics (eval.json, as `evaluate`), the members and why they were chosen, network "
        "evaluations and time per image. --combine proposals (two-stage members): the union of "
        "every member's RPN proposals, each scored and refined by every member's box "
        "classifier, averaged, one NMS (He et al. 2016). --combine detections: any members' "
        "detections merged per class (--merge nms|wbf).")
    p.add_argument("--runs", required=True, help="comma-separated run or zoo directories")
    p.add_argument("--data", required=True, help="dataset the scores are reported on")
    p.add_argument("--split", default="val", help="its split (default: val)")
    p.add_argument("--images", type=int, help="only the first N images of the split")
    p.add_argument("--select", default="none", choices=("none", "greedy"),
                   help="greedy: the paper's rule -- best held-out AP first, skipping a model "
                   "whose per-category AP vector has cosine > --similarity to a chosen one")
    p.add_argument("--max-models", type=int, default=5, help="at most N members (greedy; 5)")
    p.add_argument("--similarity", type=float, default=0.99,
                   help="cosine above which a candidate is pruned (greedy; 0.99)")
    p.add_argument("--select-data", help="held-out dataset for --select greedy (default: "
                   "--data; its split must then differ from --split)")
    p.add_argument("--select-split", default="val", help="held-out split (default: val)")
    p.add_argument("--select-images", type=int, help="only the first N held-out images")
    p.add_argument("--combine", default="proposals", choices=("proposals", "detections"))
    p.add_argument("--merge", choices=("nms", "wbf"),
                   help="how detections of members (--combine detections) and of crops merge "
                   "(default: wbf with --combine detections, measured better; nms with "
                   "proposals)")
    p.add_argument("--multicrop", default="none", metavar="SPEC",
                   help="'GxG:F': the whole image plus a G x G grid of crops F of its sides "
                   "(e.g. 2x2:0.6); 'none' (default)")
    p.add_argument("--num-proposals", type=int, help="two-stage members' proposals per image "
                   "(default: each config's; the pool holds members x this many)")
    p.add_argument("--image-size", type=int, help="every member's input resolution (SSD M x M; "
                   "two-stage: the shorter edge), as `evaluate --image-size` (default: each "
                   "config's)")
    p.add_argument("--score-members", action="store_true",
                   help="also score each chosen member alone on the same images (the "
                   "report's ensemble-vs-best-single row)")
    p.add_argument("--out", help="directory for eval.json and the detections")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_ensemble)

    sub.add_parser("generate", help="write the bundled synthetic dataset (generate --help)",
                   add_help=False)

    p = sub.add_parser("report", help="write RUN/report.md from its config, logs and eval.json")
    p.add_argument("--run", required=True)
    p.add_argument("--two-stage-edge", action="append", default=[], metavar="JSON",
                   help="a two_stage_edge.json (make two-stage-edge) to add as rows; repeatable")
    p.set_defaults(func=_report)

    p = sub.add_parser("package", help="copy a run as a small shareable model directory "
                       "(weights without optimizer state; evaluate/report/convert accept it)")
    p.add_argument("--run", required=True, help="run directory written by `fit`")
    p.add_argument("--out", required=True, help="new directory, e.g. zoo/NAME")
    p.add_argument("--checkpoint", help="a checkpoint prefix (default: the run's latest)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                   help="float16: half-size weights file (loaded back as float32)")
    p.set_defaults(func=_package)

    p = sub.add_parser(
        "describe", help="parameters, FLOPs, feature maps and anchors of a config (no training)",
        description="Builds the config's detector (fresh weights) and prints the facts a "
        "speed/accuracy report plots: parameters (total, per Keras model, backbone vs heads), "
        "FLOPs of the whole detect path at batch 1 (TensorFlow's profiler, float_operation: a "
        "multiply-add counts 2), feature-map sizes, anchor counts, input size and proposals.")
    p.add_argument("--config", required=True,
                   help="YAML file, or the name of a bundled config in train/configs/")
    p.add_argument("--image-size", type=int, help="input resolution: SSD M x M; two-stage: the "
                   "shorter edge (the longer-edge cap scales with it), as in `evaluate`")
    p.add_argument("--num-proposals", type=int, help="two-stage models: proposals per image "
                   "(overrides first_stage.max_proposals)")
    p.add_argument("--num-classes", type=int, help="classes K (default: model.num_classes; if "
                   "0, 8 for *shapes* configs, else 90 as the TF1 COCO zoo)")
    p.add_argument("--json", help="also write the facts to this JSON file (atomically)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")
    p.set_defaults(func=_describe)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["generate"]:  # its own parser (python -m train.data.generate)
        from train.data.generate import main as generate_main
        return generate_main(argv[1:]) or 0
    args = parser.parse_args(argv)
    if args.command == "launch":  # the workers get fit's arguments as given, less --workers
        only_workers = argparse.ArgumentParser(add_help=False)
        only_workers.add_argument("--workers")
        fit_argv = only_workers.parse_known_args(argv[1:])[1]
        args.func = lambda a: _launch(a, fit_argv)  # noqa: E731
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    from train.config import ConfigError
    from train.data import DataError

    try:
        status = args.func(args)
    except (ConfigError, DataError, FileNotFoundError, FileExistsError, MemoryError,
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
