"""Checks run on every exported model before it replaces ``--out``.

* the operators: exactly one ``TFLite_Detection_PostProcess`` for SSD's ``--nms fused``,
  else none (built-in NMS, or ``--no-postprocess``); no Flex (Select TF) op, listed by LiteRT
  itself;
* agreement with TensorFlow on real images: TensorFlow and TFLite detections of the same class
  are paired by overlap (IoU >= 0.5), the best overlaps first. For float32 the pairs must be
  identical (IoU >= 0.9999, scores within 1e-4, nothing unpaired except detections tied at the
  cut-off or at the NMS IoU threshold); quantized models only report how close they come.
  Like is compared with like:
  TensorFlow's ``batch_multiclass_nms`` clips and drops zero-area boxes, the fused op does
  neither, so the TFLite side is the op's output as edge_runtime parses it (clipped, zero-area
  boxes dropped), never the op's raw rows.
"""
from __future__ import annotations

import numpy as np

from convert.postprocess_op import OP_NAME
from convert.sources import ExportError

FLOAT_MIN_IOU, FLOAT_MAX_SCORE_DIFF = 0.9999, 1e-4


def check_operators(model_path: str, path: str, fused: bool) -> list[str]:
    """The model's operators (XNNPACK off, so none is hidden inside a delegate node).
    ``fused``: the model must end in exactly one ``TFLite_Detection_PostProcess`` (SSD's
    ``--nms fused``), else hold none (built-in NMS, ``--no-postprocess``)."""
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
    count = ops.count(OP_NAME)
    if fused and count != 1:
        raise ExportError(f"{path}: expected exactly one {OP_NAME} op, found {count}")
    if not fused and count:
        raise ExportError(f"{path}: expected no {OP_NAME} op (built-in NMS or "
                          f"--no-postprocess), found {count}")
    return ops


def _iou(box, boxes):
    y0 = np.maximum(box[0], boxes[:, 0]); x0 = np.maximum(box[1], boxes[:, 1])
    y1 = np.minimum(box[2], boxes[:, 2]); x1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), (union == 0) * 1.0)


