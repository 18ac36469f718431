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

    ``boxes [A, 4]`` shared by all classes or ``[A, K, 4]`` per class. NMS on the boxes as
    predicted, the best ``total`` kept, their boxes clipped to the image (as TFLite does), then
    those of zero area dropped."""
    dets = []
    for k in range(scores.shape[1]):
        bk = boxes[:, k] if boxes.ndim == 3 else boxes
        idx = [i for i in np.argsort(-scores[:, k], kind="stable") if scores[i, k] > score_thr]
        kept = []
        for i in idx:
            if len(kept) == per_class:
                break
            if all(_np_iou(bk[i], bk[[j]])[0] <= iou_thr for j in kept):
                kept.append(i)
        dets += [(scores[i, k], k + 1, np.clip(bk[i], 0, 1)) for i in kept]
    dets = sorted(dets, key=lambda d: -d[0])[:total]
    return [d for d in dets if d[2][2] > d[2][0] and d[2][3] > d[2][1]]


def _check_against_reference(out, boxes, scores, iou_thr, score_thr, per_class, total):
    for i in range(len(scores)):
        ref = _np_nms(boxes[i], scores[i], iou_thr, score_thr, per_class, total)
        n = int(out["num_detections"][i])
        assert n == len(ref)
        np.testing.assert_allclose(out["scores"][i, :n], [d[0] for d in ref], rtol=1e-6)
        np.testing.assert_array_equal(out["classes"][i, :n], [d[1] for d in ref])
        np.testing.assert_allclose(out["boxes"][i, :n].numpy().reshape(-1, 4),
                                   np.reshape([d[2] for d in ref], (-1, 4)), atol=1e-6)
        np.testing.assert_array_equal(out["classes"][i, n:], 0)
        np.testing.assert_array_equal(out["scores"][i, n:], 0.0)
        np.testing.assert_array_equal(out["boxes"][i, n:], 0.0)
        assert np.all(out["boxes"][i] >= 0) and np.all(out["boxes"][i] <= 1)


def _random_boxes(rng, shape):
    """Boxes ``shape + [4]``, some of them wholly outside the image (left, above, ...)."""
    yx = rng.uniform(-0.4, 1.1, shape + [2])
    return np.concatenate([yx, yx + rng.uniform(0.05, 0.4, shape + [2])], -1).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    b, a, k = 2, 60, 3
    boxes = _random_boxes(rng, [b, a])
    scores = rng.uniform(0, 1, [b, a, k]).astype(np.float32)
    scores[scores < 0.3] = 0.0
    out = tf.function(batch_multiclass_nms)(boxes, scores, iou_threshold=0.5,
                                            score_threshold=0.1, max_detections_per_class=8,
                                            max_total_detections=20)
    assert out["boxes"].shape == (b, 20, 4) and out["classes"].dtype == tf.int32
    assert out["num_detections"].dtype == tf.int32
    _check_against_reference(out, boxes, scores, 0.5, 0.1, 8, 20)


def test_zero_area_detections_after_clipping_are_dropped_batched_and_in_graph():
    boxes = np.array([
        [[0.1, 0.1, 0.5, 0.5],     # 0.9 kept
         [0.2, 1.2, 0.6, 1.5],     # 0.8 wholly right of the image -> [.2, 1, .6, 1]: dropped
         [1.1, 0.2, 1.4, 0.5],     # 0.7 wholly below -> [1, .2, 1, .5]: dropped
         [0.6, 0.6, 0.9, 0.9],     # 0.6 kept
         [0.8, 0.8, 1.2, 1.3]],    # 0.5 partly outside: clipped to [.8, .8, 1, 1], kept
        [[-0.5, 0.2, -0.1, 0.4],   # 0.9 wholly above: dropped
         [0.3, 0.3, 0.7, 0.7],     # 0.8 kept
         [0.3, -0.6, 0.7, 0.0],    # 0.7 wholly left, touching the border: dropped
         [0.0, 0.0, 0.0, 0.0],     # 0.0 below the score threshold
         [0.0, 0.0, 0.0, 0.0]]], np.float32)
    scores = np.array([[[0.9, 0], [0, 0.8], [0, 0.7], [0.6, 0], [0, 0.5]],
                       [[0.9, 0], [0.8, 0], [0, 0.7], [0, 0], [0, 0]]], np.float32)
    for fn in (batch_multiclass_nms, tf.function(batch_multiclass_nms)):
        out = fn(boxes, scores, max_total_detections=6)
        assert out["boxes"].shape == (2, 6, 4)
        np.testing.assert_array_equal(out["num_detections"], [3, 1])
        np.testing.assert_allclose(out["scores"], [[0.9, 0.6, 0.5, 0, 0, 0],
                                                   [0.8, 0, 0, 0, 0, 0]])
        np.testing.assert_array_equal(out["classes"], [[1, 1, 2, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
        expected = np.zeros([2, 6, 4], np.float32)
        expected[0, :3] = [[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0.8, 0.8, 1.0, 1.0]]
        expected[1, 0] = [0.3, 0.3, 0.7, 0.7]
        np.testing.assert_allclose(out["boxes"], expected, atol=1e-7)
        _check_against_reference(out, boxes, scores, 0.6, 1e-8, 100, 6)
    # the top-N cut comes first (as in TFLite's op): dropping never lets a lower score in
    out = batch_multiclass_nms(boxes, scores, max_total_detections=2)
    np.testing.assert_array_equal(out["num_detections"], [1, 1])
    np.testing.assert_allclose(out["scores"], [[0.9, 0], [0.8, 0]])


@pytest.mark.parametrize("seed", [0, 1])
def test_per_class_boxes(seed):
    rng = np.random.default_rng(seed)
    b, a, k = 2, 40, 3
    boxes = _random_boxes(rng, [b, a, k])  # [B, A, K, 4]: a box per anchor and class
    scores = rng.uniform(0, 1, [b, a, k]).astype(np.float32)
    scores[scores < 0.3] = 0.0
    out = tf.function(batch_multiclass_nms)(boxes, scores, iou_threshold=0.5,
                                            score_threshold=0.1, max_detections_per_class=6,
                                            max_total_detections=15)
    assert out["boxes"].shape == (b, 15, 4)
    _check_against_reference(out, boxes, scores, 0.5, 0.1, 6, 15)
    # shared boxes tiled over the classes give what the shared form gives
    shared = boxes[:, :, 0]
    tiled = batch_multiclass_nms(np.repeat(shared[:, :, None], k, axis=2), scores)
    plain = batch_multiclass_nms(shared, scores)
    for key in plain:
        np.testing.assert_array_equal(tiled[key], plain[key])
    with pytest.raises(ValueError, match=r"\[B, A, K, 4\]"):
        batch_multiclass_nms(boxes[:, :, :2], scores)
    with pytest.raises(ValueError, match=r"\[B, A, 4\] or"):
        batch_multiclass_nms(boxes[0, 0], scores)


def test_nms_is_class_aware_and_suppresses():
    boxes = np.array([[[0, 0, .5, .5], [0, 0, .5, .55], [.6, .6, 1, 1]]], np.float32)
    scores = np.array([[[0.9, 0.0], [0.8, 0.7], [0.0, 0.0]]], np.float32)
    out = batch_multiclass_nms(boxes, scores, max_total_detections=5)
    assert int(out["num_detections"][0]) == 2  # box 1 suppressed in class 1, kept in class 2
    np.testing.assert_array_equal(out["classes"][0].numpy(), [1, 2, 0, 0, 0])
    np.testing.assert_allclose(out["scores"][0, :2].numpy(), [0.9, 0.7])
