"""The region proposal network's pieces: grid anchors, targets, proposals, sampler, loss."""
import numpy as np
import pytest
import tensorflow as tf

from train.core.box_coder import FasterRcnnBoxCoder
from train.core.box_ops import iou
from train.core.proposals import generate_proposals
from train.core.sampler import batch_balanced_sample
from train.meta_architectures.rpn import RegionProposalNetwork


def test_anchor_count_for_600x1024_at_stride_16():
    rpn = RegionProposalNetwork(image_shape=(600, 1024), stride=16)
    assert rpn.feature_map_size == (38, 64)
    assert rpn.anchors_per_location == 12  # scales 0.25/0.5/1/2 x aspect ratios 0.5/1/2
    assert rpn.num_anchors == 38 * 64 * 12 == 29184
    a = rpn.anchors_np.reshape(38, 64, 12, 4)
    # cell (0, 0): centred at (8, 8) px; the 1:1 anchor of scale 1 is 256 px
    square = a[0, 0, 1 * 4 + 2]  # aspect ratio 1 (index 1), scale 1 (index 2)
    np.testing.assert_allclose(square * [600, 1024, 600, 1024], [8 - 128, 8 - 128, 8 + 128, 8 + 128],
                               atol=1e-3)


def test_input_smaller_than_the_stride_is_an_error():
    with pytest.raises(ValueError, match="smaller than the RPN's stride 16"):
        RegionProposalNetwork(image_shape=(8, 64), stride=16)
    with pytest.raises(ValueError, match="max_proposals must be in 1..pre_nms_top_k"):
        RegionProposalNetwork(image_shape=(64, 64), stride=16, pre_nms_top_k=10, max_proposals=20)


def test_rpn_targets_on_hand_made_boxes():
    rpn = RegionProposalNetwork(image_shape=(64, 64), stride=16, base_size=32.0,
                                scales=(1.0,), aspect_ratios=(1.0,))
    # 4x4 grid of 32-px anchors centred at 8, 24, 40, 56 px
    gt = tf.constant([[8 / 64, 8 / 64, 40 / 64, 40 / 64]])  # exactly the anchor of cell (1, 1)
    t = rpn.assign_targets(gt, tf.constant([5]))
    cls = t["rpn_cls_targets"].numpy().reshape(4, 4)
    assert cls[1, 1] == 1 and cls.sum() == 1  # label 5 becomes "object" (1)
    np.testing.assert_allclose(t["rpn_reg_targets"].numpy().reshape(4, 4, 4)[1, 1], 0, atol=1e-5)
    overlaps = iou(gt, rpn.anchors).numpy()[0].reshape(4, 4)
    ignored = t["rpn_cls_weights"].numpy().reshape(4, 4) == 0
    np.testing.assert_array_equal(ignored, (overlaps >= 0.3) & (overlaps < 0.7))
    empty = rpn.assign_targets(tf.zeros([0, 4]), tf.zeros([0], tf.int32))
    assert empty["rpn_cls_targets"].numpy().sum() == 0 and empty["rpn_cls_weights"].numpy().all()


