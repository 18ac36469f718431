"""Checks run on every exported model before it replaces ``--out``.

* the operators: exactly one ``TFLite_Detection_PostProcess`` (unless ``--no-postprocess``) and
  no Flex (Select TF) op, listed by LiteRT itself;
* agreement with TensorFlow on real images: each TensorFlow detection is paired with the
  TFLite detection of the same class that overlaps it most. For float32 the pairs must be
  identical (IoU >= 0.9999, scores within 1e-4, nothing unpaired except detections tied at the
  cut-off); quantized models only report how close they come. Like is compared with like:
  TensorFlow's ``batch_multiclass_nms`` clips and drops zero-area boxes, the fused op does
  neither, so the TFLite side is the op's output as edge_runtime parses it (clipped, zero-area
  boxes dropped), never the op's raw rows.
"""
from __future__ import annotations

import numpy as np

from convert.postprocess_op import OP_NAME
from convert.sources import ExportError

FLOAT_MIN_IOU, FLOAT_MAX_SCORE_DIFF = 0.9999, 1e-4


def check_operators(model_path: str, path: str, postprocess: bool) -> list[str]:
    """The model's operators (XNNPACK off, so none is hidden inside a delegate node)."""
    from edge_runtime.interpreter import make_interpreter, op_names

    try:
        interpreter, _ = make_interpreter(model_path, use_xnnpack=False)
    except ValueError as e:
        raise ExportError(f"{path}: LiteRT cannot load the converted model ({e})") from None
    ops = op_names(interpreter)
    flex = sorted({o for o in ops if o.startswith("Flex")})
    if flex:
        raise ExportError(f"{path}: needs Flex (Select TF) ops {flex}, which LiteRT on a Pi or "
                          "phone does not have; refusing this model")
    custom = sorted({o for o in ops if o != OP_NAME and not o.isupper()})
    if custom:
        raise ExportError(f"{path}: needs custom ops {custom} that LiteRT does not register; "
                          f"only built-ins and {OP_NAME} are allowed")
    fused = ops.count(OP_NAME)
    if postprocess and fused != 1:
        raise ExportError(f"{path}: expected exactly one {OP_NAME} op, found {fused}")
    if not postprocess and fused:
        raise ExportError(f"{path}: --no-postprocess model contains {OP_NAME}")
    return ops


def _iou(box, boxes):
    y0 = np.maximum(box[0], boxes[:, 0]); x0 = np.maximum(box[1], boxes[:, 1])
    y1 = np.minimum(box[2], boxes[:, 2]); x1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), (union == 0) * 1.0)


def pair_detections(ref, got, max_detections: int, score_threshold: float, tol=1e-4,
                    truncated_at: float | None = None) -> dict:
    """Pairs one image's detections. ``ref``/``got``: dicts of boxes [N, 4], classes [N],
    scores [N] (sorted by score). Unpaired detections scoring within ``tol`` of the cut-off
    (the score threshold, or the other list's lowest score when it is full) are "borderline":
    which of two tied boxes is kept is not a disagreement. ``truncated_at``: the lowest score
    of the op's list when it was full before zero-area boxes were dropped (the lists are then
    shorter than ``max_detections`` but were still cut there)."""
    used = np.zeros(len(got["scores"]), bool)
    ious, score_diffs, unpaired_ref = [], [], []
    for i in np.argsort(-ref["scores"], kind="stable"):
        same = np.flatnonzero((got["classes"] == ref["classes"][i]) & ~used)
        if len(same):
            overlaps = _iou(ref["boxes"][i], got["boxes"][same])
            j = same[int(np.argmax(overlaps))]
            if overlaps.max() >= 0.5:
                used[j] = True
                ious.append(float(overlaps.max()))
                score_diffs.append(abs(float(ref["scores"][i]) - float(got["scores"][j])))
                continue
        unpaired_ref.append(float(ref["scores"][i]))
    unpaired_got = [float(s) for s in got["scores"][~used]]

    def cutoff(other):
        if len(other["scores"]) >= max_detections:
            return max(score_threshold, float(other["scores"].min()))
        return max(score_threshold, truncated_at if truncated_at is not None else 0.0)

    def hard(unpaired, other):
        return [s for s in unpaired if s > cutoff(other) + tol]

    return {"ious": ious, "score_diffs": score_diffs,
            "unpaired": len(unpaired_ref) + len(unpaired_got),
            "unpaired_hard": len(hard(unpaired_ref, got)) + len(hard(unpaired_got, ref)),
            "ref": len(ref["scores"]), "got": len(got["scores"])}


