"""The tf.data input pipeline: decoded images in memory -> augmentation -> per-anchor targets.

Images are decoded once (OpenCV, several threads) and resized by the model's image resizer
(SSD: a square, ``train.cache_size`` or M; two-stage: shorter edge M, padded, with the true
window kept), so an epoch costs no JPEG decoding. The order of examples is a
pure function of (seed, element index): element ``e`` of the stream is example
``index_shuffle(e mod N, seed=(seed, e div N))``; resuming at step ``s`` therefore continues with
exactly the examples that the interrupted run would have seen next.
"""
from __future__ import annotations

import collections
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import tensorflow as tf

from train.data import augment
from edge_runtime.images import DataError, read_image as load_image

log = logging.getLogger(__name__)


@dataclass
class ImageCache:
    """Decoded, resized images and padded ground truth of a dataset.

    images: uint8 [N, H, W, 3] (image at the top left, zero padding below/right);
    windows: float32 [N, 2] (the image's height, width as fractions of H, W);
    boxes: float32 [N, G, 4] normalised to the image (not the padding); labels: int32 [N, G];
    counts: int32 [N] (valid boxes per image); examples: the N source examples kept.
    """
    images: np.ndarray
    windows: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    examples: list
    skipped: collections.Counter

    def __len__(self) -> int:
        return len(self.examples)


def _decode_resized(example, resizer):
    try:
        if example.encoded is not None:
            image = load_image(data=example.encoded, name=example.file_name or str(example.image_id))
        else:
            image = load_image(example.file_name)
    except DataError as e:
        return None, None, str(e)
    return (*resizer.resize_numpy(image), None)


def _largest(example, max_boxes: int):
    """Indices of the ``max_boxes`` largest boxes of ``example`` (in their original order)."""
    b = np.asarray(example.boxes, np.float32).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.sort(np.argsort(-area, kind="stable")[:max_boxes])


def cache_images(dataset, resizer, max_gb: float = 6.0, workers: int | None = None,
                 progress: bool = True, square_size: int = 0,
                 max_boxes: int | None = None) -> ImageCache:
    """Decodes every image of ``dataset`` with ``resizer`` (train.core.image_resizer); skips
    (and counts) bad ones. ``square_size``: a fixed-shape (SSD) cache at that size
    instead (augmentation crops then resize to M). ``max_boxes``: images with more ground-truth
    boxes keep the largest ones, counted in ``skipped``."""
    from train.core.image_resizer import FixedShapeResizer

    if square_size and not resizer.keep_aspect_ratio:
        resizer = FixedShapeResizer(square_size)
    examples = dataset.examples
    h, w = resizer.output_shape
    need_gb = len(examples) * h * w * 3 / 1e9
    if need_gb > max_gb:
        raise MemoryError(
            f"{dataset.source}: {len(examples)} images at {h}x{w} need {need_gb:.1f} GB in "
            f"memory, over train.max_cache_gb={max_gb}; raise it or lower train.cache_size")
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    images = np.zeros((len(examples), h, w, 3), np.uint8)
    windows = np.ones((len(examples), 2), np.float32)
    most = max([len(e.classes) for e in examples] + [1])
    width = min(most, max_boxes) if max_boxes else most
    boxes = np.zeros((len(examples), width, 4), np.float32)
    labels = np.zeros((len(examples), width), np.int32)
    counts = np.zeros(len(examples), np.int32)
    kept, skipped, n = [], collections.Counter(), 0
    with ThreadPoolExecutor(workers) as pool:
        iterator = pool.map(lambda e: _decode_resized(e, resizer), examples)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, total=len(examples), desc=f"decoding images ({h}x{w})",
                            unit="img", dynamic_ncols=True)
        for example, (image, window, error) in zip(examples, iterator):
            if image is None:
                skipped["unreadable image (skipped)"] += 1
                if skipped["unreadable image (skipped)"] <= 3:
                    log.warning("skipping %s", error)
                continue
            images[n], windows[n] = image, window
            index = np.arange(len(example.classes))
            if len(index) > width:
                skipped[f"boxes beyond train.max_boxes_per_image={width} (smallest dropped)"] += (
                    len(index) - width)
                index = _largest(example, width)
            k = len(index)
            boxes[n, :k] = np.asarray(example.boxes, np.float32).reshape(-1, 4)[index]
            labels[n, :k] = np.asarray(example.classes)[index]
            counts[n] = k
            kept.append(example)
            n += 1
    if skipped:
        log.warning("%s: %s", dataset.source, ", ".join(f"{v} {k}" for k, v in skipped.items()))
    if not kept:
        raise DataError(f"{dataset.source}: none of the {len(examples)} images could be read")
    return ImageCache(images[:n], windows[:n], boxes[:n], labels[:n], counts[:n], kept, skipped)


