import numpy as np
import pytest
import tensorflow as tf

from train.core.post_processing import batch_multiclass_nms, convert_scores


def test_convert_scores():
    logits = np.array([[[0.0, 1.0, -1.0]]], np.float32)
    s = convert_scores(logits, "sigmoid").numpy()
    np.testing.assert_allclose(s, [[[1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))]]], rtol=1e-6)
    e = np.exp([0.0, 1.0, -1.0])
    np.testing.assert_allclose(convert_scores(logits, "softmax").numpy(), [[e[1:] / e.sum()]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="post_processing.py"):
        convert_scores(logits, "relu")


def _np_iou(a, b):
    h = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    w = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = h * w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _np_nms(boxes, scores, iou_thr, score_thr, per_class, total):
    """Brute-force reference for one image: returns a list of (score, class 1..K, box).

    NMS on the boxes as predicted, then the kept boxes clipped to the image (as TFLite does)."""
    dets = []
    for k in range(scores.shape[1]):
        idx = [i for i in np.argsort(-scores[:, k], kind="stable") if scores[i, k] > score_thr]
        kept = []
        for i in idx:
            if len(kept) == per_class:
                break
            if all(_np_iou(boxes[i], boxes[[j]])[0] <= iou_thr for j in kept):
                kept.append(i)
        dets += [(scores[i, k], k + 1, np.clip(boxes[i], 0, 1)) for i in kept]
    return sorted(dets, key=lambda d: -d[0])[:total]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    b, a, k = 2, 60, 3
    yx = rng.uniform(-0.1, 0.8, [b, a, 2])
    boxes = np.concatenate([yx, yx + rng.uniform(0.05, 0.4, [b, a, 2])], -1).astype(np.float32)
    scores = rng.uniform(0, 1, [b, a, k]).astype(np.float32)
    scores[scores < 0.3] = 0.0
    out = tf.function(batch_multiclass_nms)(boxes, scores, iou_threshold=0.5,
                                            score_threshold=0.1, max_detections_per_class=8,
                                            max_total_detections=20)
    assert out["boxes"].shape == (b, 20, 4) and out["classes"].dtype == tf.int32
    for i in range(b):
        ref = _np_nms(boxes[i], scores[i], 0.5, 0.1, 8, 20)
        n = int(out["num_detections"][i])
        assert n == len(ref)
        np.testing.assert_allclose(out["scores"][i, :n], [d[0] for d in ref], rtol=1e-6)
        np.testing.assert_array_equal(out["classes"][i, :n], [d[1] for d in ref])
        np.testing.assert_allclose(out["boxes"][i, :n], [d[2] for d in ref], atol=1e-6)
        np.testing.assert_array_equal(out["classes"][i, n:], 0)
        assert np.all(out["boxes"][i] >= 0) and np.all(out["boxes"][i] <= 1)


def test_nms_is_class_aware_and_suppresses():
    boxes = np.array([[[0, 0, .5, .5], [0, 0, .5, .55], [.6, .6, 1, 1]]], np.float32)
    scores = np.array([[[0.9, 0.0], [0.8, 0.7], [0.0, 0.0]]], np.float32)
    out = batch_multiclass_nms(boxes, scores, max_total_detections=5)
    assert int(out["num_detections"][0]) == 2  # box 1 suppressed in class 1, kept in class 2
    np.testing.assert_array_equal(out["classes"][0].numpy(), [1, 2, 0, 0, 0])
    np.testing.assert_allclose(out["scores"][0, :2].numpy(), [0.9, 0.7])
