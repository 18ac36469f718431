import numpy as np
import tensorflow as tf

from train.core import box_ops


def test_area_and_iou_hand_values():
    a = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]], np.float32)
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 0.6, 0.9]], np.float32)
    np.testing.assert_allclose(box_ops.area(a).numpy(), [0.25, 1.0])
    np.testing.assert_allclose(box_ops.area(b).numpy(), [0.25, 0.0])
    got = box_ops.iou(a, b).numpy()
    # a0 & b0: intersection 0.0625, union 0.4375; a1 & b0: 0.25 / 1; zero-area b1: 0.
    np.testing.assert_allclose(got, [[0.0625 / 0.4375, 0.0], [0.25, 0.0]], rtol=1e-6)


def test_iou_zero_union_and_empty():
    z = np.zeros([2, 4], np.float32)
    np.testing.assert_array_equal(box_ops.iou(z, z).numpy(), np.zeros([2, 2]))
    assert box_ops.iou(np.zeros([0, 4]), z).shape == (0, 2)
    assert box_ops.iou(z, np.zeros([0, 4])).shape == (2, 0)


def test_clip_to_window_batched_and_graph():
    boxes = np.array([[[-0.2, 0.1, 0.5, 1.3], [1.2, 1.2, 1.5, 1.5]]], np.float32)
    got = tf.function(box_ops.clip_to_window)(boxes).numpy()
    np.testing.assert_allclose(got, [[[0.0, 0.1, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0]]])
    got = box_ops.clip_to_window(boxes[0], (0.2, 0.0, 0.6, 0.5)).numpy()
    np.testing.assert_allclose(got, [[0.2, 0.1, 0.5, 0.5], [0.6, 0.5, 0.6, 0.5]])
