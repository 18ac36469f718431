"""The in-memory detection dataset every reader returns, and ``load_dataset`` that picks the reader.

Boxes are float32 normalised ``[ymin, xmin, ymax, xmax]``; classes are contiguous labels 1..K
(0 is background inside the models); ``category_ids[k - 1]`` maps label k back to the source's
category id, so evaluation speaks the original ids. Problems that are fixed or skipped while
reading (clipped boxes, missing files, ...) are counted in ``warnings`` and logged once.
"""
from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from edge_runtime.images import DataError

log = logging.getLogger(__name__)


def _no_boxes():
    return np.zeros((0, 4), np.float32)


def _no_classes():
    return np.zeros((0,), np.int32)


@dataclass
class Example:
    """One image and its boxes.

    boxes: float32 [N, 4] normalised [ymin, xmin, ymax, xmax]; classes: int32 [N] in 1..K.
    areas: float32 [N] pixel areas as annotated (COCO 'area', used for the small/medium/large
    buckets) or None to use box areas. crowd_boxes / crowd_classes: [M, 4] / [M] COCO
    ``iscrowd`` regions, never trained on but kept so evaluation ignores detections in them.
    """
    image_id: int
    file_name: str  # absolute path ("" if encoded is set)
    height: int
    width: int
    boxes: np.ndarray
    classes: np.ndarray
    encoded: bytes | None = None  # image bytes (TFRecord sources)
    areas: np.ndarray | None = None
    crowd_boxes: np.ndarray = field(default_factory=_no_boxes)
    crowd_classes: np.ndarray = field(default_factory=_no_classes)


@dataclass
class DetectionDataset:
    examples: list[Example]
    category_ids: list[int]  # COCO category id of label k is category_ids[k - 1]
    category_names: list[str]
    source: str
    warnings: collections.Counter = field(default_factory=collections.Counter)

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def __len__(self) -> int:
        return len(self.examples)

    def to_coco_gt(self) -> dict:
        """COCO ground truth (pixel [x, y, w, h], original category ids) for pycocotools."""
        images, annotations = [], []
        for e in self.examples:
            images.append({"id": int(e.image_id), "width": int(e.width), "height": int(e.height),
                           "file_name": os.path.basename(e.file_name) or f"{e.image_id}"})
            scale = np.array([e.height, e.width, e.height, e.width], np.float64)
            for boxes, classes, crowd in ((e.boxes, e.classes, 0),
                                          (e.crowd_boxes, e.crowd_classes, 1)):
                px = np.asarray(boxes, np.float64).reshape(-1, 4) * scale
                for i, (y0, x0, y1, x1) in enumerate(px.tolist()):
                    w, h = x1 - x0, y1 - y0
                    area = float(e.areas[i]) if e.areas is not None and not crowd else w * h
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": int(e.image_id),
                        "category_id": int(self.category_ids[int(classes[i]) - 1]),
                        "bbox": [round(x0, 3), round(y0, 3), round(w, 3), round(h, 3)],
                        "area": round(area, 3), "iscrowd": crowd})
        categories = [{"id": int(c), "name": n, "supercategory": ""}
                      for c, n in zip(self.category_ids, self.category_names)]
        return {"images": images, "annotations": annotations, "categories": categories}


def summarize_warnings(ds: DetectionDataset) -> str:
    """One line with the count of each problem found while reading ``ds``."""
    if not ds.warnings:
        return "no problems found"
    return "; ".join(f"{n} x {problem}" for problem, n in ds.warnings.most_common())


def log_warnings(ds: DetectionDataset) -> None:
    """Logs all of the dataset's problems as one line (never one line per bad box)."""
    if ds.warnings:
        log.warning("%s: %s", ds.source, summarize_warnings(ds))


def _coco_json_for_root(root: str, split: str) -> str | None:
    for name in (f"instances_{split}.json", f"instances_{split}2017.json"):
        path = os.path.join(root, "annotations", name)
        if os.path.isfile(path):
            return path
    return None


def load_dataset(data: str, split: str = "train", images_dir: str | None = None,
                 label_map: str | dict | None = None, allow_outside_root: bool | None = None
                 ) -> DetectionDataset:
    """Reads a detection dataset from any supported source.

    ``data`` is one of: a COCO-layout root directory (``annotations/instances_{split}.json``,
    images in ``{split}/``, ``images/{split}/``, ``{split}2017/`` or ``images/``); a COCO
    annotation ``.json`` file (images found as above, or in ``images_dir``); a TF Object
    Detection API TFRecord file or glob (``label_map``: a .pbtxt path or {id: name}; by default
    ``label_map.pbtxt`` beside the records if present). ``{split}`` inside ``data`` is replaced
    by ``split``. COCO file names that leave the image folder are skipped and counted unless
    ``allow_outside_root`` (None: ``FRONTIER_ALLOW_OUTSIDE_ROOT=1`` in the environment). Raises DataError naming the file and the problem.
    """
    data = os.path.expanduser(str(data).replace("{split}", split))
    if os.path.isdir(data):
        json_path = _coco_json_for_root(data, split)
        if json_path is None:
            raise DataError(
                f"{data}: not a COCO dataset root: neither annotations/instances_{split}.json "
                f"nor annotations/instances_{split}2017.json exists")
        from train.data.coco import read_coco
        ds = read_coco(json_path, split, images_dir, allow_outside_root)
    elif data.lower().endswith(".json"):
        from train.data.coco import read_coco
        ds = read_coco(data, split, images_dir, allow_outside_root)
    else:
        from train.data.tfrecord import read_tfrecord
        ds = read_tfrecord(data, label_map)
    log_warnings(ds)
    return ds