def test_proposals_are_exactly_n_sorted_nmsed_and_padded():
    rng = np.random.default_rng(0)
    anchors = np.concatenate([rng.uniform(0, 0.5, (200, 2)), rng.uniform(0.5, 1.0, (200, 2))],
                             axis=1).astype(np.float32)[:, [0, 1, 2, 3]]
    enc = tf.constant(rng.normal(0, 0.5, (2, 200, 4)), tf.float32)
    logits = tf.constant(rng.normal(0, 2, (2, 200, 2)), tf.float32)
    coder = FasterRcnnBoxCoder()
    out = generate_proposals(enc, logits, tf.constant(anchors), coder, pre_nms_top_k=150,
                             max_proposals=40, iou_threshold=0.7,
                             windows=tf.constant([[1.0, 1.0], [0.5, 0.75]]))
    assert out["boxes"].shape == (2, 40, 4) and out["scores"].shape == (2, 40)
    for b, (hy, hx) in enumerate([(1.0, 1.0), (0.5, 0.75)]):
        n = int(out["num_proposals"][b])
        boxes, scores = out["boxes"][b].numpy(), out["scores"][b].numpy()
        assert 0 < n <= 40
        assert np.all(np.diff(scores[:n]) <= 0)  # sorted
        overlap = iou(boxes[:n], boxes[:n]).numpy() - np.eye(n)
        assert overlap.max() <= 0.7 + 1e-6  # NMS'd
        assert np.all(boxes[n:] == 0) and np.all(scores[n:] == 0)  # padded
        assert boxes[:n, 2].max() <= hy + 1e-6 and boxes[:n, 3].max() <= hx + 1e-6  # clipped
        # the best proposal is the best-scoring anchor's decoded box
        p = tf.nn.softmax(logits[b])[:, 1].numpy()
        best = int(np.argmax(p))
        expect = np.clip(coder.decode(enc[b, best:best + 1], anchors[best:best + 1]).numpy()[0],
                         0, [hy, hx, hy, hx])
        np.testing.assert_allclose(boxes[0], expect, atol=1e-5)
        assert scores[0] == pytest.approx(p[best], abs=1e-6)


def test_few_candidates_still_give_n_padded_proposals():
    anchors = tf.constant([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.9, 0.9]])
    out = generate_proposals(tf.zeros([1, 3, 4]), tf.constant([[[0., 2.], [0., 1.], [0., 0.]]]),
                             anchors, FasterRcnnBoxCoder(), pre_nms_top_k=3, max_proposals=5)
    assert int(out["num_proposals"][0]) == 2  # the second anchor overlaps the first (IoU 0.82)
    np.testing.assert_allclose(out["boxes"][0, :2].numpy(), anchors.numpy()[[0, 2]], atol=1e-6)


@pytest.mark.parametrize("batch_size,fraction", [(256, 0.5), (64, 0.25)])
def test_batched_sampler_ratios(batch_size, fraction):
    rng = np.random.default_rng(1)
    indicator = tf.constant(rng.uniform(size=(3, 5000)) < 0.9)
    positives = tf.constant(np.stack([rng.uniform(size=5000) < p for p in (0.5, 0.002, 0.0)]))
    selected = batch_balanced_sample(indicator, positives, batch_size, fraction).numpy()
    assert not (selected & ~indicator.numpy()).any()
    pos = (selected & positives.numpy()).sum(1)
    assert selected.sum(1).tolist() == [batch_size] * 3
    assert pos[0] == int(batch_size * fraction)  # plenty of positives: capped at the fraction
    assert pos[1] == (indicator.numpy()[1] & positives.numpy()[1]).sum() < batch_size * fraction
    assert pos[2] == 0  # no positives: filled with negatives
    # rows sampled independently, differently on each call
    again = batch_balanced_sample(indicator, positives, batch_size, fraction).numpy()
    assert (again != selected).any()


def test_rpn_loss_is_low_for_the_targets_and_high_otherwise():
    rpn = RegionProposalNetwork(image_shape=(64, 64), stride=16, base_size=32.0,
                                scales=(1.0,), aspect_ratios=(1.0, 2.0))
    t = rpn.assign_targets(tf.constant([[0.1, 0.1, 0.6, 0.6]]), tf.constant([1]))
    t = {k: v[None] for k, v in t.items()}
    good_logits = tf.one_hot(t["rpn_cls_targets"], 2) * 20.0 - 10.0
    good = rpn.loss(t["rpn_reg_targets"], good_logits, t)
    bad = rpn.loss(t["rpn_reg_targets"] + 1.0, -good_logits, t)
    assert float(good["rpn_objectness"]) < 1e-3 and float(good["rpn_localization"]) < 1e-6
    assert float(bad["rpn_objectness"]) > 5 and float(bad["rpn_localization"]) > 0.01
