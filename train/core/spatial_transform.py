"""Crops of boxes from feature maps, built from TFLite built-in operators only.

Shape shorthand: B images, N boxes per image, an H x W x C feature map, an h x w crop;
R-FCN's position-sensitive crop divides each box into k_h x k_w bins.

Faster R-CNN crops every proposal from a feature map (``crop_and_resize``), R-FCN pools each
bin of a box from its own group of channels (``position_sensitive_crop``). TensorFlow's
``tf.image.crop_and_resize`` has no TFLite built-in (only a Flex op, which phones lack), so
both are written here as matrix products: sampling a box at h x w points with bilinear
interpolation is separable, ``crop = Wy @ F @ Wx^T`` per channel, where row i of
``Wy [h, H]`` holds the bilinear weights of sample row i over the H rows of the map (at most two
nonzero) and ``Wx [w, W]`` likewise for columns. That lowers to BATCH_MATMUL, elementwise
MUL, SUB, ABS (the max(., 0) fuses into SUB as RELU), comparisons and reshapes (TFLite ops
listed in tests/test_spatial_transform.py), and is differentiable w.r.t. the features.

Implementation choice, measured on the 2-core CPU dev machine (shared with other work, load
about 2: expect +-30 %), TF 2.21, tf.function, median of 20 runs, features [B, 20, 20, 288],
14 x 14 crops, milliseconds forward / forward + gradient w.r.t. the features:

                                    B=8, N=64 (training)   B=1, N=300 (inference)
    separable matmuls (this module)      68 / 101               42-62 / 61-118
    the same with transposes            131 / 250                  81 / 146
    gathers of the 4 corner pixels      128 / 407                  73 / 215
    gathers of 2 rows, matmul columns   113 / 295                 113 / 174
    tf.image.crop_and_resize (Flex)      38 /  36                  26 /  38

(A re-run under load 5 was ~3x slower throughout with the same ranking.) The first product
contracts H for all boxes of an image at once, ``[B, N*h, H] @ [B, H, W*C]``; the second
contracts W per box with ``Wx`` broadcast over the h sample rows, so nothing is transposed.
"""
from __future__ import annotations

import numbers

import tensorflow as tf


def _sample_points(lo, hi, size, crop):
    """Sample coordinates along one axis, with tf.image.crop_and_resize's conventions.

    ``lo, hi [B, N]`` are a box's normalised edges (ymin, ymax or xmin, xmax; hi < lo flips),
    ``size`` the map's extent (H or W), ``crop`` the number of samples (h or w). Returns the
    points ``[B, N, crop]`` in pixels, ``lo*(size-1) + i*(hi-lo)*(size-1)/(crop-1)`` (the centre
    ``0.5*(lo+hi)*(size-1)`` when crop == 1), and ``valid [B, N, crop]`` float32, 1.0 where the
    point lies in ``[0, size-1]``.

    Border margin: a sample meant to lie on the border (a box clipped to end at 1.0) lands a
    few float ulps inside or outside depending on rounding. TF's kernel then extrapolates the
    whole last row of ~2 % of such boxes, and graph rewrites (grappler and the TFLite converter
    turn ``x / c`` into ``x * (1/c)``) would move that coin flip between training and the
    exported model. Points within ``1e-5 * (size-1)`` px of the border count as inside, so the
    result is the same eagerly, in tf.function and in TFLite; it differs from TF only there.
    """
    if crop > 1:
        scale = (hi - lo) * float(size - 1) / float(crop - 1)
        steps = tf.range(crop, dtype=tf.float32)
        points = lo[..., None] * float(size - 1) + steps * scale[..., None]
    else:
        points = (0.5 * (lo + hi) * float(size - 1))[..., None]
    margin = 1e-5 * (size - 1)
    inside = tf.logical_and(points >= -margin, points <= (size - 1) + margin)
    return points, tf.cast(inside, tf.float32)


