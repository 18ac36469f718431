import numpy as np
import tensorflow as tf

from train.core.matcher import IGNORE, NEGATIVE, ArgMaxMatcher


def test_thresholds_and_ignore():
    sim = np.array([[0.7, 0.45, 0.2, 0.1, 0.0],
                    [0.1, 0.55, 0.35, 0.05, 0.0]], np.float32)
    m = ArgMaxMatcher(0.5, 0.4, force_match_for_each_gt=False).match(sim).numpy()
    np.testing.assert_array_equal(m, [0, 1, NEGATIVE, NEGATIVE, NEGATIVE])
    m = ArgMaxMatcher(0.5, 0.3, force_match_for_each_gt=False).match(sim).numpy()
    np.testing.assert_array_equal(m, [0, 1, IGNORE, NEGATIVE, NEGATIVE])
    assert NEGATIVE == -1 and IGNORE == -2


def test_force_match_each_gt():
    # gt 1's best anchor (0.3) is anchor 2, below threshold: forced match; gt 0 keeps anchor 0.
    sim = np.array([[0.8, 0.6, 0.1],
                    [0.2, 0.1, 0.3]], np.float32)
    np.testing.assert_array_equal(ArgMaxMatcher(0.5).match(sim).numpy(), [0, 0, 1])
    np.testing.assert_array_equal(
        ArgMaxMatcher(0.5, force_match_for_each_gt=False).match(sim).numpy(), [0, 0, -1])


def test_no_gt_and_padding_in_graph_mode():
    m = ArgMaxMatcher(0.5)
    np.testing.assert_array_equal(m.match(np.zeros([0, 4], np.float32)).numpy(), [-1] * 4)
    fn = tf.function(m.match, input_signature=[tf.TensorSpec([None, 3], tf.float32),
                                               tf.TensorSpec([None], tf.bool)])
    np.testing.assert_array_equal(fn(np.zeros([0, 3], np.float32), np.zeros([0], bool)),
                                  [-1, -1, -1])
    # Padded gt row 1 (invalid) would win everything if it counted.
    sim = np.array([[0.6, 0.2, 0.1], [0.9, 0.9, 0.9]], np.float32)
    np.testing.assert_array_equal(fn(sim, np.array([True, False])).numpy(), [0, -1, -1])


def test_degenerate_gt_not_forced():
    sim = np.array([[0.0, 0.0], [0.7, 0.1]], np.float32)
    np.testing.assert_array_equal(ArgMaxMatcher(0.5).match(sim).numpy(), [1, -1])
