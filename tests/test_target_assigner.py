import numpy as np
import tensorflow as tf

from train.core.box_coder import FasterRcnnBoxCoder
from train.core.matcher import ArgMaxMatcher
from train.core.target_assigner import assign_targets

ANCHORS = np.array([[0.0, 0.0, 0.5, 0.5],     # = gt 0           -> positive, label 3
                    [0.0, 0.0, 0.5, 0.6],     # IoU 0.833 w gt 0  -> positive, label 3
                    [0.5, 0.5, 1.0, 1.0],     # IoU 0.25 w gt 1   -> forced match, label 1
                    [0.0, 0.0, 0.5, 1.0],     # IoU 0.5 w gt 0    -> between 0.4 and 0.6: ignored
                    [0.9, 0.0, 1.0, 0.1]],    # nothing           -> negative
                   np.float32)
GT = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.75, 0.75]], np.float32)
LABELS = np.array([3, 1], np.int32)


def test_targets_hand_values():
    coder = FasterRcnnBoxCoder()
    t = assign_targets(ANCHORS, GT, LABELS, ArgMaxMatcher(0.6, 0.4), coder)
    np.testing.assert_array_equal(t["cls_targets"].numpy(), [3, 3, 1, 0, 0])
    np.testing.assert_array_equal(t["reg_weights"].numpy(), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(t["cls_weights"].numpy(), [1, 1, 1, 0, 1])
    want = coder.encode(GT[[0, 0, 1]], ANCHORS[:3]).numpy()
    np.testing.assert_allclose(t["reg_targets"].numpy()[:3], want, atol=1e-6)
    np.testing.assert_array_equal(t["reg_targets"].numpy()[3:], 0.0)
    np.testing.assert_allclose(t["reg_targets"].numpy()[0], 0.0, atol=1e-5)
    assert t["cls_targets"].dtype == tf.int32 and t["reg_targets"].dtype == tf.float32


def test_variable_gt_count_in_tf_data():
    def gen():
        yield GT, LABELS
        yield np.zeros([0, 4], np.float32), np.zeros([0], np.int32)
    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)))
    ds = ds.map(lambda b, l: assign_targets(ANCHORS, b, l, ArgMaxMatcher(0.6, 0.4),
                                            FasterRcnnBoxCoder()))
    first, empty = list(ds)
    np.testing.assert_array_equal(first["cls_targets"].numpy(), [3, 3, 1, 0, 0])
    np.testing.assert_array_equal(empty["cls_targets"].numpy(), [0] * 5)
    np.testing.assert_array_equal(empty["reg_targets"].numpy(), np.zeros([5, 4]))
    np.testing.assert_array_equal(empty["reg_weights"].numpy(), [0] * 5)
    np.testing.assert_array_equal(empty["cls_weights"].numpy(), [1] * 5)


def test_padded_gts_are_ignored():
    gt = np.concatenate([GT, np.zeros([3, 4], np.float32)])
    labels = np.array([3, 1, 0, 0, 0], np.int32)
    valid = np.array([True, True, False, False, False])
    t = assign_targets(ANCHORS, gt, labels, ArgMaxMatcher(0.6, 0.4), FasterRcnnBoxCoder(), valid)
    np.testing.assert_array_equal(t["cls_targets"].numpy(), [3, 3, 1, 0, 0])