def _example_fn(cache: ImageCache):
    """Returns a tf function: example index -> (image uint8 [h, w, 3] without the padding,
    boxes [g, 4], labels [g])."""
    height, width = cache.images.shape[1:3]

    def fetch(i):
        k = cache.counts[i]
        h, w = (int(round(v)) for v in cache.windows[i] * (height, width))
        return cache.images[i, :h, :w], cache.boxes[i, :k], cache.labels[i, :k]

    def fn(index):
        image, boxes, labels = tf.numpy_function(fetch, [index], [tf.uint8, tf.float32, tf.int32],
                                                 stateful=False)
        image.set_shape([None, None, 3])
        boxes.set_shape([None, 4])
        labels.set_shape([None])
        return image, boxes, labels

    return fn


def pad_groundtruth(boxes, labels, max_boxes: int) -> dict:
    """``boxes [g, 4]``, ``labels [g]`` -> ``gt_boxes [G, 4]``, ``gt_labels [G]`` (zeros past
    ``num_gt``), ``num_gt []`` int32, with G = ``max_boxes`` (g > G keeps the first G)."""
    boxes, labels = boxes[:max_boxes], tf.cast(labels[:max_boxes], tf.int32)
    g = tf.shape(boxes)[0]
    return {"gt_boxes": tf.ensure_shape(tf.pad(boxes, [[0, max_boxes - g], [0, 0]]),
                                        [max_boxes, 4]),
            "gt_labels": tf.ensure_shape(tf.pad(labels, [[0, max_boxes - g]]), [max_boxes]),
            "num_gt": g}


def train_dataset(cache: ImageCache, model, *, batch_size: int, augment_config, seed: int = 0,
                  start_step: int = 0, global_batch: int | None = None, shard: int = 0,
                  num_shards: int = 1) -> tf.data.Dataset:
    """Infinite batches of (images float32 [b, H, W, 3] 0..255, targets): ``targets`` holds
    ``model.assign_targets``' tensors, ``windows [b, 2]`` (the true image in the padded input)
    and the padded ground truth (``gt_boxes [b, G, 4]`` normalised to the padded input,
    ``gt_labels [b, G]``, ``num_gt [b]``; G = the cache's box width).

    Sharded by data, at the element index (the images are in memory, so there are no files to
    shard): of each global batch of ``global_batch`` elements (default ``batch_size``), shard
    ``shard`` of ``num_shards`` takes the ``global_batch / num_shards`` consecutive elements at
    ``shard * global_batch / num_shards``, in batches of ``batch_size`` (a worker's replicas take
    them in turn). So replica r of a cluster sees what replica r of one process would, and each
    element's example and augmentation are a function of (seed, element) alone."""
    n = len(cache)
    fetch = _example_fn(cache)
    max_boxes = cache.boxes.shape[1]
    global_batch = global_batch or batch_size
    per_shard = global_batch // num_shards
    if per_shard * num_shards != global_batch or per_shard % batch_size:
        raise ValueError(f"global batch {global_batch} does not split into {num_shards} "
                         f"shard(s) of batches of {batch_size}")

    def element_of(k):  # k-th element of this shard -> its index in the global stream
        return (k // per_shard) * global_batch + shard * per_shard + k % per_shard

    def shuffled_index(element):
        epoch, position = element // n, element % n
        pair = tf.stack([tf.cast(seed, tf.int64), epoch])
        return tf.random.experimental.index_shuffle(position, pair, tf.cast(n - 1, tf.int64))

    def prepare(k):
        element = element_of(k)
        image, boxes, labels = fetch(shuffled_index(element))
        image = tf.cast(image, tf.float32)
        seeds = augment.split_seed(tf.stack([tf.cast(seed, tf.int64), element]), 4)
        if augment_config.horizontal_flip:
            image, boxes = augment.random_horizontal_flip(image, boxes, seed=seeds[0])
        if augment_config.random_crop:
            p = augment_config.random_crop_probability
            image, boxes, labels = tf.cond(
                tf.random.stateless_uniform([], seeds[1]) < p,
                lambda: augment.ssd_random_crop(image, boxes, labels, seed=seeds[2]),
                lambda: (image, boxes, labels))
        if augment_config.color:  # before padding: the padding stays black
            image = augment.random_color(image, seed=seeds[3])
        image, window = model.image_resizer.resize(image)
        boxes = boxes * tf.tile(window, [2])[None, :]  # image -> padded input coordinates
        targets = model.assign_targets(boxes, labels)
        targets.pop("match", None)
        targets.update(pad_groundtruth(boxes, labels, max_boxes), windows=window)
        return image, targets

    ds = tf.data.Dataset.range(start_step * per_shard, np.iinfo(np.int64).max)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(2)


def eval_batches(cache: ImageCache, batch_size: int = 16):
    """Yields (first index, images float32 [b, H, W, 3], windows float32 [b, 2]) in order."""
    for start in range(0, len(cache), batch_size):
        yield (start, cache.images[start:start + batch_size].astype(np.float32),
               cache.windows[start:start + batch_size])
