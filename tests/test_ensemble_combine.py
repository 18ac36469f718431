import numpy as np
import pytest

from train.ensemble.combine import merge


def _dets():
    boxes = [[0, 0, .5, .5], [0, 0, .5, .6], [.6, .6, 1, 1], [0, 0, .5, .5]]
    scores = [0.9, 0.6, 0.8, 0.7]
    classes = [1, 1, 1, 2]
    return boxes, scores, classes


def test_nms_keeps_each_clusters_best_per_class():
    b, s, c = merge(*_dets(), method="nms", iou_threshold=0.5)
    # class 1: boxes 0 and 1 overlap at IoU 0.25 / 0.3 = 0.833 -> one; box 2 apart; class 2 alone
    np.testing.assert_allclose(s, [0.9, 0.8, 0.7])
    assert c.tolist() == [1, 1, 2]
    np.testing.assert_allclose(b[0], [0, 0, .5, .5])


def test_wbf_averages_a_cluster_by_score_and_discounts_lone_boxes():
    b, s, c = merge(*_dets(), method="wbf", iou_threshold=0.5, sources=2)
    # class 1 cluster {0.9: xmax .5, 0.6: xmax .6}: xmax (0.45 + 0.36) / 1.5 = 0.54, score 0.75
    # box 2 and class 2 found once of 2 sources: score halved
    np.testing.assert_allclose(s, [0.75, 0.4, 0.35])
    np.testing.assert_allclose(b[0], [0, 0, .5, .54])
    assert c.tolist() == [1, 1, 2]


def test_merge_edge_cases():
    b, s, c = merge([], [], [], method="nms")
    assert b.shape == (0, 4) and len(s) == len(c) == 0
    assert len(merge(*_dets(), max_detections=2)[1]) == 2
    with pytest.raises(ValueError, match="combine method"):
        merge(*_dets(), method="vote")
