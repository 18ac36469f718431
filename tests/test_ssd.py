import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config
from train.builder import build_model
from train.config import ConfigError, config_from_dict


@pytest.fixture(scope="module")
def model():
    return build_model(tiny_config().model, num_classes=3)


def test_ssd_mobilenet_v1_300_has_1917_anchors():
    config = config_from_dict({"model": {"image_size": 300, "feature_extractor": {
        "name": "mobilenet_v1", "depth_multiplier": 0.25}}})
    ssd = build_model(config.model, num_classes=90)
    assert [s[0] for s in ssd.feature_map_sizes] == [19, 10, 5, 3, 2, 1]
    assert ssd.num_anchors == 1917
    out = ssd.predict(tf.zeros([1, 300, 300, 3]))
    assert out["box_encodings"].shape == (1, 1917, 4)
    assert out["class_logits"].shape == (1, 1917, 91)


def test_predict_loss_postprocess_shapes(model):
    images = tf.random.uniform([2, 128, 128, 3], 0, 255)
    pred = model.predict(images)
    a = model.num_anchors
    assert pred["box_encodings"].shape == (2, a, 4)
    assert pred["class_logits"].shape == (2, a, 4)
    boxes = tf.constant([[0.1, 0.1, 0.5, 0.5], [0.4, 0.3, 0.9, 0.8]])
    t1 = model.assign_targets(boxes, tf.constant([1, 3]))
    t2 = model.assign_targets(tf.zeros([0, 4]), tf.zeros([0], tf.int32))  # image without objects
    targets = {k: tf.stack([t1[k], t2[k]]) for k in ("cls_targets", "reg_targets", "reg_weights",
                                                    "cls_weights")}
    assert float(tf.reduce_sum(targets["reg_weights"][0])) >= 2
    assert float(tf.reduce_sum(targets["reg_weights"][1])) == 0
    losses = model.loss(pred, targets)
    assert all(np.isfinite(float(v)) and float(v) > 0 for v in losses.values())
    det = model.postprocess(pred)
    assert det["boxes"].shape == (2, 100, 4) and det["classes"].shape == (2, 100)
    n = int(det["num_detections"][0])
    assert np.all(det["boxes"][0, :n].numpy() >= 0) and np.all(det["boxes"][0, :n].numpy() <= 1)
    assert set(det["classes"][0, :n].numpy().tolist()) <= {1, 2, 3}


def test_perfect_predictions_decode_to_the_ground_truth(model):
    boxes = tf.constant([[0.1, 0.1, 0.5, 0.5], [0.45, 0.3, 0.95, 0.8]])
    t = model.assign_targets(boxes, tf.constant([2, 3]))
    logits = tf.one_hot(t["cls_targets"], 4) * 20.0 - 10.0  # confident, correct classes
    pred = {"box_encodings": t["reg_targets"][None], "class_logits": logits[None]}
    det = model.postprocess(pred)
    n = int(det["num_detections"][0])
    found = sorted(zip(det["classes"][0, :n].numpy().tolist(),
                       np.round(det["boxes"][0, :n].numpy(), 3).tolist()))
    assert [c for c, _ in found] == [2, 3]
    np.testing.assert_allclose([b for _, b in found], boxes.numpy(), atol=1e-3)


def test_loss_is_lower_for_correct_predictions(model):
    t = model.assign_targets(tf.constant([[0.2, 0.2, 0.6, 0.7]]), tf.constant([1]))
    targets = {k: v[None] for k, v in t.items() if k != "match"}
    good = {"box_encodings": t["reg_targets"][None],
            "class_logits": (tf.one_hot(t["cls_targets"], 4) * 20.0 - 10.0)[None]}
    bad = {"box_encodings": -good["box_encodings"] + 1.0, "class_logits": -good["class_logits"]}
    assert float(model.loss(good, targets)["total"]) < 0.01
    assert float(model.loss(bad, targets)["total"]) > 1.0


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_hard_negative_mining_losses(loss):
    cfg = tiny_config().model
    cfg.ssd.loss.classification = loss
    ssd = build_model(cfg, num_classes=2)
    t = ssd.assign_targets(tf.constant([[0.2, 0.2, 0.6, 0.7]]), tf.constant([1]))
    targets = {k: v[None] for k, v in t.items() if k != "match"}
    pred = ssd.predict(tf.zeros([1, 128, 128, 3]))
    assert np.isfinite(float(ssd.loss(pred, targets)["total"]))


def test_unknown_meta_architecture_and_extractor():
    cfg = tiny_config().model
    cfg.meta_architecture = "yolo"
    with pytest.raises(ConfigError, match="unknown model.meta_architecture 'yolo'"):
        build_model(cfg, 3)
    cfg = tiny_config().model
    cfg.feature_extractor.name = "resnet_999"
    with pytest.raises(ConfigError, match="resnet_999"):
        build_model(cfg, 3)
