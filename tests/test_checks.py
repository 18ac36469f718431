"""convert/checks.pair_detections: how TensorFlow and TFLite detections are paired."""
import numpy as np
import pytest

from convert.checks import pair_detections


def dets(boxes, scores, classes=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return {"boxes": boxes, "scores": np.asarray(scores, np.float32),
            "classes": np.zeros(len(boxes), int) if classes is None else np.asarray(classes)}


# Y overlaps X at IoU 0.6 (same class)
X, Y = [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.6]


def test_a_detection_without_partner_does_not_take_anothers():
    """CI once paired X (no TFLite partner, cut off at the list's end) with Y's partner at IoU
    0.6 and failed the float32 check; best overlaps pair first, so Y pairs with Y."""
    ref = dets([X, Y], [0.30, 0.29])
    got = dets([Y], [0.29])
    pairs = pair_detections(ref, got, max_detections=1, score_threshold=0.0)
    assert pairs["ious"] == [1.0] and pairs["unpaired"] == 1
    assert pairs["unpaired_hard"] == 1  # X scores well above got's cut-off (0.29): a real miss


def test_borderline_and_hard_unpaired():
    ref = dets([X, [0.5, 0.5, 0.9, 0.9]], [0.9, 0.20001])
    got = dets([X, [0.5, 0.5, 0.9, 0.9]], [0.9, 0.2], classes=[0, 1])
    pairs = pair_detections(ref, got, max_detections=2, score_threshold=0.0)
    assert pairs["ious"] == [1.0] and pairs["unpaired"] == 2
    assert pairs["unpaired_hard"] == 0  # both tied with got's / ref's lowest score (full lists)
    pairs = pair_detections(ref, got, max_detections=10, score_threshold=0.0)
    assert pairs["unpaired_hard"] == 2  # lists not full: nothing was cut, a class differs


def test_other_class_never_pairs():
    pairs = pair_detections(dets([X], [0.9], [1]), dets([X], [0.9], [2]), 100, 0.5)
    assert pairs["ious"] == [] and pairs["unpaired_hard"] == 2


def test_nms_ties_and_what_they_suppress_are_borderline():
    """TF suppressed B (IoU with A a hair above 0.6), TFLite kept it (a hair below) and B then
    suppressed C there: B and C are unpaired because of one tie, not a disagreement."""
    A, B, C = [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.6], [0.0, 0.0, 1.0, 0.5]  # IoU(B, C) 0.83
    ref = dets([A, C], [0.9, 0.5])
    got = dets([A, B], [0.9, 0.7])
    pairs = pair_detections(ref, got, 100, 0.01, iou_threshold=0.6, min_iou=0.9999)
    assert pairs["ious"] == [1.0] and pairs["unpaired"] == 2 and pairs["unpaired_hard"] == 0
    assert pair_detections(ref, got, 100, 0.01, min_iou=0.9999)["unpaired_hard"] == 2
    assert pair_detections(ref, got, 100, 0.01, iou_threshold=0.6)["ious"] == pytest.approx([1.0, 5 / 6])
    # B well below the threshold (IoU 0.5 with A, 0 with C): TF should have kept it and C
    pairs = pair_detections(ref, dets([A, [0.0, 0.5, 1.0, 1.0]], [0.9, 0.7]), 100, 0.01,
                            iou_threshold=0.6, min_iou=0.9999)
    assert pairs["unpaired_hard"] == 2


def test_equal_scores_that_nms_ordered_differently_are_borderline():
    """CI (another CPU): two shifted boxes on a flat background, the same score to 1e-7, IoU
    0.6015 (> the 0.6 threshold); TensorFlow kept one and TFLite the other."""
    A, B = [0.7519, 0.3494, 0.9994, 0.7512], [0.7519, 0.2494, 0.9994, 0.6512]
    ref, got = dets([X, A], [0.9, 0.0734841]), dets([X, B], [0.9, 0.0734841])
    pairs = pair_detections(ref, got, 100, 0.01, iou_threshold=0.6, min_iou=0.9999)
    assert pairs["unpaired"] == 2 and pairs["unpaired_hard"] == 0
    # scores apart: the higher one must survive on both sides, a real disagreement
    got = dets([X, B], [0.9, 0.0634841])
    pairs = pair_detections(ref, got, 100, 0.01, iou_threshold=0.6, min_iou=0.9999)
    assert pairs["unpaired_hard"] == 2
