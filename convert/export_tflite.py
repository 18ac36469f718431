#!/usr/bin/env python
"""Exports a trained detector to TFLite (or a SavedModel), checked against TensorFlow.

    python convert/export_tflite.py --run runs/demo --quantize int8 --data data/shapes_small
    python -m convert --run runs/demo --quantize float32 --out model.tflite
    python -m convert --saved-model runs/demo/saved_model --quantize float16
    python -m convert --run runs/demo --format saved_model        # desktop serving
    python -m convert --run runs/frcnn --quantize int8 --num-proposals 50 --data data/shapes_small

Faster R-CNN and R-FCN runs export too (convert/two_stage.py): built-in ops only (the second
stage's NMS too: convert/builtin_nms.py), a fixed padded input (``--image-size``: the shorter
edge) and a fixed ``--num-proposals``.

Every ``.tflite`` ends in per-class NMS from built-in ops (SSD: ``--nms``, default one
NON_MAX_SUPPRESSION_V4 over all classes, convert/builtin_nms.py; ``--nms fused``: the
``TFLite_Detection_PostProcess`` op, which LiteRT runs wrongly at > 1 thread;
``--no-postprocess``: raw box encodings and scores). Every detection export carries the
standard TFLite Model Metadata (labels, normalisation, outputs; what MediaPipe Tasks reads:
convert/tflite_metadata.py) and gets a sidecar ``<name>.json`` with the label map, input spec,
NMS settings, anchors' provenance, export settings and the converter's check. Nothing is left
at ``--out`` unless every check passed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402,F401  (selects legacy Keras before TensorFlow is imported)

import numpy as np  # noqa: E402

from convert import checks, sources  # noqa: E402
from convert import metadata as metadata_lib  # noqa: E402
from convert.quantize import GRANULARITIES, INTEGER_MODES, MODES  # noqa: E402
from convert.postprocess_op import GRAPHS, OP_NAME  # noqa: E402
from convert.sources import ExportError  # noqa: E402
from edge_runtime.metadata import metadata_path  # noqa: E402
from train.data import DataError  # noqa: E402


def check_output_path(out: str, is_dir: bool = False) -> str:
    """Fails before any work if ``out`` cannot be written (missing or read-only directory)."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise ExportError(f"{out}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: directory {parent} is not writable")
    if os.path.isdir(out) and not is_dir:
        raise ExportError(f"{out} is a directory; give a file name such as model.tflite")
    return out


def check_images(data: str | None, split: str, count: int | None, resizer) -> np.ndarray:
    """Images for the TFLite-vs-TensorFlow check, as the model's input (``resizer``: the
    model's image resizer, see convert.quantize.calibration_images): from ``data`` (``count``
    None = all of the split), or without data, freshly rendered images of the bundled shapes
    generator."""
    if data:
        from convert.quantize import calibration_images
        from train.data import load_dataset
        n = count or len(load_dataset(data, split).examples)
        return calibration_images(data, split, n, resizer, seed=1)
    from train.data.synthetic import render_image
    images = [render_image(7, "val", i)[0] for i in range(count or 8)]
    return np.stack([resizer.resize_numpy(im)[0] for im in images])


def _convert(source, mode, images, postprocess, granularity):
    import tensorflow as tf

    from convert.graph import serving_function
    from convert.quantize import convert_model, make_converter

    pixel_input = mode in INTEGER_MODES
    concrete = serving_function(source, pixel_input=pixel_input, postprocess=postprocess)
    converter = make_converter(concrete, source.trackable, mode, images, pixel_input, granularity)
    try:
        return convert_model(converter, source.float_ops if pixel_input and postprocess else ())
    except Exception as e:  # ConverterError and friends: keep the reason, drop the MLIR dump
        text = str(e)
        needs_tf = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op",
                                         text)))
        if needs_tf or "Select TF" in text:
            raise ExportError(f"the model needs TensorFlow ops {needs_tf or ''} that only the "
                              "Flex (Select TF) delegate provides, which LiteRT on a Pi or phone "
                              "does not have; refusing to export it") from None
        raise ExportError(f"TFLite conversion failed: {text.strip().splitlines()[0][:500]}") \
            from None


