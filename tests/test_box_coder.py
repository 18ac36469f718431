import math

import numpy as np
import tensorflow as tf

from train.core.box_coder import FasterRcnnBoxCoder


def test_encode_hand_values():
    anchors = np.array([[0.2, 0.1, 0.6, 0.3]], np.float32)  # yc 0.4, xc 0.2, h 0.4, w 0.2
    boxes = np.array([[0.3, 0.1, 0.9, 0.5]], np.float32)    # yc 0.6, xc 0.3, h 0.6, w 0.4
    got = FasterRcnnBoxCoder().encode(boxes, anchors).numpy()
    want = [10 * 0.2 / 0.4, 10 * 0.1 / 0.2, 5 * math.log(1.5), 5 * math.log(2.0)]
    np.testing.assert_allclose(got[0], want, rtol=1e-5)
    got = FasterRcnnBoxCoder(scale_factors=(1, 1, 1, 1)).encode(boxes, anchors).numpy()
    np.testing.assert_allclose(got[0], [0.5, 0.5, math.log(1.5), math.log(2.0)], rtol=1e-5)


def test_round_trip_and_batched_decode():
    rng = np.random.default_rng(0)
    def rand_boxes(n):
        yx = rng.uniform(0, 0.7, [n, 2])
        return np.concatenate([yx, yx + rng.uniform(0.05, 0.3, [n, 2])], 1).astype(np.float32)
    anchors, boxes = rand_boxes(50), rand_boxes(50)
    coder = FasterRcnnBoxCoder()
    codes = coder.encode(boxes, anchors)
    np.testing.assert_allclose(coder.decode(codes, anchors).numpy(), boxes, atol=1e-5)
    batched = tf.stack([codes, tf.zeros_like(codes)])
    dec = tf.function(coder.decode)(batched, anchors).numpy()
    assert dec.shape == (2, 50, 4)
    np.testing.assert_allclose(dec[0], boxes, atol=1e-5)
    np.testing.assert_allclose(dec[1], anchors, atol=1e-6)  # zero code = the anchor itself
    assert coder.code_size == 4


def test_degenerate_box_is_finite():
    codes = FasterRcnnBoxCoder().encode(np.zeros([1, 4]), np.zeros([1, 4])).numpy()
    assert np.all(np.isfinite(codes))
