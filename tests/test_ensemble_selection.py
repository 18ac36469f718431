import math

import numpy as np
import pytest

from train.ensemble.selection import SelectionError, cosine, greedy_select


def test_cosine_hand_values():
    assert cosine([1, 0], [0, 1]) == 0.0
    assert math.isclose(cosine([1, 1], [1, 0]), 1 / math.sqrt(2))
    assert math.isclose(cosine([0.5, float("nan")], [0.2, 0.3]), 0.2 / math.sqrt(0.13))
    assert cosine([0, 0], [0, 0]) == 1.0


def test_greedy_selection_prunes_near_copies_in_ap_order():
    """By AP: a (0.50), b (0.49, a's near copy), c (0.48), d (0.47), e (0.46).
    cos(a, b) = 0.99997 > 0.99: pruned; c: cos to a 0.9653 -> chosen; d: cos to a 0.7293, to
    c 0.8767 -> chosen; max 3, so e is left out for the count."""
    cands = {
        "a": {"AP": 0.50, "per_category_AP": [0.6, 0.4, 0.5]},
        "b": {"AP": 0.49, "per_category_AP": [0.59, 0.40, 0.49]},
        "c": {"AP": 0.48, "per_category_AP": [0.4, 0.5, 0.55]},
        "d": {"AP": 0.47, "per_category_AP": [0.0, 0.6, 0.8]},
        "e": {"AP": 0.46, "per_category_AP": [1.0, 0.0, 0.0]},
    }
    va = np.array([0.6, 0.4, 0.5])
    for o in "bcd":
        v = np.array(cands[o]["per_category_AP"])
        assert math.isclose(cosine(va, v), va @ v / np.linalg.norm(va) / np.linalg.norm(v))
    chosen, decisions = greedy_select(cands, max_models=3, similarity=0.99)
    assert chosen == ["a", "c", "d"]
    why = {d["name"]: d for d in decisions}
    assert not why["b"]["chosen"] and why["b"]["closest"] == "a" and "too similar" in why["b"]["reason"]
    assert not why["e"]["chosen"] and "3 models already chosen" in why["e"]["reason"]
    # similarity 1.0 prunes nothing; at 0.7 b, c, d (0.73) are pruned by a, e (0.68) is not
    assert greedy_select(cands, 5, 1.0)[0] == ["a", "b", "c", "d", "e"]
    assert greedy_select(cands, 5, 0.7)[0] == ["a", "e"]


def test_bad_selection_arguments():
    with pytest.raises(SelectionError, match="no candidate"):
        greedy_select({}, 2, 0.9)
    with pytest.raises(SelectionError, match="max_models"):
        greedy_select({"a": {"AP": 0.1, "per_category_AP": [0.1]}}, 0, 0.9)
    with pytest.raises(SelectionError, match="different lengths"):
        greedy_select({"a": {"AP": 0.2, "per_category_AP": [0.1]},
                       "b": {"AP": 0.1, "per_category_AP": [0.1, 0.2]}}, 2, 0.9)
