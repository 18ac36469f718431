"""An ensemble of trained runs as one detector (paper Sec. 4.2; desktop only, no export).

``combine="proposals"`` (two-stage members; He et al. 2016, Appendix A): every member's RPN
proposals are mapped to the image and pooled into one set; every member's box classifier
scores and refines every proposal of the pool; class scores and per-class boxes are averaged
over the members; then one per-class NMS (the first member's settings). ``combine=
"detections"`` (any members, SSD included): each member's own detections, merged per class
(``merge``: nms or wbf, train/ensemble/combine.py). ``multicrop``: the above on the whole
image and on each crop of the spec (train/ensemble/multicrop.py), mapped back and merged.

Members are reached through the detector contract only (``detect``; ``propose`` and
``classify`` of two-stage models; train/meta_architectures/base.py, two_stage.py).

Shape shorthand: M members, P = M x N pooled proposals (N = a member's ``max_proposals``),
K classes; boxes normalised (ymin, xmin, ymax, xmax), to the image unless said otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from train.core.post_processing import batch_multiclass_nms
from train.ensemble import multicrop
from train.ensemble.combine import merge


class EnsembleError(ValueError):
    """Bad members or options, found before any evaluation starts (exit 2)."""


@dataclasses.dataclass
class Member:
    name: str
    run_dir: str
    model: object  # a DetectionModel
    labels: dict  # labels.json: category_ids, category_names

    @property
    def two_stage(self) -> bool:
        return self.model.meta_architecture != "ssd"


def meta_architecture(run: str) -> str:
    """What a run's config.yaml names (ssd when it names none, as the config does)."""
    import yaml

    with open(os.path.join(run, "config.yaml")) as f:
        return ((yaml.safe_load(f) or {}).get("model") or {}).get("meta_architecture") or "ssd"


def check_runs(run_dirs, combine: str) -> list[dict]:
    """Reads each run's config.yaml and labels.json without building anything: a run that does
    not exist, labels that differ from the first member's, or a one-stage member under
    ``combine="proposals"`` -> EnsembleError naming the run. Returns the labels."""
    if not run_dirs:
        raise EnsembleError("no member runs given (--runs A,B,...)")
    if combine not in ("proposals", "detections"):
        raise EnsembleError(f"--combine must be proposals or detections, got {combine!r}")
    if len(set(run_dirs)) != len(run_dirs):
        raise EnsembleError(f"a run is listed twice in --runs: {','.join(run_dirs)}")
    labels = []
    for run in run_dirs:
        paths = [os.path.join(run, f) for f in ("config.yaml", "labels.json")]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise EnsembleError(f"{run}: not a trained run ({missing[0]} not found)")
        with open(paths[1]) as f:
            lab = json.load(f)
        if labels and (lab.get("category_ids"), lab.get("category_names")) != (
                labels[0].get("category_ids"), labels[0].get("category_names")):
            raise EnsembleError(f"{run}: labels {lab.get('category_names')} / category ids "
                                f"{lab.get('category_ids')} differ from {run_dirs[0]}'s "
                                f"{labels[0].get('category_names')} / {labels[0].get('category_ids')}")
        arch = meta_architecture(run)
        if combine == "proposals" and arch == "ssd":
            raise EnsembleError(f"{run}: an ssd model has no proposals; --combine proposals "
                                "takes faster_rcnn and rfcn members (or use --combine "
                                "detections)")
        labels.append(lab)
    return labels


def load_members(run_dirs, combine: str, num_proposals: int | None = None,
                 image_size: int | None = None) -> list[Member]:
    """``num_proposals``: two-stage members' proposals per image (default: each config's);
    ``image_size``: every member's input resolution (as ``train evaluate --image-size``)."""
    from train.evaluate import load_run

    check_runs(run_dirs, combine)
    members = []
    for run in run_dirs:
        two_stage = meta_architecture(run) != "ssd"
        _, labels, model, _ = load_run(run, num_proposals=num_proposals if two_stage else None,
                                       image_size=image_size)
        members.append(Member(os.path.basename(os.path.normpath(run)), run, model, labels))
    return members