def _bilinear_weights(lo, hi, size, crop):
    """Interpolation matrix along one axis: ``[B, N, crop, size]`` and ``valid [B, N, crop]``.

    Row i holds the weight of each pixel p for sample point y_i, the "hat" ``max(0, 1-|y_i-p|)``
    (``1-frac`` at floor(y_i), ``frac`` at floor(y_i)+1, i.e. linear interpolation); the row
    is zero where the point is outside the map, whose value then comes from the extrapolation.
    """
    points, valid = _sample_points(lo, hi, size, crop)
    pixels = tf.range(size, dtype=tf.float32)
    hat = tf.maximum(1.0 - tf.abs(points[..., None] - pixels), 0.0)
    return hat * valid[..., None], valid


def _static_dims(features, boxes, name):
    """Checks ranks and returns the static ``(N, H, W, C)``; B may be None."""
    if features.shape.rank != 4 or None in features.shape[1:]:
        raise ValueError(f"{name}: features must be [B, H, W, C] with static H, W, C; "
                         f"got shape {features.shape}")
    if boxes.shape.rank != 3 or boxes.shape[2] != 4 or boxes.shape[1] is None:
        raise ValueError(f"{name}: boxes must be [B, N, 4] with static N; got shape {boxes.shape}")
    _, height, width, channels = features.shape
    return boxes.shape[1], height, width, channels


