"""The tf.data input pipeline: decoded images in memory -> augmentation -> per-anchor targets.

Images are decoded once (OpenCV, several threads) and resized to a square ``cache_size``
(SSD resizes to M x M anyway), so an epoch costs no JPEG decoding. The order of examples is a
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
from train.data.images import DataError, load_image

log = logging.getLogger(__name__)


@dataclass
class ImageCache:
    """Decoded, resized images and padded ground truth of a dataset.

    images: uint8 [N, S, S, 3]; boxes: float32 [N, G, 4] normalised; labels: int32 [N, G];
    counts: int32 [N] (valid boxes per image); examples: the N source examples kept.
    """
    images: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    examples: list
    skipped: collections.Counter

    def __len__(self) -> int:
        return len(self.examples)


def _decode_resized(example, size: int):
    try:
        if example.encoded is not None:
            image = load_image(data=example.encoded, name=example.file_name or str(example.image_id))
        else:
            image = load_image(example.file_name)
    except DataError as e:
        return None, str(e)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), None


def cache_images(dataset, size: int, max_gb: float = 6.0, workers: int | None = None,
                 progress: bool = True) -> ImageCache:
    """Decodes every image of ``dataset`` to ``size`` x ``size``; skips (and counts) bad ones."""
    examples = dataset.examples
    need_gb = len(examples) * size * size * 3 / 1e9
    if need_gb > max_gb:
        raise MemoryError(
            f"{dataset.source}: {len(examples)} images at {size}x{size} need {need_gb:.1f} GB in "
            f"memory, over train.max_cache_gb={max_gb}; raise it or lower train.cache_size")
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    images = np.zeros((len(examples), size, size, 3), np.uint8)
    max_boxes = max([len(e.classes) for e in examples] + [1])
    boxes = np.zeros((len(examples), max_boxes, 4), np.float32)
    labels = np.zeros((len(examples), max_boxes), np.int32)
    counts = np.zeros(len(examples), np.int32)
    kept, skipped, n = [], collections.Counter(), 0
    with ThreadPoolExecutor(workers) as pool:
        iterator = pool.map(lambda e: _decode_resized(e, size), examples)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, total=len(examples), desc=f"decoding images ({size}px)",
                            unit="img", dynamic_ncols=True)
        for example, (image, error) in zip(examples, iterator):
            if image is None:
                skipped["unreadable image (skipped)"] += 1
                if skipped["unreadable image (skipped)"] <= 3:
                    log.warning("skipping %s", error)
                continue
            images[n] = image
            k = len(example.classes)
            boxes[n, :k], labels[n, :k], counts[n] = example.boxes, example.classes, k
            kept.append(example)
            n += 1
    if skipped:
        log.warning("%s: %d unreadable images skipped", dataset.source, sum(skipped.values()))
    if not kept:
        raise DataError(f"{dataset.source}: none of the {len(examples)} images could be read")
    return ImageCache(images[:n], boxes[:n], labels[:n], counts[:n], kept, skipped)


def _example_fn(cache: ImageCache):
    """Returns a tf function: example index -> (image uint8 [S,S,3], boxes [G,4], labels [G])."""

    def fetch(i):
        k = cache.counts[i]
        return cache.images[i], cache.boxes[i, :k], cache.labels[i, :k]

    size = cache.images.shape[1]

    def fn(index):
        image, boxes, labels = tf.numpy_function(fetch, [index], [tf.uint8, tf.float32, tf.int32],
                                                 stateful=False)
        image.set_shape([size, size, 3])
        boxes.set_shape([None, 4])
        labels.set_shape([None])
        return image, boxes, labels

    return fn


def train_dataset(cache: ImageCache, model, *, batch_size: int, image_size: int,
                  augment_config, seed: int = 0, start_step: int = 0) -> tf.data.Dataset:
    """Infinite batches of (images float32 [B,M,M,3] 0..255, targets dict of [B,A,...])."""
    n = len(cache)
    fetch = _example_fn(cache)

    def shuffled_index(element):
        epoch, position = element // n, element % n
        pair = tf.stack([tf.cast(seed, tf.int64), epoch])
        return tf.random.experimental.index_shuffle(position, pair, tf.cast(n - 1, tf.int64))

    def prepare(element):
        image, boxes, labels = fetch(shuffled_index(element))
        image = tf.cast(image, tf.float32)
        if augment_config.horizontal_flip:
            image, boxes = augment.random_horizontal_flip(image, boxes)
        if augment_config.random_crop:
            p = augment_config.random_crop_probability
            image, boxes, labels = tf.cond(
                tf.random.uniform([]) < p,
                lambda: augment.ssd_random_crop(image, boxes, labels),
                lambda: (image, boxes, labels))
        image = tf.image.resize(image, [image_size, image_size])
        if augment_config.color:
            image = augment.random_color(image)
        targets = model.assign_targets(boxes, labels)
        targets.pop("match", None)
        return image, targets

    ds = tf.data.Dataset.range(start_step * batch_size, np.iinfo(np.int64).max)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(2)


def eval_batches(cache: ImageCache, batch_size: int = 16):
    """Yields (first index, images float32 [b, S, S, 3]) over the cache, in order."""
    for start in range(0, len(cache), batch_size):
        yield start, cache.images[start:start + batch_size].astype(np.float32)