def pair_detections(ref, got, max_detections: int, score_threshold: float, tol=1e-4,
                    truncated_at: float | None = None, iou_threshold: float | None = None,
                    iou_tol: float = 1e-3, min_iou: float = 0.5) -> dict:
    """Pairs one image's detections. ``ref``/``got``: dicts of boxes [N, 4], classes [N],
    scores [N] (sorted by score); a pair overlaps by ``min_iou`` at least. An unpaired detection is "borderline", not a disagreement,
    when a tie decided it: its score within ``tol`` of the cut-off (the score threshold, or the
    other list's lowest score when it is full), or (given the NMS ``iou_threshold``) the other
    list holds a same-class detection scoring at least as high (within ``tol``) whose IoU with
    it is within ``iou_tol`` of the threshold — or above it, when that one is itself a
    borderline extra, or an unpaired detection of the same score (within ``tol``): the two tied
    and each NMS kept the other (shifted boxes on a flat background score the same).
    ``truncated_at``: the lowest score of the op's list when it was full
    before zero-area boxes were dropped (the lists are then shorter than ``max_detections``
    but were still cut there)."""
    # best overlaps first: a detection whose own partner is missing (cut off, or dropped by an
    # NMS tie) must not take the partner of another one it merely overlaps
    candidates = []
    for i in range(len(ref["scores"])):
        same = np.flatnonzero(got["classes"] == ref["classes"][i])
        if len(same):
            overlaps = _iou(ref["boxes"][i], got["boxes"][same])
            candidates += [(-float(o), i, int(j)) for o, j in zip(overlaps, same) if o >= min_iou]
    paired = {"ref": np.zeros(len(ref["scores"]), bool), "got": np.zeros(len(got["scores"]), bool)}
    ious, score_diffs = [], []
    for neg_iou, i, j in sorted(candidates):
        if not paired["ref"][i] and not paired["got"][j]:
            paired["ref"][i] = paired["got"][j] = True
            ious.append(-neg_iou)
            score_diffs.append(abs(float(ref["scores"][i]) - float(got["scores"][j])))

    lists = {"ref": ref, "got": got}
    other = {"ref": "got", "got": "ref"}

    def cutoff(name):
        d = lists[name]
        if len(d["scores"]) >= max_detections:
            return max(score_threshold, float(d["scores"].min()))
        return max(score_threshold, truncated_at if truncated_at is not None else 0.0)

    explained = {name: ~paired[name] & (lists[name]["scores"] <= cutoff(other[name]) + tol)
                 for name in lists}
    changed = iou_threshold is not None
    while changed:  # NMS ties, and what a tie's extra detection suppressed in its own list
        changed = False
        for name, d in lists.items():
            o, on = lists[other[name]], other[name]
            for i in np.flatnonzero(~paired[name] & ~explained[name]):
                near = (o["classes"] == d["classes"][i]) & (o["scores"] >= d["scores"][i] - tol)
                if not near.any():
                    continue
                overlaps = np.zeros(len(o["scores"]))
                overlaps[near] = _iou(d["boxes"][i], o["boxes"][near])
                tie = near & (np.abs(overlaps - iou_threshold) <= iou_tol)
                cascade = near & explained[on] & (overlaps >= iou_threshold - iou_tol)
                # equal scores, NMS kept a different one of the two on each side
                swap = (near & ~paired[on] & (o["scores"] <= d["scores"][i] + tol)
                        & (overlaps >= iou_threshold - iou_tol))
                if tie.any() or cascade.any() or swap.any():
                    explained[name][i] = changed = True
    return {"ious": ious, "score_diffs": score_diffs,
            "unpaired": int(sum((~p).sum() for p in paired.values())),
            "unpaired_hard": int(sum((~paired[n] & ~explained[n]).sum() for n in lists)),
            "ref": len(ref["scores"]), "got": len(got["scores"])}


def agreement(source, detector, images: np.ndarray, strict: bool) -> dict:
    """Runs TensorFlow (``source.detect``) and the TFLite ``detector`` on ``images`` (uint8
    ``[n, M, M, 3]``) and summarises how their detections pair up (see module docstring).
    ``strict``: raise ExportError unless they are identical within the float tolerances."""
    nms = source.nms
    per_image, exact, dropped = [], [], 0
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
        args = (ref, got, nms.max_detections, nms.score_threshold)
        kw = dict(truncated_at=truncated_at, iou_threshold=nms.iou_threshold)
        per_image.append(pair_detections(*args, **kw))
        # identical: every detection has a near-identical partner, or a tie explains why not
        # (pairs at IoU >= 0.5 would let a tie's extra box stand in for a missing one)
        exact.append(pair_detections(*args, **kw, min_iou=FLOAT_MIN_IOU))
    ious = np.concatenate([p["ious"] for p in per_image] + [[]])
    diffs = np.concatenate([p["score_diffs"] for p in per_image] + [[]])
    exact_diffs = np.concatenate([p["score_diffs"] for p in exact] + [[]])
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
        "without_identical_partner": sum(p["unpaired_hard"] for p in exact),
    }
    summary["identical"] = bool(summary["without_identical_partner"] == 0 and (
        not len(exact_diffs) or exact_diffs.max() <= FLOAT_MAX_SCORE_DIFF))
    if strict and not summary["identical"]:
        raise ExportError(
            "the float32 TFLite model disagrees with TensorFlow: "
            f"{summary['without_identical_partner']} detections over {len(images)} images "
            f"without an identical partner (IoU >= {FLOAT_MIN_IOU}, not explained by a tie at "
            f"the score or NMS cut-off); min IoU {summary['min_iou']}, max score difference "
            f"{summary['max_score_diff']}")
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