def agreement(source, detector, images: np.ndarray, strict: bool) -> dict:
    """Runs TensorFlow (``source.detect``) and the TFLite ``detector`` on ``images`` (uint8
    ``[n, M, M, 3]``) and summarises how their detections pair up (see module docstring).
    ``strict``: raise ExportError unless they are identical within the float tolerances."""
    nms = source.nms
    per_image, dropped = [], 0
    for image in images:
        x = ((image.astype(np.float32) - source.mean) / source.std)[None]
        out = {k: np.asarray(v) for k, v in source.detect(x).items()}
        n = int(out["num_detections"][0])
        ref = {"boxes": out["boxes"][0, :n], "classes": out["classes"][0, :n].astype(int),
               "scores": out["scores"][0, :n]}
        # ``image`` is already the model's input (resized and, two-stage, padded): both sides
        # see the same pixels and give boxes relative to the whole input (window 1 x 1)
        detector.invoke(detector.to_input(image))  # = detector.detect, keeping the op's
        raw = detector.raw_outputs()               # own rows for the cut-off
        d = detector.parse(raw, window=(1.0, 1.0))  # clipped, zero-area boxes dropped
        got = {"boxes": d.boxes, "classes": d.classes.astype(int), "scores": d.scores}
        n_raw = int(np.asarray(raw["num_detections"]).reshape(-1)[0])
        dropped += n_raw - len(d)
        truncated_at = (float(np.asarray(raw["detection_scores"]).reshape(-1)[n_raw - 1])
                        if n_raw >= nms.max_detections else None)
        per_image.append(pair_detections(ref, got, nms.max_detections, nms.score_threshold,
                                         truncated_at=truncated_at))
    ious = np.concatenate([p["ious"] for p in per_image] + [[]])
    diffs = np.concatenate([p["score_diffs"] for p in per_image] + [[]])
    summary = {
        "images": len(images),
        "tensorflow_detections": sum(p["ref"] for p in per_image),
        "tflite_detections": sum(p["got"] for p in per_image),
        "tflite_zero_area_dropped": dropped,  # op rows whose clipped box is empty
        "paired": int(len(ious)),
        "unpaired": sum(p["unpaired"] for p in per_image),
        "unpaired_not_borderline": sum(p["unpaired_hard"] for p in per_image),
        "min_iou": float(ious.min()) if len(ious) else None,
        "mean_iou": float(ious.mean()) if len(ious) else None,
        "max_score_diff": float(diffs.max()) if len(diffs) else None,
        "mean_score_diff": float(diffs.mean()) if len(diffs) else None,
    }
    summary["identical"] = bool(
        summary["unpaired_not_borderline"] == 0
        and (not len(ious) or (ious.min() >= FLOAT_MIN_IOU and diffs.max() <= FLOAT_MAX_SCORE_DIFF)))
    if strict and not summary["identical"]:
        raise ExportError(
            "the float32 TFLite model disagrees with TensorFlow: "
            f"min IoU {summary['min_iou']}, max score difference {summary['max_score_diff']}, "
            f"{summary['unpaired_not_borderline']} unpaired detections over {len(images)} images")
    return summary


def raw_agreement(source, detector, images: np.ndarray) -> dict:
    """--no-postprocess models: largest differences of the raw outputs against TensorFlow."""
    enc_diff, score_diff = 0.0, 0.0
    for image in images:
        x = ((image.astype(np.float32) - source.mean) / source.std)
        enc, scores = (np.asarray(t) for t in source.predict(x[None]))
        detector.invoke(detector.preprocess(image))
        raw = detector.raw_outputs()
        enc_diff = max(enc_diff, float(np.abs(raw["box_encodings"] - enc).max()))
        score_diff = max(score_diff, float(np.abs(raw["class_predictions"] - scores).max()))
    return {"images": len(images), "max_box_encoding_diff": enc_diff,
            "max_score_diff": score_diff}
