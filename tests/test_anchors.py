import math

import numpy as np
import pytest

from train.core import anchors

MOBILENET_300 = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def test_ssd_mobilenet_300_count_and_per_location():
    a = anchors.ssd_anchors(MOBILENET_300)
    assert a.shape == (1917, 4) and a.dtype == np.float32
    k = anchors.ssd_num_anchors_per_location(6)
    assert k == [3, 6, 6, 6, 6, 6]
    assert sum(h * w * n for (h, w), n in zip(MOBILENET_300, k)) == 1917
    assert anchors.ssd_num_anchors_per_location(
        3, reduce_boxes_in_lowest_layer=False, interpolated_scale_aspect_ratio=0.0) == [5, 5, 5]


def test_ssd_anchor_hand_values():
    a = anchors.ssd_anchors(MOBILENET_300)
    c = 0.5 / 19
    # Layer 0, cell (0, 0): (0.1, ar 1), (0.2, ar 2), (0.2, ar 0.5).
    h2, w2 = 0.2 / math.sqrt(2), 0.2 * math.sqrt(2)
    np.testing.assert_allclose(a[0], [c - 0.05, c - 0.05, c + 0.05, c + 0.05], atol=1e-6)
    np.testing.assert_allclose(a[1], [c - h2 / 2, c - w2 / 2, c + h2 / 2, c + w2 / 2], atol=1e-6)
    np.testing.assert_allclose(a[2], [c - w2 / 2, c - h2 / 2, c + w2 / 2, c + h2 / 2], atol=1e-6)
    # Layer 0, cell (row 0, col 1) comes next: the x centre moves, y stays.
    c1 = 1.5 / 19
    np.testing.assert_allclose(a[3], [c - 0.05, c1 - 0.05, c + 0.05, c1 + 0.05], atol=1e-6)
    # Layer 1 (10x10, scale 0.35), cell (1, 0): its 6 anchors start at 19*19*3 + 10*6.
    s1, s2 = 0.2 + 0.75 / 5, 0.2 + 2 * 0.75 / 5
    base = 19 * 19 * 3 + 10 * 6
    yc, xc = 1.5 / 10, 0.5 / 10
    np.testing.assert_allclose(a[base], [yc - s1 / 2, xc - s1 / 2, yc + s1 / 2, xc + s1 / 2],
                               atol=1e-6)
    h3, w3 = s1 / math.sqrt(3), s1 * math.sqrt(3)  # 4th box: ar 3
    np.testing.assert_allclose(a[base + 3], [yc - h3 / 2, xc - w3 / 2, yc + h3 / 2, xc + w3 / 2],
                               atol=1e-6)
    si = math.sqrt(s1 * s2)  # 6th box: interpolated scale
    np.testing.assert_allclose(a[base + 5], [yc - si / 2, xc - si / 2, yc + si / 2, xc + si / 2],
                               atol=1e-6)
    # Last anchor: the 1x1 map, interpolated scale sqrt(0.95 * 1.0), centred, NOT clipped.
    s = math.sqrt(0.95)
    np.testing.assert_allclose(a[-1], [0.5 - s / 2, 0.5 - s / 2, 0.5 + s / 2, 0.5 + s / 2],
                               atol=1e-6)
    # Largest aspect-ratio-3 box on the last layer sticks out of the image.
    assert a[-3, 3] > 1.0 and a[-3, 1] < 0.0


def test_ssd_order_matches_conv_head_reshape():
    sizes = [(3, 4), (2, 2)]
    a = anchors.ssd_anchors(sizes)
    k = anchors.ssd_num_anchors_per_location(2)
    n0 = 3 * 4 * k[0]
    grid = a[:n0].reshape(3, 4, k[0], 4)  # as [B, h, w, k*4] -> [B, h*w*k, 4]
    centres_y = (grid[..., 0] + grid[..., 2]) / 2
    centres_x = (grid[..., 1] + grid[..., 3]) / 2
    np.testing.assert_allclose(centres_y, np.broadcast_to(((np.arange(3) + .5) / 3)[:, None, None],
                                                          (3, 4, 3)), atol=1e-6)
    np.testing.assert_allclose(centres_x, np.broadcast_to(((np.arange(4) + .5) / 4)[None, :, None],
                                                          (3, 4, 3)), atol=1e-6)


def test_grid_anchors_hand_values():
    a = anchors.grid_anchors((2, 3), stride=16, image_size=(32, 48), base_size=16,
                             scales=(1.0, 2.0), aspect_ratios=(1.0, 4.0))
    assert a.shape == (2 * 3 * 4, 4) and a.dtype == np.float32
    # cell (0, 0), centre (8, 8) px; order in a cell: (ar 1, s 1), (ar 1, s 2), (ar 4, s 1), ...
    np.testing.assert_allclose(a[0], [0 / 32, 0 / 48, 16 / 32, 16 / 48], atol=1e-6)
    np.testing.assert_allclose(a[1], [-8 / 32, -8 / 48, 24 / 32, 24 / 48], atol=1e-6)
    np.testing.assert_allclose(a[2], [4 / 32, -8 / 48, 12 / 32, 24 / 48], atol=1e-6)  # h 8, w 32
    # cell (1, 2), centre (24, 40) px, last anchor: ar 4, scale 2 -> h 16, w 64.
    np.testing.assert_allclose(a[-1], [16 / 32, 8 / 48, 32 / 32, 72 / 48], atol=1e-6)


def test_grid_anchors_tf_od_api_offset():
    a = anchors.grid_anchors((1, 1), stride=16, image_size=(16, 16), base_size=16,
                             scales=(1.0,), aspect_ratios=(1.0,), offset=0.0)
    np.testing.assert_allclose(a, [[-0.5, -0.5, 0.5, 0.5]])


def test_ssd_needs_layers():
    with pytest.raises(ValueError, match="anchors.py"):
        anchors.ssd_anchors([])
