"""COCO instances JSON -> DetectionDataset.

Validation is vectorised with numpy after one pass that pulls the fields out of the JSON, so
the 860k annotations of COCO 2017 train take seconds, not minutes. Structural problems
(malformed JSON, missing keys) raise DataError naming the file and the offending entry;
problems with single boxes or images are fixed or skipped and counted (see dataset.py).
"""
from __future__ import annotations

import collections
import os
import re

import numpy as np

from edge_runtime.coco import OUTSIDE_ROOT, inside_folder, outside_allowed, read_json
from edge_runtime.images import DataError
from train.data.dataset import DetectionDataset, Example, load_dataset, summarize_warnings

__all__ = ["read_coco", "load_dataset", "summarize_warnings", "Example", "DetectionDataset"]

# Counter keys: what happened to which data
CLIPPED = "box partly outside the image (clipped)"
OUTSIDE = "box entirely outside the image (dropped)"
EMPTY = "box with zero or negative width/height (dropped)"
NONFINITE = "box with NaN/inf coordinates (dropped)"
UNKNOWN_CATEGORY = "annotation with an unknown category id (dropped)"
UNKNOWN_IMAGE = "annotation of an unknown image id (dropped)"
CROWD = "crowd (iscrowd=1) region (not trained on, kept for evaluation)"
MISSING_FILE = "image file missing (example skipped)"


def _load_json(path: str) -> dict:
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: top level is a {type(doc).__name__}, expected a COCO object "
                        "with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise DataError(f"{path}: no '{key}' list at the top level (not a COCO instances "
                            "file?)")
        if not isinstance(doc[key], list):
            raise DataError(f"{path}: '{key}' is a {type(doc[key]).__name__}, expected a list")
    return doc


def _is_int(v) -> bool:  # and fits in int64, as the arrays below hold it
    return (isinstance(v, int) and not isinstance(v, bool) or (
        isinstance(v, float) and v.is_integer())) and abs(v) < 2**63


def _check_entries(path: str, doc: dict, section: str, keys: tuple[str, ...]) -> None:
    """Raises DataError for the first entry of ``doc[section]`` lacking or mistyping a key."""
    for i, entry in enumerate(doc[section]):
        if not isinstance(entry, dict):
            raise DataError(f"{path}: {section}[{i}] is not an object")
        for key in keys:
            if key not in entry:
                raise DataError(f"{path}: {section}[{i}] has no '{key}'")
            v = entry[key]
            if key == "bbox":
                if not (isinstance(v, list) and len(v) == 4
                        and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                                for c in v)):
                    raise DataError(f"{path}: {section}[{i}] 'bbox' is {v!r}, expected "
                                    "[x, y, width, height] numbers")
            elif key in ("file_name", "name"):
                if not isinstance(v, str) or not v:
                    raise DataError(f"{path}: {section}[{i}] '{key}' is {v!r}, expected a "
                                    "non-empty string")
            elif not _is_int(v) or (key in ("width", "height") and v <= 0):
                raise DataError(f"{path}: {section}[{i}] '{key}' is {v!r}, expected "
                                f"{'a positive' if key in ('width', 'height') else 'an'} integer")
        if section == "annotations":
            if entry.get("iscrowd", 0) not in (0, 1):
                raise DataError(f"{path}: {section}[{i}] 'iscrowd' is {entry['iscrowd']!r}, "
                                "expected 0 or 1")
            area = entry.get("area")
            if area is not None and (not isinstance(area, (int, float)) or isinstance(area, bool)):
                raise DataError(f"{path}: {section}[{i}] 'area' is {area!r}, expected a number")


def _unique_ids(path: str, section: str, ids: np.ndarray) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        raise DataError(f"{path}: {section} id {int(uniq[counts > 1][0])} is used more than once")


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``values`` in ``sorted_ids`` and whether each was found."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    pos = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == values


def _image_dir_candidates(json_path: str, split: str) -> list[str]:
    json_dir = os.path.dirname(os.path.abspath(json_path))
    roots = [json_dir]
    if os.path.basename(json_dir) == "annotations":
        roots.insert(0, os.path.dirname(json_dir))
    found = []
    for root in roots:
        for sub in (split, os.path.join("images", split), f"{split}2017", "images", ""):
            d = os.path.normpath(os.path.join(root, sub))
            if d not in found:
                found.append(d)
    return found


