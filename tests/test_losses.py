import math

import numpy as np

from train.core import losses


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_smooth_l1_hand_values():
    pred = np.array([[0.5, -2.0, 0.0, 3.0]], np.float32)
    target = np.zeros([1, 4], np.float32)
    # 0.5*0.25 + (2-0.5) + 0 + (3-0.5) = 4.125
    np.testing.assert_allclose(losses.smooth_l1(pred, target).numpy(), [4.125])
    # delta 2: 0.125 + 0.5*4 + 0 + 2*(3-1) = 6.125
    np.testing.assert_allclose(losses.smooth_l1(pred, target, delta=2.0).numpy(), [6.125])


def test_softmax_cross_entropy_hand_values():
    logits = np.array([[[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]], np.float32)
    got = losses.softmax_cross_entropy(logits, np.array([[1, 0]])).numpy()
    lse = math.log(math.e + math.e ** 2 + 1)
    np.testing.assert_allclose(got, [[lse - 2.0, math.log(3)]], rtol=1e-6)


def test_sigmoid_cross_entropy_hand_values():
    logits = np.array([[1.0, -1.0, 2.0]], np.float32)
    got = losses.sigmoid_cross_entropy(logits, np.array([2])).numpy()
    want = -math.log(1 - _sig(1)) - math.log(1 - _sig(-1)) - math.log(_sig(2))
    np.testing.assert_allclose(got, [want], rtol=1e-6)


def test_focal_loss_hand_values():
    logits = np.array([[1.0, -1.0, 2.0]], np.float32)
    got = losses.sigmoid_focal_loss(logits, np.array([0]), alpha=0.25, gamma=2.0).numpy()
    p = [_sig(1), _sig(-1), _sig(2)]
    want = (0.25 * (1 - p[0]) ** 2 * -math.log(p[0])
            + 0.75 * p[1] ** 2 * -math.log(1 - p[1])
            + 0.75 * p[2] ** 2 * -math.log(1 - p[2]))
    np.testing.assert_allclose(got, [want], rtol=1e-5)
    # gamma 0, alpha 0.5 is half the sigmoid cross entropy.
    half = losses.sigmoid_focal_loss(logits, np.array([2]), alpha=0.5, gamma=0.0).numpy()
    np.testing.assert_allclose(half, 0.5 * losses.sigmoid_cross_entropy(logits, np.array([2])),
                               rtol=1e-6)
