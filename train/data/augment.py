"""Training-time augmentation (SSD paper, Sec. 2.2.1), per image, as TF ops for ``tf.data``.

Every function takes ``image [H, W, 3]`` float32 in 0..255, ``boxes [N, 4]`` normalised
``[ymin, xmin, ymax, xmax]`` float32 and ``labels [N]`` (any dtype), works for N = 0 and in
graph mode with dynamic H, W, N.

Randomness is stateless: ``seed`` is an int or an int32/int64 ``[2]`` tensor and the same seed
gives the same draw, in any process and in any order (the input pipeline seeds each example by
(train.seed, element index), so workers of a cluster and a resumed run see the same
augmentation as one process would); None draws a fresh seed.
"""
from __future__ import annotations

import tensorflow as tf

from train.core import box_ops


def split_seed(seed, n: int):
    """``seed`` (None | int | [2] tensor) -> ``n`` independent stateless seeds ``[n, 2]``."""
    if seed is None:
        seed = tf.random.uniform([2], 0, 2**31 - 1, tf.int64)
    elif isinstance(seed, int):
        seed = tf.constant([seed, 0], tf.int64)
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n)


def random_horizontal_flip(image, boxes, seed=None):
    """Mirror image and boxes left-right with probability 0.5 -> ``(image, boxes)``."""
    image = tf.convert_to_tensor(image, tf.float32)
    boxes = tf.reshape(tf.convert_to_tensor(boxes, tf.float32), [-1, 4])
    do_flip = tf.random.stateless_uniform([], split_seed(seed, 1)[0]) < 0.5
    flipped = tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], axis=1)
    return (tf.where(do_flip, tf.reverse(image, axis=[1]), image),
            tf.where(do_flip, flipped, boxes))


def ssd_random_crop(image, boxes, labels,
                    min_object_covered=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
                    aspect_ratio_range=(0.5, 2.0), area_range=(0.1, 1.0),
                    max_attempts=100, seed=None):
    """SSD patch sampling -> ``(image, boxes, labels)``.

    One of ``len(min_object_covered) + 1`` options is chosen uniformly: the whole image
    ("no crop"), or a patch from ``tf.image.sample_distorted_bounding_box`` that covers at least
    that fraction of some gt box (the TF OD API's stand-in for the paper's min-Jaccard rule; if no
    patch is found in ``max_attempts`` the whole image is used). Boxes whose centre lies in the
    patch are kept, re-expressed in patch coordinates and clipped to it; the others are dropped
    along with their labels.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    boxes = tf.reshape(tf.convert_to_tensor(boxes, tf.float32), [-1, 4])
    labels = tf.convert_to_tensor(labels)
    shape = tf.shape(image)
    seeds = split_seed(seed, 2)
    options = tf.constant(list(min_object_covered), tf.float32)
    choice = tf.random.stateless_uniform([], seeds[0], 0, len(min_object_covered) + 1, tf.int32)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.clip_by_value(boxes, 0.0, 1.0)[None],
        min_object_covered=options[tf.minimum(choice, len(min_object_covered) - 1)],
        aspect_ratio_range=aspect_ratio_range, area_range=area_range,
        max_attempts=max_attempts, use_image_if_no_bounding_boxes=True, seed=seeds[1])
    no_crop = tf.equal(choice, len(min_object_covered))
    begin = tf.where(no_crop, tf.zeros_like(begin), begin)
    size = tf.where(no_crop, tf.constant([-1, -1, -1], size.dtype), size)
    cropped = tf.slice(image, begin, size)
    # The patch in normalised coordinates, from the integer pixel crop (exact).
    hw = tf.cast(shape[:2], tf.float32)
    lo = tf.cast(begin[:2], tf.float32) / hw
    hi = lo + tf.cast(tf.shape(cropped)[:2], tf.float32) / hw
    cy = (boxes[:, 0] + boxes[:, 2]) / 2.0
    cx = (boxes[:, 1] + boxes[:, 3]) / 2.0
    keep = (cy >= lo[0]) & (cy <= hi[0]) & (cx >= lo[1]) & (cx <= hi[1])
    offset = tf.concat([lo, lo], axis=0)
    scale = tf.concat([hi - lo, hi - lo], axis=0)
    new_boxes = box_ops.clip_to_window((tf.boolean_mask(boxes, keep) - offset) / scale)
    return cropped, new_boxes, tf.boolean_mask(labels, keep)


def random_color(image, brightness=32.0, contrast=(0.5, 1.5), saturation=(0.5, 1.5),
                 hue=0.05, seed=None):
    """Photometric distortion -> ``image`` float32 kept within 0..255.

    Brightness shift up to +-``brightness`` (0..255 units), then contrast, saturation factors
    drawn from the given ranges and a hue shift up to +-``hue`` (fraction of the colour wheel).
    Pass None / 0 to skip a step.
    """
    x = tf.convert_to_tensor(image, tf.float32) / 255.0
    s = split_seed(seed, 4)
    if brightness:
        x = tf.clip_by_value(tf.image.stateless_random_brightness(x, brightness / 255.0, s[0]),
                             0.0, 1.0)
    if contrast:
        x = tf.clip_by_value(tf.image.stateless_random_contrast(x, *contrast, s[1]), 0.0, 1.0)
    if saturation:
        x = tf.clip_by_value(tf.image.stateless_random_saturation(x, *saturation, s[2]), 0., 1.)
    if hue:
        x = tf.clip_by_value(tf.image.stateless_random_hue(x, hue, s[3]), 0.0, 1.0)
    return x * 255.0
