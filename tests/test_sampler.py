import numpy as np
import tensorflow as tf

from train.core.sampler import balanced_positive_sample, hard_negative_mining


def test_hard_negative_mining_3_to_1():
    losses = np.array([[0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.5, 0.3, 0.4, 5.0],
                       [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]], np.float32)
    pos = np.zeros([2, 10], bool)
    pos[0, [1, 9]] = True            # image 0: 2 positives -> 6 negatives
    neg = ~pos
    neg[0, 2] = False                # anchor 2 is ignored (neither)
    sel = hard_negative_mining(losses, pos, neg).numpy()
    # image 0 negatives by loss: 0 (.9), 3 (.7), 5 (.6), 6 (.5), 8 (.4), 7 (.3) | 4 (.2)
    np.testing.assert_array_equal(np.flatnonzero(sel[0]), [0, 1, 3, 5, 6, 7, 8, 9])
    assert not sel[1].any()          # no positives, min_negatives 0 -> nothing
    sel = hard_negative_mining(losses, pos, neg, min_negatives=3).numpy()
    np.testing.assert_array_equal(np.flatnonzero(sel[1]), [7, 8, 9])
    sel = hard_negative_mining(losses, pos, neg, neg_pos_ratio=1.0).numpy()
    np.testing.assert_array_equal(np.flatnonzero(sel[0]), [0, 1, 3, 9])


def test_hard_negative_mining_caps_at_available_negatives_graph():
    fn = tf.function(hard_negative_mining)
    pos = np.array([[True, True, False]])
    sel = fn(np.array([[1.0, 2.0, 3.0]], np.float32), pos, ~pos).numpy()
    np.testing.assert_array_equal(sel, [[True, True, True]])


def test_balanced_positive_sample():
    indicator = np.ones(100, bool)
    indicator[90:] = False
    positives = np.zeros(100, bool)
    positives[:10] = True
    positives[95:] = True            # positives outside the indicator are never picked
    for seed in range(3):
        s = balanced_positive_sample(indicator, positives, batch_size=16, seed=seed).numpy()
        assert s.sum() == 16 and (s & positives).sum() == 8
        assert not s[90:].any()
    s = balanced_positive_sample(indicator, positives, batch_size=64).numpy()
    assert (s & positives).sum() == 10 and s.sum() == 64  # too few positives: fill with negatives
    s = balanced_positive_sample(indicator, positives, batch_size=1000).numpy()
    np.testing.assert_array_equal(s, indicator)
