"""Generates the bundled synthetic COCO-format detection dataset ("shapes").

    python -m train.data.generate --size small --out data/shapes_small [--seed 0] [--workers N]

Layout written (atomically: built in ``OUT.tmp-*`` next to OUT, then renamed)::

    OUT/annotations/instances_train.json   OUT/train/000000.jpg ...
    OUT/annotations/instances_val.json     OUT/val/000000.jpg ...
    OUT/dataset.json                       what was generated (size, seed, counts, version)

Re-running with the same size and seed on a complete OUT does nothing; a different size or
seed replaces a generated OUT; a directory that this script did not make is never touched.
Images are a pure function of (seed, split, index): the output is byte-identical whatever
``--workers`` is.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile

import cv2

from edge_runtime.images import DataError
from train.data.shapes import CATEGORIES
from train.data.synthetic import SPLITS, render_image, size_bucket

SIZES = {"tiny": (24, 8), "small": (2000, 300), "large": (12000, 1000)}  # (train, val) images
GENERATOR = "frontier-synthetic-shapes"
VERSION = 1  # bump whenever the images or annotations a seed produces change
MANIFEST = "dataset.json"


def _render_and_save(job: tuple[int, str, int, str]) -> dict:
    """Worker: renders one image, writes its JPEG, returns its COCO image entry + annotations."""
    seed, split, index, split_dir = job
    img, anns, quality = render_image(seed, split, index)
    file_name = f"{index:06d}.jpg"
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {split} image {index}")
    with open(os.path.join(split_dir, file_name), "wb") as f:
        f.write(buf.tobytes())
    return {"image": {"id": index + 1, "file_name": file_name, "width": img.shape[1],
                      "height": img.shape[0]},
            "annotations": [(a.category_id, list(a.bbox), a.area) for a in anns]}


def _worker_init():
    cv2.setNumThreads(1)  # parallelism comes from processes; avoid oversubscribing the cores


def _coco_json(records: list[dict], split: str, seed: int) -> dict:
    images, annotations = [], []
    for rec in records:
        images.append(rec["image"])
        for category_id, bbox, area in rec["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": rec["image"]["id"],
                                "category_id": category_id, "bbox": bbox, "area": area,
                                "iscrowd": 0})
    return {"info": {"description": f"Frontier synthetic shapes, {split} split, seed {seed}",
                     "version": str(VERSION)},
            "licenses": [],
            "images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": name, "supercategory": "shape"}
                           for i, name in enumerate(CATEGORIES)]}


def _is_complete(out: str, manifest: dict) -> bool:
    try:
        with open(os.path.join(out, MANIFEST)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return False
    if any(found.get(k) != manifest[k] for k in ("generator", "version", "size", "seed", "counts")):
        return False
    for split, n in manifest["counts"].items():
        if not os.path.isfile(os.path.join(out, "annotations", f"instances_{split}.json")):
            return False
        try:
            jpgs = [f for f in os.listdir(os.path.join(out, split)) if f.endswith(".jpg")]
        except OSError:
            return False
        if len(jpgs) != n:
            return False
    return True


def _is_generated(out: str) -> bool:
    try:
        with open(os.path.join(out, MANIFEST)) as f:
            return json.load(f).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _pool_context():
    # fork is fastest, but forking a process that has started TensorFlow's threads is unsafe.
    if "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def summary_line(stats: dict) -> str:
    """One line: image and object counts, and objects per COCO size bucket."""
    total = max(stats["objects"], 1)
    buckets = " / ".join(f"{b} {stats[b]} ({100 * stats[b] / total:.0f}%)"
                         for b in ("small", "medium", "large"))
    splits = " + ".join(f"{n} {s}" for s, n in stats["images"].items())
    return (f"{splits} images, {stats['objects']} objects ({stats['empty_images']} images "
            f"without objects): {buckets}")


def generate(out: str, size: str, seed: int = 0, workers: int | None = None,
             progress: bool = True, _counts: tuple[int, int] | None = None) -> dict:
    """Writes the synthetic dataset to ``out`` (see module doc); returns its manifest dict
    (with "stats": counts per split and per size bucket, and "skipped": True when ``out``
    already held exactly this dataset). ``_counts`` = (train, val) overrides the size (tests)."""
    if size not in SIZES:
        raise ValueError(f"unknown dataset size {size!r}; choose one of {', '.join(SIZES)}")
    counts = dict(zip(SPLITS, _counts or SIZES[size]))
    out = os.path.abspath(out)
    manifest = {"generator": GENERATOR, "version": VERSION, "size": size, "seed": seed,
                "counts": counts}
    if os.path.exists(out):
        if _is_complete(out, manifest):
            with open(os.path.join(out, MANIFEST)) as f:
                return {**json.load(f), "skipped": True}
        if not os.path.isdir(out) or (os.listdir(out) and not _is_generated(out)):
            raise DataError(f"{out}: exists and was not written by this generator (no "
                            f"{MANIFEST}); refusing to overwrite it. Choose another --out.")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(out) + ".tmp-", dir=parent)
    try:
        stats = _write_splits(tmp, seed, counts, workers, progress)
        manifest["stats"] = stats
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, "skipped": False}


def _write_splits(root: str, seed: int, counts: dict, workers: int | None, progress: bool) -> dict:
    from tqdm import tqdm

    os.makedirs(os.path.join(root, "annotations"))
    jobs = []
    for split, n in counts.items():
        os.makedirs(os.path.join(root, split))
        jobs += [(seed, split, i, os.path.join(root, split)) for i in range(n)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    bar = tqdm(total=len(jobs), desc="generating images", unit="img", disable=not progress,
               dynamic_ncols=True)
    if workers == 1:
        _worker_init()
        records = []
        for job in jobs:
            records.append(_render_and_save(job))
            bar.update()
    else:
        with _pool_context().Pool(workers, initializer=_worker_init) as pool:
            records = []
            for rec in pool.imap(_render_and_save, jobs, chunksize=8):  # ordered results
                records.append(rec)
                bar.update()
    bar.close()
    stats = {"images": dict(counts), "objects": 0, "empty_images": 0,
             "small": 0, "medium": 0, "large": 0}
    start = 0
    for split, n in counts.items():
        split_records = records[start:start + n]
        start += n
        coco = _coco_json(split_records, split, seed)
        with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump(coco, f, separators=(",", ":"))
        stats["empty_images"] += sum(not r["annotations"] for r in split_records)
        for ann in coco["annotations"]:
            stats[size_bucket(ann["area"])] += 1
        stats["objects"] += len(coco["annotations"])
    return stats


def _replace_dir(new: str, out: str) -> None:
    """Moves directory ``new`` to ``out``; an existing (generated or empty) ``out`` is replaced
    only after the new one is complete."""
    if not os.path.exists(out):
        os.rename(new, out)
        return
    old = tempfile.mkdtemp(prefix=os.path.basename(out) + ".old-", dir=os.path.dirname(out))
    os.rmdir(old)
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.data.generate",
        description="Generate the synthetic 'shapes' detection dataset in COCO format: "
                    f"{len(CATEGORIES)} categories ({', '.join(CATEGORIES)}) on textured and "
                    "photographic backgrounds, with occlusion, truncation, blur, noise and JPEG "
                    "artefacts. Deterministic for a given --size and --seed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="small",
                        help="number of images: " + ", ".join(
                            f"{k} = {a} train / {b} val" for k, (a, b) in SIZES.items()))
    parser.add_argument("--out", required=True,
                        help="output directory (created; replaced only if it holds another "
                             "generated dataset)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole dataset")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: all CPU cores); does not change output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        result = generate(args.out, args.size, args.seed, args.workers, progress=not args.quiet)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    if result["skipped"]:
        print(f"{out} already holds the complete '{args.size}' dataset (seed {args.seed}); "
              "nothing to do")
    print(f"{out}: {summary_line(result['stats'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
