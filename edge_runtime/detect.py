"""``python -m edge_runtime detect``: detections on image files, as COCO-style JSON and
annotated images."""
from __future__ import annotations

import glob
import os

import cv2

from edge_runtime.draw import draw_detections
from edge_runtime.files import write_bytes
from edge_runtime.images import DataError, read_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_paths(args: list[str]) -> list[str]:
    """The image files that ``args`` name, in order, each once: a file as given; a folder: its
    files ending in one of IMAGE_EXTENSIONS (any case; sorted, not recursive); a glob pattern
    (quoted, so that we expand it): its matches, sorted, each as if given here. A folder or
    pattern that gives no image is a ValueError naming it."""
    paths = []
    for arg in args:
        if os.path.isdir(arg):
            found = sorted(os.path.join(arg, name) for name in os.listdir(arg)
                           if name.lower().endswith(IMAGE_EXTENSIONS)
                           and os.path.isfile(os.path.join(arg, name)))
            if not found:
                raise ValueError(f"{arg}: no image file ({', '.join(IMAGE_EXTENSIONS)}) in "
                                 "this folder")
        elif not os.path.exists(arg) and any(c in arg for c in "*?["):
            matches = sorted(glob.glob(arg))
            found = image_paths(matches) if matches else []
            if not found:
                raise ValueError(f"{arg}: no image file matches this pattern")
        else:  # a file, or a missing one: detect_images reports it
            found = [arg]
        paths += found
    return list(dict.fromkeys(paths))


def annotated_names(paths: list[str]) -> dict[str, str]:
    """{input path: file name of its annotated image}, all distinct, from the names alone
    (the same inputs always give the same names): ``<stem>_detections.jpg``; inputs whose stems
    clash (``a/img.jpg`` and ``b/img.jpg``; ``img.jpg`` and ``img.png``) get the folders that
    tell them apart, below their common folder, and their extension if that is what differs:
    ``a_img_detections.jpg``, ``b_img_detections.jpg``, ``img_png_detections.jpg``. Names still
    equal after that (``a/img.jpg`` made ``a_img`` against an ``a_img.jpg``) take ``_2``,
    ``_3``, ... in input order. Compared without case (case-insensitive file systems)."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(os.path.splitext(os.path.basename(path))[0].lower(), []).append(path)
    stems = {}
    for group in groups.values():
        if len(group) == 1:
            stems[group[0]] = os.path.splitext(os.path.basename(group[0]))[0]
            continue
        full = [os.path.abspath(p) for p in group]
        top = os.path.commonpath([os.path.dirname(p) for p in full])
        for path, absolute in zip(group, full):
            folders = os.path.relpath(os.path.dirname(absolute), top).split(os.sep)
            stem, ext = os.path.splitext(os.path.basename(path))
            stems[path] = "_".join([f for f in folders if f not in (".", "")] + [stem])
        same = {}
        for path in group:
            same.setdefault(stems[path].lower(), []).append(path)
        for clash in same.values():
            if len(clash) > 1:  # the same folder: the extension tells them apart
                for path in clash:
                    stems[path] += "_" + os.path.splitext(path)[1].lstrip(".")
    names, taken = {}, set()
    for path in paths:
        name, n = f"{stems[path]}_detections.jpg", 1
        while name.lower() in taken:
            n += 1
            name = f"{stems[path]}_{n}_detections.jpg"
        taken.add(name.lower())
        names[path] = name
    return names


def detect_images(detector, paths, out_dir: str | None = None, score_threshold: float = 0.5,
                  progress: bool = True) -> tuple[list[dict], dict]:
    """Runs ``detector`` on each image file. Returns (results, errors).

    results: one dict per detection -- ``file_name``, ``image_id`` (position in ``paths``),
    ``category_id`` (from the model's metadata, else the 0-based class + 1), ``label``,
    ``bbox`` [x, y, width, height] in pixels, ``score``. errors: {path: message} for images
    that could not be read (the others are still processed). ``out_dir``: each image with its
    detections drawn, named by :func:`annotated_names`.
    """
    from tqdm import tqdm

    category_ids = detector.metadata.get("category_ids")
    results, errors = [], {}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        names = annotated_names(paths)
    for i, path in enumerate(tqdm(paths, desc="detecting", unit="img", disable=not progress)):
        try:
            image = read_image(path)
        except DataError as e:
            errors[path] = str(e)
            continue
        h, w = image.shape[:2]
        d = detector.detect(image, score_threshold)
        for (x0, y0, x1, y1), c, s in zip(d.pixel_boxes(h, w), d.classes, d.scores):
            results.append({
                "file_name": path, "image_id": i,
                "category_id": int(category_ids[c]) if category_ids else int(c) + 1,
                "label": detector.label(int(c)),
                "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
                         round(float(y1 - y0), 2)],
                "score": round(float(s), 5)})
        if out_dir:
            drawn = cv2.cvtColor(draw_detections(image, d, detector.label), cv2.COLOR_RGB2BGR)
            write_bytes(os.path.join(out_dir, names[path]), cv2.imencode(".jpg", drawn)[1])
    return results, errors