def export_tflite(source, out: str, mode: str = "float32", *, data: str | None = None,
                  calibration_images: int = 200, calibration_split: str = "train",
                  num_check_images: int | None = 8, check_split: str = "val",
                  postprocess: bool = True, qat_steps: int = 300,
                  qat_learning_rate: float = 3e-4, granularity: str = "per-channel",
                  progress: bool = True, model_info: dict | None = None) -> dict:
    """Converts ``source`` (an ExportSource) to ``out`` and returns the metadata written beside
    it; the model carries the standard TFLite metadata (:func:`_embed_metadata`; ``model_info``:
    its version, author and licence). Raises ExportError (nothing written at ``out``) on bad
    input, a failed metadata step or a failed check."""
    from convert.qat import finetune
    from convert.quantize import calibration_images as load_calibration
    from edge_runtime.detector import Detector

    if mode not in MODES:
        raise ExportError(f"unknown --quantize {mode!r}; choose from {', '.join(MODES)}")
    out = check_output_path(out)
    t0 = time.time()
    export_info = {"postprocess": postprocess}
    if mode != "float32":
        export_info["granularity"] = granularity
    if mode in INTEGER_MODES and source.float_ops and postprocess:
        export_info["float_ops"] = list(source.float_ops)
    images = None
    if postprocess:
        warn_fused(source.nms)
    if source.dynamic_anchors and not postprocess:
        raise ExportError(f"--no-postprocess: {source.meta_architecture} models end in their "
                          "own built-in NMS (its boxes are decoded against the proposals)")
    if mode == "qat" and source.model is None:
        raise ExportError("--quantize qat fine-tunes the Keras model and needs a training "
                          "run (--run); a SavedModel holds no trainable Keras model")
    if mode in INTEGER_MODES:
        if not data:
            raise ExportError(f"--quantize {mode} needs --data (the training data: calibration"
                              f"{' and fine-tuning' if mode == 'qat' else ''} images)")
        images = load_calibration(data, calibration_split, calibration_images, source.resizer)
        export_info["calibration"] = {"data": os.path.abspath(data), "split": calibration_split,
                                      "images": int(len(images))}
    if mode == "qat":
        qat, export_info["qat"] = finetune(source, data, qat_steps,
                                           learning_rate=qat_learning_rate,
                                           per_tensor=granularity == "per-tensor",
                                           progress=progress)
        source = source.with_qat(qat)

    tflite = _convert(source, mode, images, postprocess, granularity)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tflite",
                               dir=os.path.dirname(out))
    tmp_meta = metadata_path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(tflite)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model is meant to be copied around
        ops = checks.check_operators(tmp, out, fused=postprocess and source.nms.graph == "fused")
        try:
            detector = Detector(tmp)
        except ValueError as e:
            raise ExportError(f"{out}: the converted model does not load: {e}") from None
        details = detector._input
        scale, zero_point = (float(v) for v in details["quantization"])
        if mode in INTEGER_MODES and (detector.input_dtype != np.uint8
                                      or abs(scale - 1.0) > 1e-6 or zero_point != 0):
            raise ExportError(f"{out}: integer input is {detector.input_dtype} scale {scale} "
                              f"zero point {zero_point}, expected raw uint8 pixels (1.0, 0)")
        meta = metadata_lib.build(
            source, mode=mode, postprocess=postprocess, input_dtype=str(detector.input_dtype),
            input_quant={"scale": scale, "zero_point": zero_point} if scale else None,
            export={**export_info, "operators": len(ops), "bytes": len(tflite),
                    "seconds": round(time.time() - t0, 1)})
        if postprocess:  # the check below runs on the very bytes written to --out
            tflite = _embed_metadata(tflite, meta, out, tmp, **(model_info or {}))
            detector = Detector(tmp)
            meta["export"]["bytes"] = len(tflite)
        test_images = check_images(data, check_split, num_check_images, source.resizer)
        if postprocess:
            # TensorFlow's NMS is per class; the op's fast NMS is not, so only regular NMS in
            # float32 must match exactly (fast NMS reports its agreement like a quantized model)
            strict = mode == "float32" and source.nms.use_regular_nms
            check = checks.agreement(source, detector, test_images, strict=strict)
        else:
            check = checks.raw_agreement(source, detector, test_images)
        check["data"] = os.path.abspath(data) if data else "rendered shapes images"
        meta["export"]["seconds"] = round(time.time() - t0, 1)
        meta["check"] = check
        with open(tmp_meta, "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(tmp_meta, metadata_path(out))  # the sidecar first: a model never lacks it
        os.replace(tmp, out)
    finally:
        for path in (tmp, tmp_meta):
            if os.path.exists(path):
                os.remove(path)
    return meta


def _embed_metadata(tflite: bytes, meta: dict, out: str, tmp: str, **model_info) -> bytes:
    """``tflite`` with the standard TFLite metadata (convert/tflite_metadata.py), written to
    ``tmp`` and read back by edge_runtime's reader, which must give ``meta`` again."""
    from convert import tflite_metadata
    from edge_runtime.metadata import RECORD_FILE, embedded_metadata

    record = {k: v for k, v in meta.items() if k not in ("labels", "check")}
    record["input"] = {k: v for k, v in meta["input"].items() if k not in ("mean", "std")}
    # the file's size and the export's duration are known only after this: the sidecar's
    record["export"] = {k: v for k, v in meta["export"].items() if k not in ("bytes", "seconds")}
    try:
        model = tflite_metadata.embed(
            tflite, labels=meta["labels"], mean=meta["input"]["mean"], std=meta["input"]["std"],
            output_tensors=tflite_metadata.signature_outputs(tflite), record=record,
            **tflite_metadata.general_info(meta, **model_info))
    except tflite_metadata.MetadataError as e:
        raise ExportError(f"{out}: cannot write its TFLite metadata: {e}") from None
    with open(tmp, "wb") as f:
        f.write(model)
    try:
        back = embedded_metadata(tmp)
    except ValueError as e:
        raise ExportError(f"{out}: the embedded metadata does not read back: {e}") from None
    if back is None or back.get("labels") != meta["labels"] or any(
            back.get(k) != v for k, v in record.items() if k != "input") or any(
            back["input"].get(k) != v for k, v in meta["input"].items()):
        raise ExportError(f"{out}: the embedded metadata ({RECORD_FILE}, labels, "
                          "normalisation) does not read back as written")
    return model


def export_saved_model(source, out: str) -> str:
    """Writes a SavedModel with ``serving_default`` (the four detection outputs, TensorFlow
    NMS) and ``raw_predictions``, plus ``assets/frontier.json`` so it can be converted later."""
    import tensorflow as tf

    from convert.graph import raw_predictions, tensorflow_detections

    if source.model is None:
        raise ExportError("--format saved_model needs a training run (--run)")
    if source.dynamic_anchors:
        raise ExportError(f"--format saved_model is SSD-only; export the "
                          f"{source.meta_architecture} run to .tflite (the default)")
    out = check_output_path(out, is_dir=True)
    module = tf.Module()
    module.model = source.trackable
    signatures = {"serving_default": tensorflow_detections(source),
                  "raw_predictions": raw_predictions(source)}
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=os.path.dirname(out))
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        os.makedirs(os.path.join(tmp, "assets"), exist_ok=True)
        info = {"image_size": source.image_size, "anchors_yxyx": source.anchors.tolist(),
                "nms": source.nms.as_dict(), "labels": source.labels, "config": source.config,
                "score_fn": source.score_fn, "provenance": source.provenance,
                "input": "image float32 [B, M, M, 3] = (pixel - 127.5) / 127.5"}
        with open(os.path.join(tmp, "assets", sources.SAVEDMODEL_ASSET), "w") as f:
            json.dump(info, f)
        if os.path.exists(out):  # swap in the new one, then drop the old
            old = tmp + ".old"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m convert", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a `python -m train fit` output directory")
    src.add_argument("--saved-model", help="a SavedModel written with --format saved_model")
    p.add_argument("--checkpoint", help="checkpoint prefix inside --run (default: the latest)")
    p.add_argument("--quantize", default="float32", help=f"one of {', '.join(MODES)}")
    p.add_argument("--granularity", default="per-channel",
                   help="int8 weight scales: per-channel or per-tensor (smaller file)")
    p.add_argument("--format", choices=("tflite", "saved_model"), default="tflite")
    p.add_argument("--out", help="output file (default: RUN/model_<quantize>.tflite, or "
                                 "RUN/saved_model for --format saved_model)")
    p.add_argument("--data", help="dataset for calibration, QAT and the check (COCO dir/json "
                                  "or TFRecord); needed for int8 and qat")
    p.add_argument("--calibration-images", type=int, default=200)
    p.add_argument("--calibration-split", default="train")
    p.add_argument("--check-images", default="8",
                   help="images compared with TensorFlow after export ('all' = the whole split)")
    p.add_argument("--check-split", default="val")
    p.add_argument("--no-postprocess", action="store_true",
                   help="raw box encodings + scores, no NMS (the runtime decodes and suppresses)")
    p.add_argument("--nms", choices=GRAPHS,
                   help="SSD's NMS: batched (default) = one built-in NON_MAX_SUPPRESSION_V4 over "
                        "all classes, batched_v5 the same with V5, per_class = one V4 per class "
                        "(what two-stage models use), fused = the TFLite_Detection_PostProcess "
                        "op (LiteRT drops class index T at T > 1 threads)")
    p.add_argument("--fast-nms", action="store_true",
                   help="the fused op's class-agnostic fast NMS instead of per-class NMS as in "
                        "training (implies --nms fused)")
    p.add_argument("--num-proposals", type=int,
                   help="two-stage models: proposals fixed in the export (default: the "
                        "config's first_stage.max_proposals)")
    p.add_argument("--image-size", type=int,
                   help="two-stage models: the shorter edge M (the padded input scales with "
                        "it; must stay a multiple of the RPN's stride); SSD: M x M")
    p.add_argument("--model-version", help="the metadata's model version (default: the "
                                           "checkpoint and export date)")
    p.add_argument("--author", help="the metadata's author (default: Frontier export)")
    p.add_argument("--license", help="the metadata's licence of the model, e.g. Apache-2.0")
    p.add_argument("--qat-steps", type=int, default=300)
    p.add_argument("--qat-learning-rate", type=float, default=3e-4)
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.quantize not in MODES:
            raise ExportError(f"unknown --quantize {args.quantize!r}; choose from "
                              f"{', '.join(MODES)}")
        if args.granularity not in GRANULARITIES:
            raise ExportError(f"unknown --granularity {args.granularity!r}; choose from "
                              f"{', '.join(GRANULARITIES)}")
        if args.check_images != "all" and not args.check_images.isdigit():
            raise ExportError(f"--check-images must be a number or 'all', got "
                              f"{args.check_images!r}")
        regular = not args.fast_nms
        base = args.run or args.saved_model
        if args.run and not os.path.isdir(args.run):
            raise ExportError(f"{args.run}: no such run directory")
        if args.format == "saved_model":
            out = check_output_path(args.out or os.path.join(base, "saved_model"), is_dir=True)
        else:
            out = check_output_path(args.out or os.path.join(
                base if args.run else os.path.dirname(os.path.abspath(base)),
                f"model_{args.quantize}.tflite"))
        if args.run:
            source = sources.from_run(args.run, args.checkpoint, use_regular_nms=regular,
                                      num_proposals=args.num_proposals,
                                      image_size=args.image_size, nms=args.nms)
        else:
            if args.num_proposals is not None or args.image_size is not None:
                raise ExportError("--num-proposals and --image-size need --run (a SavedModel "
                                  "is fixed)")
            source = sources.from_saved_model(args.saved_model, use_regular_nms=regular,
                                              nms=args.nms)
        if args.format == "saved_model":
            print(f"wrote {export_saved_model(source, out)}")
            return 0
        count = None if args.check_images == "all" else int(args.check_images)
        meta = export_tflite(source, out, args.quantize, data=args.data,
                             calibration_images=args.calibration_images,
                             calibration_split=args.calibration_split, num_check_images=count,
                             check_split=args.check_split, postprocess=not args.no_postprocess,
                             qat_steps=args.qat_steps, qat_learning_rate=args.qat_learning_rate,
                             granularity=args.granularity,
                             progress=not args.no_progress,
                             model_info={"version": args.model_version, "author": args.author,
                                         "licence": args.license})
    except (ExportError, FileNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary_line(out, meta))
    return 0