def _check_size(value, what, name):
    """``value`` as two positive python ints, else a ValueError naming ``what``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and v >= 1 for v in pair):
        raise ValueError(f"{name}: {what} must be two positive python ints; got {value!r}")
    return int(pair[0]), int(pair[1])


def crop_and_resize(features, boxes, crop_size, extrapolation_value=0.0):
    """Bilinear crops: features ``[B, H, W, C]``, boxes ``[B, N, 4]`` -> ``[B, N, h, w, C]``.

    ``boxes`` are normalised ``(ymin, xmin, ymax, xmax)`` in the feature map's frame (0 -> pixel
    0, 1 -> pixel H-1); ``crop_size = (h, w)``. Equals ``tf.image.crop_and_resize(features,
    reshape(boxes, [-1, 4]), repeat(range(B), N), crop_size, extrapolation_value=...)`` reshaped
    to ``[B, N, h, w, C]`` (to float rounding, ~1e-6), conventions included: sample i at
    ``ymin*(H-1) + i*(ymax-ymin)*(H-1)/(h-1)`` (the box centre when h == 1), flipped boxes give
    flipped crops, samples outside ``[0, H-1] x [0, W-1]`` are ``extrapolation_value`` (one
    exception: samples within float rounding of the border, see ``_sample_points``).

    H, W, C, N must be static, B may be None. Gradients flow to ``features``; ``boxes`` get
    none (they are stopped). Built from TFLite built-ins only (BATCH_MATMUL and elementwise).
    """
    name = "crop_and_resize"
    features = tf.convert_to_tensor(features, tf.float32)
    boxes = tf.stop_gradient(tf.convert_to_tensor(boxes, tf.float32))
    num_boxes, height, width, channels = _static_dims(features, boxes, name)
    crop_h, crop_w = _check_size(crop_size, "crop_size", name)

    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)                  # each [B, N]
    wy, valid_y = _bilinear_weights(ymin, ymax, height, crop_h)          # [B, N, h, H]
    wx, valid_x = _bilinear_weights(xmin, xmax, width, crop_w)           # [B, N, w, W]

    # Rows: [B, N*h, H] @ [B, H, W*C] -> [B, N, h, W, C].
    rows = tf.matmul(tf.reshape(wy, [-1, num_boxes * crop_h, height]),
                     tf.reshape(features, [-1, height, width * channels]))
    rows = tf.reshape(rows, [-1, num_boxes, crop_h, width, channels])
    # Columns, per box and sample row: [B, N, 1, w, W] @ [B, N, h, W, C] -> [B, N, h, w, C].
    crops = tf.matmul(wx[:, :, None], rows)

    if not (isinstance(extrapolation_value, numbers.Number) and extrapolation_value == 0):
        outside = 1.0 - valid_y[:, :, :, None] * valid_x[:, :, None, :]  # [B, N, h, w]
        crops += tf.cast(extrapolation_value, tf.float32) * outside[..., None]
    return crops


def position_sensitive_crop(features, boxes, num_bins=(3, 3), crop_size=(6, 6), global_pool=True):
    """R-FCN's position-sensitive RoI pooling (Dai et al. 2016), by average.

    features ``[B, H, W, k_h*k_w*C]``: channel group ``g = i*k_w + j`` (channels
    ``g*C ... g*C+C-1``) holds the maps of bin (i, j). boxes ``[B, N, 4]`` normalised as in
    ``crop_and_resize``. Each box is divided into ``num_bins = (k_h, k_w)`` equal bins; bin
    (i, j) is sampled with ``crop_and_resize`` at ``crop_size / num_bins`` points per side from
    its own channel group only, and those samples are averaged -> ``[B, N, k_h, k_w, C]``.
    With ``global_pool`` the bins are averaged too ("average vote") -> ``[B, N, C]``.
    ``crop_size`` must be divisible by ``num_bins`` and the depth by ``k_h*k_w`` (ValueError).
    """
    name = "position_sensitive_crop"
    features = tf.convert_to_tensor(features, tf.float32)
    boxes = tf.stop_gradient(tf.convert_to_tensor(boxes, tf.float32))
    num_boxes, height, width, depth = _static_dims(features, boxes, name)
    bins_h, bins_w = _check_size(num_bins, "num_bins", name)
    crop_h, crop_w = _check_size(crop_size, "crop_size", name)
    if crop_h % bins_h or crop_w % bins_w:
        raise ValueError(f"{name}: crop_size {tuple(crop_size)} must be divisible by num_bins "
                         f"{tuple(num_bins)} (each bin gets crop_size/num_bins samples per side)")
    num_groups = bins_h * bins_w
    if depth % num_groups:
        raise ValueError(f"{name}: feature depth {depth} must be divisible by k_h*k_w = "
                         f"{num_groups} (one channel group per bin)")
    channels = depth // num_groups

    # Bin edges [B, N, k+1] at ymin + i*(ymax-ymin)/k_h; bin g = i*k_w + j spans edges i..i+1
    # (rows) and j..j+1 (columns).
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)                  # each [B, N]
    y_edges = ymin[..., None] + (tf.range(bins_h + 1, dtype=tf.float32)
                                 * ((ymax - ymin) / float(bins_h))[..., None])
    x_edges = xmin[..., None] + (tf.range(bins_w + 1, dtype=tf.float32)
                                 * ((xmax - xmin) / float(bins_w))[..., None])
    bin_boxes = tf.stack([tf.repeat(y_edges[:, :, :-1], bins_w, axis=2),
                          tf.tile(x_edges[:, :, :-1], [1, 1, bins_h]),
                          tf.repeat(y_edges[:, :, 1:], bins_w, axis=2),
                          tf.tile(x_edges[:, :, 1:], [1, 1, bins_h])], axis=-1)  # [B, N, G, 4]

    # Fold the G = k_h*k_w groups into the batch, so that one crop_and_resize call samples each
    # bin from its own channel group only: image b*G + g is group g of image b.
    group_maps = tf.transpose(tf.reshape(features, [-1, height, width, num_groups, channels]),
                              [0, 3, 1, 2, 4])                           # [B, G, H, W, C]
    group_maps = tf.reshape(group_maps, [-1, height, width, channels])   # [B*G, H, W, C]
    group_boxes = tf.reshape(tf.transpose(bin_boxes, [0, 2, 1, 3]), [-1, num_boxes, 4])
    samples = crop_and_resize(group_maps, group_boxes,
                              (crop_h // bins_h, crop_w // bins_w))     # [B*G, N, h/k_h, w/k_w, C]
    pooled = tf.reduce_mean(samples, axis=[2, 3])                        # [B*G, N, C]
    pooled = tf.transpose(tf.reshape(pooled, [-1, num_groups, num_boxes, channels]),
                          [0, 2, 1, 3])                                  # [B, N, G, C]
    if global_pool:
        return tf.reduce_mean(pooled, axis=2)                            # [B, N, C]
    return tf.reshape(pooled, [-1, num_boxes, bins_h, bins_w, channels])