class Ensemble:
    """``detect(image)``: RGB uint8 ``[h, w, 3]`` -> (boxes ``[n, 4]``, scores ``[n]``,
    classes ``[n]`` in 1..K), the procedure of the module docstring."""

    def __init__(self, members: list[Member], combine: str = "proposals", merge_method: str = "nms",
                 multicrop_spec: str | None = None):
        if combine == "proposals" and not all(m.two_stage for m in members):
            raise EnsembleError("--combine proposals needs two-stage members")
        self.members, self.combine, self.merge_method = members, combine, merge_method
        self.windows = multicrop.windows(multicrop_spec)
        nms = members[0].model.nms if members[0].two_stage else None
        self.iou_threshold = nms["iou_threshold"] if nms else 0.6
        self.max_detections = nms["max_total_detections"] if nms else 100
        self._detect = [tf.function(m.model.detect) for m in members]
        self._propose = [tf.function(m.model.propose) for m in members if m.two_stage]
        self._classify = [tf.function(m.model.classify) for m in members if m.two_stage]

    @property
    def evaluations_per_image(self) -> int:
        """Network evaluations of one image: members x (whole image + crops)."""
        return len(self.members) * len(self.windows)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = []
        for i, window in enumerate(self.windows):
            piece, exact = multicrop.crop(image, window) if i else (image, self.windows[0])
            b, s, c = self.detect_whole(piece)
            if i:
                keep = ~multicrop.cut_by_crop(b, exact)
                b, s, c = multicrop.to_image(b[keep], exact), s[keep], c[keep]
            parts.append((b, s, c))
        if len(parts) == 1:
            return parts[0]
        return merge(*(np.concatenate(x) for x in zip(*parts)), method=self.merge_method,
                     iou_threshold=self.iou_threshold, max_detections=self.max_detections,
                     sources=len(parts))

    def detect_whole(self, image: np.ndarray):
        """The ensemble on one image (or crop), no multicrop."""
        if self.combine == "proposals":
            return self._numpy(self.proposals_predictions(image, nms=True))
        outs = [self._member_detect(i, image) for i in range(len(self.members))]
        if len(outs) == 1:
            return outs[0]
        return merge(*(np.concatenate(x) for x in zip(*outs)), method=self.merge_method,
                     iou_threshold=self.iou_threshold, max_detections=self.max_detections,
                     sources=len(outs))

    def _member_detect(self, i: int, image: np.ndarray):
        canvas, window = self.members[i].model.image_resizer.resize_numpy(image)
        out = self._detect[i](tf.constant(canvas[None], tf.float32), tf.constant(window[None]))
        return self._numpy(out)

    @staticmethod
    def _numpy(out):
        n = int(out["num_detections"][0])
        return (out["boxes"][0, :n].numpy().astype(np.float64), out["scores"][0, :n].numpy(),
                out["classes"][0, :n].numpy())

    def proposals_predictions(self, image: np.ndarray, nms: bool = False) -> dict:
        """The pooled-proposal procedure on one image: ``proposals [P, 4]`` (each member's
        valid ones, the rest zero), ``valid [P]``, averaged ``scores [P, K]`` and ``boxes
        [P, K, 4]``; with ``nms`` the per-class NMS of those (``postprocess``'s output)."""
        prepared, pooled, valid = [], [], []
        for m, propose in zip(self.members, self._propose):
            canvas, window = m.model.image_resizer.resize_numpy(image)
            scale = np.tile(window, 2).astype(np.float32)
            p = propose(tf.constant(canvas[None], tf.float32), tf.constant(window[None]))
            n = int(p["num_proposals"][0])
            boxes = p["proposals"][0].numpy() / scale
            pooled.append(boxes)
            valid.append(np.arange(len(boxes)) < n)
            prepared.append((p["state"], scale))
        proposals = np.concatenate(pooled).astype(np.float32)
        valid = np.concatenate(valid)
        proposals[~valid] = 0.0
        scores, boxes = 0.0, 0.0
        for (state, scale), classify in zip(prepared, self._classify):
            out = classify(state, tf.constant((proposals * scale)[None]))
            scores = scores + out["scores"][0].numpy()
            boxes = boxes + out["boxes"][0].numpy() / scale
        k = len(self.members)
        scores = scores / k * valid[:, None]  # pooled padding finds nothing
        result = {"proposals": proposals, "valid": valid, "scores": scores, "boxes": boxes / k}
        if nms:
            nms_args = dict(self.members[0].model.nms)
            return batch_multiclass_nms(tf.constant(result["boxes"][None]),
                                        tf.constant(result["scores"][None]), **nms_args)
        return result