def _find_image_dir(json_path: str, split: str, file_names: list[str],
                    allow_outside: bool) -> str:
    """The candidate directory that holds the most of (a sample of) the listed images."""
    candidates = _image_dir_candidates(json_path, split)
    existing = [d for d in candidates if os.path.isdir(d)]
    if not file_names:
        return existing[0] if existing else candidates[0]
    sample = file_names[:: max(1, len(file_names) // 20)][:20]
    best, best_hits = None, 0
    for d in existing:
        hits = sum(os.path.isfile(os.path.join(d, f)) for f in sample
                   if allow_outside or inside_folder(d, f))
        if hits > best_hits:
            best, best_hits = d, hits
    if best is None:
        raise DataError(f"{json_path}: cannot find the images (e.g. {sample[0]!r}); tried "
                        + ", ".join(candidates) + "; pass images_dir=")
    return best


def _split_from_name(json_path: str, split: str) -> str:
    m = re.fullmatch(r"instances_(.+)\.json", os.path.basename(json_path))
    return m.group(1) if m else split


def _files_present(image_dir: str, file_names: list[str], inside: np.ndarray) -> np.ndarray:
    # one directory listing instead of 100k+ stat calls
    try:
        listing = {e.name for e in os.scandir(image_dir) if e.is_file()}
    except OSError:
        listing = set()
    return np.array([ok and (f in listing if "/" not in f and os.sep not in f
                             else os.path.isfile(os.path.join(image_dir, f)))
                     for f, ok in zip(file_names, inside)], bool)


def read_coco(json_path: str, split: str = "train", images_dir: str | None = None,
              allow_outside_root: bool | None = None) -> DetectionDataset:
    """Reads a COCO instances JSON file; images are looked up beside it (see load_dataset).
    File names that leave the image folder (absolute, or climbing out with ``..``) are skipped
    and counted unless ``allow_outside_root`` (None: $FRONTIER_ALLOW_OUTSIDE_ROOT)."""
    allow_outside_root = outside_allowed(allow_outside_root)
    json_path = os.path.abspath(json_path)
    doc = _load_json(json_path)
    warnings: collections.Counter = collections.Counter()

    _check_entries(json_path, doc, "categories", ("id", "name"))
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    cat_ids = np.array([c["id"] for c in cats], np.int64)
    if not len(cat_ids):
        raise DataError(f"{json_path}: 'categories' is empty")
    _unique_ids(json_path, "category", cat_ids)

    _check_entries(json_path, doc, "images", ("id", "file_name", "width", "height"))
    images = doc["images"]
    img_ids = np.array([im["id"] for im in images], np.int64)
    _unique_ids(json_path, "image", img_ids)
    widths = np.array([im["width"] for im in images], np.float64)
    heights = np.array([im["height"] for im in images], np.float64)

    anns = doc["annotations"]
    n = len(anns)
    try:  # fast path; on any problem, _check_entries finds and names the bad entry
        # numpy would take "5", 1.5 or True for an id and [[1], [2], [3], [4]] for a box
        if not ({type(a["image_id"]) for a in anns} | {type(a["category_id"]) for a in anns}
                <= {int} and {type(c) for a in anns for c in a["bbox"]} <= {int, float}
                and {type(a.get("area")) for a in anns} <= {int, float, type(None)}
                and {a.get("iscrowd", 0) for a in anns} <= {0, 1}):
            raise TypeError
        a_img = np.array([a["image_id"] for a in anns], np.int64).reshape(n)
        a_cat = np.array([a["category_id"] for a in anns], np.int64).reshape(n)
        a_box = np.array([a["bbox"] for a in anns], np.float64).reshape(n, 4)
        a_crowd = np.array([a.get("iscrowd", 0) for a in anns], np.int64).reshape(n) > 0
        a_area = np.array([a.get("area") or -1.0 for a in anns], np.float64).reshape(n)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        _check_entries(json_path, doc, "annotations", ("image_id", "category_id", "bbox"))
        try:  # integral floats (1.0) pass the checks: the slow way
            a_img, a_cat = (np.array([int(a[k]) for a in anns], np.int64).reshape(n)
                            for k in ("image_id", "category_id"))
            a_box = np.array([[float(c) for c in a["bbox"]] for a in anns],
                             np.float64).reshape(n, 4)
            a_crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool).reshape(n)
            a_area = np.array([float(a.get("area") or -1.0) for a in anns],
                              np.float64).reshape(n)
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{json_path}: malformed 'annotations' entries") from None

    keep = np.ones(n, bool)

    def drop(bad: np.ndarray, problem: str) -> None:
        bad = bad & keep
        if bad.any():
            warnings[problem] += int(bad.sum())
            keep[bad] = False

    order = np.argsort(img_ids)
    pos, found = _lookup(img_ids[order], a_img)
    img_index = order[pos] if len(img_ids) else pos
    drop(~found, UNKNOWN_IMAGE)
    label, found = _lookup(cat_ids, a_cat)  # cat_ids is sorted: position = label - 1
    drop(~found, UNKNOWN_CATEGORY)
    drop(~np.isfinite(a_box).all(1), NONFINITE)
    x0, y0, bw, bh = np.nan_to_num(a_box).T
    drop((bw <= 0) | (bh <= 0), EMPTY)
    W = widths[img_index] if len(img_ids) else np.zeros(n)
    H = heights[img_index] if len(img_ids) else np.zeros(n)
    cx0, cy0 = np.clip(x0, 0, W), np.clip(y0, 0, H)
    with np.errstate(over="ignore"):  # 1e308 + 1e308 is inf: clipped to the image
        cx1, cy1 = np.clip(x0 + bw, 0, W), np.clip(y0 + bh, 0, H)
        clipped = (np.abs(cx0 - x0) > 1e-3) | (np.abs(cy0 - y0) > 1e-3) | (
            np.abs(cx1 - x0 - bw) > 1e-3) | (np.abs(cy1 - y0 - bh) > 1e-3)
    drop((cx1 - cx0 <= 0) | (cy1 - cy0 <= 0), OUTSIDE)
    clipped &= keep
    if clipped.any():
        warnings[CLIPPED] += int(clipped.sum())
    crowd = keep & a_crowd
    if crowd.any():
        warnings[CROWD] += int(crowd.sum())

    split = _split_from_name(json_path, split)
    file_names = [im["file_name"] for im in images]
    image_dir = os.path.abspath(images_dir) if images_dir else _find_image_dir(
        json_path, split, file_names, allow_outside_root)
    if images_dir and not os.path.isdir(image_dir):
        raise DataError(f"{image_dir}: images_dir is not a directory")
    inside = np.array([allow_outside_root or inside_folder(image_dir, f) for f in file_names],
                      bool)
    present = _files_present(image_dir, file_names, inside)
    if (~inside).any():
        warnings[OUTSIDE_ROOT] += int((~inside).sum())
    if (inside & ~present).any():
        warnings[MISSING_FILE] += int((inside & ~present).sum())

    norm = np.stack([cy0 / np.maximum(H, 1), cx0 / np.maximum(W, 1),
                     cy1 / np.maximum(H, 1), cx1 / np.maximum(W, 1)], 1).astype(np.float32)
    with np.errstate(over="ignore"):  # an area past float32: inf, a large object either way
        area = np.where(a_area > 0, a_area, (cx1 - cx0) * (cy1 - cy0)).astype(np.float32)
    classes = (label + 1).astype(np.int32)
    # group the kept annotations by image, in the order of the JSON's images list
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(img_index[idx], kind="stable")]
    bounds = np.searchsorted(img_index[idx], np.arange(len(images) + 1))
    examples = []
    for i, im in enumerate(images):
        if not present[i]:
            continue
        mine = idx[bounds[i]:bounds[i + 1]]
        is_crowd = a_crowd[mine]
        obj, crw = mine[~is_crowd], mine[is_crowd]
        examples.append(Example(
            image_id=int(img_ids[i]), file_name=os.path.join(image_dir, file_names[i]),
            height=int(heights[i]), width=int(widths[i]), boxes=norm[obj], classes=classes[obj],
            areas=area[obj], crowd_boxes=norm[crw], crowd_classes=classes[crw]))
    return DetectionDataset(examples=examples, category_ids=[int(c) for c in cat_ids],
                            category_names=[str(c["name"]) for c in cats], source=json_path,
                            warnings=warnings)
