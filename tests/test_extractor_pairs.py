"""Every feature extractor under every meta-architecture: builds from a config and takes one
training step at a small input (issue 11). The server extractors are heavy: most are `slow`."""
import numpy as np
import pytest
import tensorflow as tf

from train.builder import build_model
from train.config import ConfigError, config_from_dict
from train.data.pipeline import pad_groundtruth

LIGHT = ["mobilenet_v1", "mobilenet_v2", "inception_v2"]
SERVER = ["vgg16", "resnet101", "inception_v3", "inception_resnet_v2"]
SLOW_PAIRS = {(e, m) for e in SERVER for m in ("ssd", "faster_rcnn", "rfcn")} - {
    ("resnet101", "rfcn")}  # one server pair stays in `make test`


def _config(extractor, meta, output_stride=None):
    fe = {"name": extractor, "batchnorm_momentum": 0.9}
    if extractor.startswith("mobilenet"):
        fe["depth_multiplier"] = 0.25
    if output_stride:
        fe["output_stride"] = output_stride
    if meta == "ssd":
        section = {"image_size": 96, "extra_depths": [64, 32]}
    else:
        section = {"image_size": 96, "max_image_size": 128,
                   "first_stage": {"anchors": {"base_size": 64.0}, "conv_depth": 32,
                                   "pre_nms_top_k": 64, "max_proposals": 8, "batch_size": 32},
                   "second_stage": {"batch_size": 8}}
        if meta == "rfcn":
            section.update(depth=32, crop_size=6)
        if meta == "faster_rcnn" and extractor == "vgg16":
            section.update(crop_size=14, maxpool_kernel_size=1)  # pool5 -> 7x7 for fc6
        if meta == "faster_rcnn" and extractor == "inception_resnet_v2":
            section.update(crop_size=17, maxpool_kernel_size=1)  # the zoo's atrous config
    return config_from_dict({"model": {"meta_architecture": meta, "feature_extractor": fe,
                                       meta: section}}).model


def _one_step(model):
    h, w = model.input_shape
    boxes, labels = tf.constant([[0.1, 0.1, 0.5, 0.5], [0.4, 0.3, 0.7, 0.8]]), tf.constant([1, 2])
    t = model.assign_targets(boxes, labels)
    t.update(pad_groundtruth(boxes, labels, 4), windows=tf.constant([1.0, 1.0]))
    targets = {k: tf.stack([v, v]) for k, v in t.items()}
    images = tf.random.uniform([2, h, w, 3], 0, 255, seed=1)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables[-4:]]
    with tf.GradientTape() as tape:
        losses = model.loss(model.predict(images, targets["windows"], targets, training=True),
                            targets)
        total = losses["total"] + model.regularization_loss()
    grads = tape.gradient(total, variables)
    tf.keras.optimizers.SGD(0.01).apply_gradients(
        [(g, v) for g, v in zip(grads, variables) if g is not None])
    assert np.isfinite(float(total))
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables[-4:]))
    return losses


PAIRS = [pytest.param(e, m, marks=[pytest.mark.slow] if (e, m) in SLOW_PAIRS else [])
         for e in LIGHT + SERVER for m in ("ssd", "faster_rcnn", "rfcn")
         if (e, m) != ("inception_v2", "rfcn")]


@pytest.mark.parametrize("extractor,meta", PAIRS)
def test_pair_builds_and_trains_one_step(extractor, meta):
    _one_step(build_model(_config(extractor, meta), num_classes=3))


@pytest.mark.slow
@pytest.mark.parametrize("meta", ["faster_rcnn", "rfcn"])
def test_resnet101_at_stride_8(meta):
    model = build_model(_config("resnet101", meta, output_stride=8), num_classes=3)
    assert model.rpn.stride == 8
    _one_step(model)


def test_unsupported_pairs_are_config_errors():
    with pytest.raises(ConfigError, match="inception_v2"):
        build_model(_config("inception_v2", "rfcn"), num_classes=3)
    with pytest.raises(ConfigError, match="output_stride.*valid: 16, 32"):
        build_model(_config("mobilenet_v2", "faster_rcnn", output_stride=8), num_classes=3)
    with pytest.raises(ConfigError, match="unknown feature extractor 'resnet50'.*resnet101"):
        build_model(_config("resnet50", "ssd"), num_classes=3)
