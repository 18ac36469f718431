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


def test_iou_loss_hand_values():
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 0, 1]], np.float32)
    targets = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3], [0, 0, 0, 1]], np.float32)
    # overlap 1 of union 7; identical; disjoint; no area
    np.testing.assert_allclose(losses.iou_loss(boxes, targets).numpy(),
                               [1 - 1 / 7, 0.0, 1.0, 1.0], atol=1e-6)


def test_smooth_l1_plus_iou_box_loss_hand_values():
    """Proposal = target = the unit square; the prediction keeps the centre and halves both
    sides (th = tw = 5 ln 0.5 with scales 10, 10, 5, 5): Smooth L1 2 x (5 ln 2 - 0.5), IoU
    0.25 / 1."""
    from types import SimpleNamespace

    import pytest

    from train.core.box_coder import FasterRcnnBoxCoder
    from train.meta_architectures.two_stage import TwoStageDetector

    half = 5 * math.log(0.5)
    enc = np.array([[[0, 0, half, half]]], np.float32)
    target = np.zeros((1, 1, 4), np.float32)
    proposal = np.array([[[0, 0, 1, 1]]], np.float32)
    l1 = 2 * (5 * math.log(2) - 0.5)
    for kind, expected in (("smooth_l1", l1), ("smooth_l1+iou", l1 + 0.75)):
        model = SimpleNamespace(localization_loss=kind, box_coder=FasterRcnnBoxCoder())
        got = TwoStageDetector.box_localization_loss(model, enc, target, proposal).numpy()
        np.testing.assert_allclose(got, [[expected]], rtol=1e-5)
    with pytest.raises(ValueError, match="localization_loss"):
        TwoStageDetector(extractor=None, num_classes=1, image_resizer=None, first_stage=None,
                         rpn=None, box_classifier=None, proposal_sampler=None,
                         localization_loss="iou", name="two_stage")
