"""Anchor generators (numpy; anchors are constants, later frozen into the TFLite model).

All anchors are normalised ``[ymin, xmin, ymax, xmax]`` float32 and NOT clipped to the image
(TF Object Detection API default). Order: layer by layer, then row-major over the ``(y, x)``
cells of a feature map, then the anchors of a cell -- exactly the order of a conv head output
``[B, h, w, k*4]`` reshaped to ``[B, h*w*k, 4]``.
"""
from __future__ import annotations

import numpy as np

SSD_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


def _tile(grid_h, grid_w, heights, widths, stride, offset):
    """Anchors ``[grid_h*grid_w*k, 4]`` of sizes ``heights/widths [k]`` centred at
    ``offset + stride * (i, j)``; order (y, x, anchor)."""
    cy = (offset[0] + stride[0] * np.arange(grid_h, dtype=np.float64))[:, None, None]
    cx = (offset[1] + stride[1] * np.arange(grid_w, dtype=np.float64))[None, :, None]
    h = np.asarray(heights, np.float64)[None, None, :] / 2
    w = np.asarray(widths, np.float64)[None, None, :] / 2
    boxes = np.stack(np.broadcast_arrays(cy - h, cx - w, cy + h, cx + w), axis=-1)
    return boxes.reshape(-1, 4).astype(np.float32)


def _ssd_box_specs(num_layers, min_scale, max_scale, aspect_ratios,
                   interpolated_scale_aspect_ratio, reduce_boxes_in_lowest_layer):
    """Per layer, the list of ``(scale, aspect_ratio)`` pairs (TF OD API create_ssd_anchors)."""
    if num_layers < 1:
        raise ValueError("anchors.py: need at least one feature map for SSD anchors")
    if num_layers == 1:
        scales = [min_scale]
    else:
        scales = [min_scale + (max_scale - min_scale) * i / (num_layers - 1)
                  for i in range(num_layers)]
    scales = scales + [1.0]
    specs = []
    for layer in range(num_layers):
        scale, scale_next = scales[layer], scales[layer + 1]
        if layer == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        layer_specs = [(scale, ar) for ar in aspect_ratios]
        if interpolated_scale_aspect_ratio > 0.0:
            layer_specs.append((np.sqrt(scale * scale_next), interpolated_scale_aspect_ratio))
        specs.append(layer_specs)
    return specs


def ssd_num_anchors_per_location(num_layers, aspect_ratios=SSD_ASPECT_RATIOS,
                                 interpolated_scale_aspect_ratio=1.0,
                                 reduce_boxes_in_lowest_layer=True):
    """Number of anchors per cell for each of the ``num_layers`` SSD feature maps."""
    specs = _ssd_box_specs(num_layers, 0.2, 0.95, aspect_ratios,
                           interpolated_scale_aspect_ratio, reduce_boxes_in_lowest_layer)
    return [len(s) for s in specs]


def ssd_anchors(feature_map_sizes, min_scale=0.2, max_scale=0.95,
                aspect_ratios=SSD_ASPECT_RATIOS, interpolated_scale_aspect_ratio=1.0,
                reduce_boxes_in_lowest_layer=True):
    """SSD anchors ``[A, 4]`` float32 for feature maps ``[(h_0, w_0), ...]`` (finest first).

    Scales are linearly spaced ``min_scale..max_scale`` over the layers; each layer gets one
    box per aspect ratio plus one of scale ``sqrt(s_i * s_{i+1})`` (``s_L = 1``). The lowest
    layer (with ``reduce_boxes_in_lowest_layer``) gets 3 boxes: (0.1, 1), (s_0, 2), (s_0, 0.5).
    Box size: ``height = scale / sqrt(ar)``, ``width = scale * sqrt(ar)``; centres at
    ``((i + 0.5) / h, (j + 0.5) / w)``.
    """
    sizes = [(int(h), int(w)) for h, w in feature_map_sizes]
    specs = _ssd_box_specs(len(sizes), min_scale, max_scale, aspect_ratios,
                           interpolated_scale_aspect_ratio, reduce_boxes_in_lowest_layer)
    out = []
    for (h, w), layer_specs in zip(sizes, specs):
        scales = np.array([s for s, _ in layer_specs], np.float64)
        ratios = np.sqrt(np.array([a for _, a in layer_specs], np.float64))
        stride = (1.0 / h, 1.0 / w)
        out.append(_tile(h, w, scales / ratios, scales * ratios, stride,
                         (0.5 * stride[0], 0.5 * stride[1])))
    return np.concatenate(out, axis=0)


def grid_anchors(feature_map_size, stride, image_size, base_size=256,
                 scales=(0.5, 1.0, 2.0), aspect_ratios=(0.5, 1.0, 2.0), offset=0.5):
    """Faster R-CNN RPN anchors ``[h*w*len(scales)*len(aspect_ratios), 4]`` float32, normalised.

    TF OD API GridAnchorGenerator semantics in pixels: a box of height
    ``base_size*scale/sqrt(ar)`` and width ``base_size*scale*sqrt(ar)`` centred at
    ``stride * (i + offset, j + offset)``, then divided by ``image_size = (H, W)``.
    We default to ``offset = 0.5`` (centre of the stride cell, same as SSD anchors); the TF OD
    API's default is ``offset = 0``. Within a cell the order is aspect-ratio major, scale minor
    (as the TF OD API's meshgrid(scales, aspect_ratios)).
    """
    h, w = (int(v) for v in feature_map_size)
    img_h, img_w = (float(v) for v in image_size)
    ars, scs = np.meshgrid(np.asarray(aspect_ratios, np.float64),
                           np.asarray(scales, np.float64), indexing="ij")
    ars, scs = ars.ravel(), scs.ravel()
    heights = base_size * scs / np.sqrt(ars) / img_h
    widths = base_size * scs * np.sqrt(ars) / img_w
    s = (stride / img_h, stride / img_w)
    return _tile(h, w, heights, widths, s, (offset * s[0], offset * s[1]))
