"""Ensembles beside the sweep: the ``eval.json`` of ``python -m train ensemble`` as report points.

An ensemble is one more (time, AP) point: its median ms per image is the whole procedure (every
member on the image and on each crop, then the merge; batch 1), so it joins the cells' frontier
(the paper's ensemble is "an extreme point on the speed/accuracy trade-off curves"). The file's
schema is train/ensemble/evaluate.py's; a file that breaks it is listed in the report's log
with the key at fault, never fatal.
"""
from __future__ import annotations

import json
import os

METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
           "AR_small", "AR_medium", "AR_large")
ALONE = ("AP", "AP50", "AP_small", "AR100", "AR_small")
COMBINE, MERGE = ("proposals", "detections"), ("nms", "wbf")


class EnsembleFileError(ValueError):
    """The file is not a ``train ensemble`` eval.json; the message names the key."""


def _is(v, kind):
    return isinstance(v, kind) and not isinstance(v, bool)


def _metrics(d, keys, where):
    for k in keys:
        v = d.get(k)
        if not _is(v, (int, float)) or not (v == -1 or 0 <= v <= 1):
            raise EnsembleFileError(f"{where}{k} must be in [0, 1] (or -1), got {v!r}")
    ms = d.get("ms_per_image")
    if not isinstance(ms, dict) or not all(_is(ms.get(k), (int, float)) and ms[k] > 0
                                           for k in ("median", "p90")):
        raise EnsembleFileError(f"{where}ms_per_image must be {{median, p90}} > 0, got {ms!r}")


def validate(d) -> dict:
    """Checks one parsed eval.json; returns it or raises EnsembleFileError."""
    if not isinstance(d, dict) or not isinstance(d.get("ensemble"), dict):
        raise EnsembleFileError("no \"ensemble\" object (write one with `python -m train "
                                "ensemble ... --out DIR`)")
    _metrics(d, METRICS, "")
    for key, kind in (("per_category_AP", list), ("num_images", int), ("num_detections", int),
                      ("coco_summary", str), ("split", str), ("data", str)):
        if not _is(d.get(key), kind):
            raise EnsembleFileError(f"{key} must be {kind.__name__}, got {d.get(key)!r}")
    e = d["ensemble"]
    members = e.get("members")
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str) for m in members):
        raise EnsembleFileError("ensemble.members must be a non-empty list of {name, run, ...}")
    for key, allowed in (("combine", COMBINE), ("merge", MERGE)):
        if e.get(key) not in allowed:
            raise EnsembleFileError(f"ensemble.{key} must be one of {allowed}, got "
                                    f"{e.get(key)!r}")
    for key, kind in (("multicrop", str), ("crops_per_image", int),
                      ("network_evaluations_per_image", int), ("timing", dict)):
        if not _is(e.get(key), kind):
            raise EnsembleFileError(f"ensemble.{key} must be {kind.__name__}, got "
                                    f"{e.get(key)!r}")
    if e.get("selection") is not None and not isinstance(e["selection"], dict):
        raise EnsembleFileError("ensemble.selection must be null or an object")
    alone = e.get("members_alone")
    if alone is not None:
        if not isinstance(alone, dict) or not alone:
            raise EnsembleFileError("ensemble.members_alone must be null or {member: scores}")
        for name, s in alone.items():
            if not isinstance(s, dict):
                raise EnsembleFileError(f"ensemble.members_alone.{name} must be an object")
            _metrics(s, ALONE, f"ensemble.members_alone.{name}.")
    return d


def load_ensembles(paths) -> tuple[list[dict], list[tuple[str, str]]]:
    """-> (ensembles: the parsed files + "_file", problems: [(file, message)])."""
    out, problems = [], []
    for path in paths:
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append((path, f"skipped: unreadable ensemble eval.json ({e})"))
            continue
        try:
            out.append(dict(validate(d), _file=path))
        except EnsembleFileError as e:
            problems.append((path, f"skipped: not a `train ensemble` eval.json: {e}"))
    return out, problems


def label(ens: dict) -> str:
    """'ensemble of 3 (+2x2:0.6 multicrop)', 'ensemble of 3' or, when `train ensemble` was given
    --image-size, 'ensemble of 3 at 300' (the same members at two resolutions are two points)."""
    e = ens["ensemble"]
    crop = "" if e["multicrop"] == "none" else f" (+{e['multicrop']} multicrop)"
    size = f" at {e['image_size']}" if e.get("image_size") else ""
    return f"ensemble of {len(e['members'])}{size}{crop}"


def file_name(ens: dict) -> str:
    """``folder/eval.json``: every `train ensemble` result is called eval.json, its folder
    tells them apart."""
    path = os.path.normpath(ens["_file"])
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def point(ens: dict) -> tuple[float, float]:
    """(median ms per image, AP): where the ensemble sits among the cells."""
    return ens["ms_per_image"]["median"], ens["AP"]