def warn_fused(nms) -> None:
    """What ``--nms fused`` (per-class) loses: LiteRT's kernel drops class index T at T > 1
    threads (tensorflow/tensorflow#56058, still in ai-edge-litert 2.3.0)."""
    if nms.graph == "fused" and nms.use_regular_nms and nms.num_classes > 2:
        print(f"warning: --nms fused: LiteRT's {OP_NAME} (per-class NMS) drops every detection "
              f"of class index T when the interpreter runs with T threads, for any T from 2 to "
              f"{nms.num_classes - 1} (tensorflow/tensorflow#56058): run this model on 1 thread, "
              "or export it with the default built-in NMS", file=sys.stderr)


def summary_line(out: str, meta: dict) -> str:
    c = meta["check"]
    size = meta["export"]["bytes"] / 1e6
    if "paired" in c:
        agree = (f"vs TensorFlow on {c['images']} images: {c['paired']} paired detections, "
                 f"min IoU {c['min_iou'] if c['min_iou'] is None else round(c['min_iou'], 5)}, "
                 f"max score diff {c['max_score_diff'] if c['max_score_diff'] is None else round(c['max_score_diff'], 5)}, "  # noqa: E501
                 f"{c['unpaired_not_borderline']} unpaired"
                 f"{' (identical)' if c['identical'] else ''}")
    else:
        agree = (f"raw outputs vs TensorFlow: max encoding diff {c['max_box_encoding_diff']:.2g},"
                 f" max score diff {c['max_score_diff']:.2g}")
    return (f"wrote {out} ({size:.2f} MB, {meta['export']['quantize']}, input "
            f"{meta['input']['dtype']}) + {os.path.basename(metadata_path(out))}; {agree}")


if __name__ == "__main__":
    sys.exit(main())
