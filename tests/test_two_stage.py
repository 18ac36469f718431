"""Faster R-CNN and R-FCN: second-stage targets, model shapes, config errors, init_from, and
tiny models that overfit a few images (real trainings on the CPU)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.helpers import make_dataset, tiny_config, tiny_two_stage_config
from train.builder import build_model
from train.config import ConfigError, config_from_dict, load_config
from train.core.proposal_sampler import ProposalSampler
from train.data.pipeline import pad_groundtruth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_second_stage_targets_on_hand_made_boxes():
    gt = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0, 0, 0, 0]]])
    proposals = tf.constant([[[0.1, 0.1, 0.5, 0.55],   # IoU 0.89 with gt 0 -> class 2
                              [0.0, 0.0, 0.2, 0.2],    # IoU 0.05 -> background
                              [0.6, 0.6, 0.9, 0.95],   # IoU 0.86 with gt 1 -> class 7
                              [0.0, 0.0, 0.0, 0.0]]])  # padding (num_proposals = 3)
    sampler = ProposalSampler(batch_size=8, positive_fraction=0.5, add_groundtruth=False)
    s = sampler.sample(proposals, tf.constant([3]), gt, tf.constant([[2, 7, 0]]), tf.constant([2]))
    assert s["boxes"].shape == (1, 4, 4)  # min(batch_size, candidates)
    w = s["weights"].numpy()[0]
    assert w.sum() == 3  # the padding proposal is never sampled
    got = {tuple(np.round(b.astype(float), 2).tolist()): (int(c), r) for b, c, r, x in zip(
        s["boxes"].numpy()[0], s["cls_targets"].numpy()[0], s["reg_targets"].numpy()[0], w) if x}
    assert got[(0.1, 0.1, 0.5, 0.55)][0] == 2 and got[(0.6, 0.6, 0.9, 0.95)][0] == 7
    assert got[(0.0, 0.0, 0.2, 0.2)][0] == 0
    # codes of gt 0 against proposal 0: same centre y and height, x centre 0.025 left, w 0.4/0.45
    np.testing.assert_allclose(got[(0.1, 0.1, 0.5, 0.55)][1],
                               [0, 10 * -0.025 / 0.45, 0, 5 * np.log(0.4 / 0.45)], atol=1e-4)
    with_gt = ProposalSampler(batch_size=8, positive_fraction=1.0, add_groundtruth=True).sample(
        proposals, tf.constant([3]), gt, tf.constant([[2, 7, 0]]), tf.constant([2]))
    assert with_gt["weights"].numpy().sum() == 5  # + the two real gt boxes, not the padded one


def _targets(model, boxes, labels, window=(1.0, 1.0)):
    t = model.assign_targets(boxes, labels)
    t.update(pad_groundtruth(boxes, labels, 4), windows=tf.constant(window))
    return {k: tf.stack([v, v]) for k, v in t.items()}


@pytest.mark.parametrize("arch", ["faster_rcnn", "rfcn"])
def test_predict_loss_postprocess(arch):
    model = build_model(tiny_two_stage_config(arch).model, num_classes=3)
    assert model.input_shape == (160, 160)
    boxes, labels = tf.constant([[0.1, 0.1, 0.5, 0.5], [0.4, 0.3, 0.7, 0.8]]), tf.constant([1, 3])
    targets = _targets(model, boxes, labels, (1.0, 0.8))
    images = tf.random.uniform([2, 160, 160, 3], 0, 255)
    pred = model.predict(images, targets["windows"], targets, training=True)
    assert pred["proposals"].shape == (2, 32, 4)
    assert pred["class_logits"].shape == (2, 16, 4)  # second_stage.batch_size sampled
    k = 3 if arch == "faster_rcnn" else 1
    assert pred["refined_box_encodings"].shape == (2, 16, k, 4)
    losses = model.loss(pred, targets)
    assert set(losses) == {"rpn_localization", "rpn_objectness", "box_classifier_localization",
                           "box_classifier_classification", "total"}
    assert all(np.isfinite(float(v)) for v in losses.values())
    det = model.detect(images, targets["windows"])
    assert det["boxes"].shape == (2, 100, 4) and det["classes"].shape == (2, 100)
    n = int(det["num_detections"][0])
    b = det["boxes"][0, :n].numpy()
    assert np.all(b >= 0) and np.all(b <= 1) and np.all(b[:, 2] > b[:, 0])
    assert set(det["classes"][0, :n].numpy().tolist()) <= {1, 2, 3}
    assert model.regularization_loss().shape == ()
    names = model.backbone_layer_names()
    assert "conv1" in names and not any(n.startswith("FirstStageBoxPredictor") for n in names)


def test_rfcn_runs_the_whole_extractor_at_stride_16():
    model = build_model(tiny_two_stage_config("rfcn").model, num_classes=3)
    maps = model.first_stage.output
    assert maps["class_maps"].shape[1:] == (10, 10, 9 * 4)  # 160 / 16, k*k*(K+1)
    assert maps["box_maps"].shape[1:] == (10, 10, 9 * 4)
    assert "second_stage" not in model.keras_models  # per-region work has no weights


def test_perfect_second_stage_decodes_to_the_proposals():
    model = build_model(tiny_two_stage_config("faster_rcnn").model, num_classes=2)
    proposals = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.7]] + [[0, 0, 0, 0]] * 2])
    logits = tf.constant([[[-5., 5., -5.], [-5., -5., 5.], [5., -5., -5.], [5., -5., -5.]]])
    pred = {"box_classifier_boxes": proposals, "num_proposals": tf.constant([2]),
            "class_logits": logits, "refined_box_encodings": tf.zeros([1, 4, 2, 4])}
    det = model.postprocess(pred, tf.constant([[1.0, 0.5]]))  # the image is the left half
    n = int(det["num_detections"][0])
    confident = det["scores"][0, :n].numpy() > 0.5  # score_threshold 0: every class is listed
    found = sorted(zip(det["classes"][0, :n].numpy()[confident].tolist(),
                       det["boxes"][0, :n].numpy()[confident]))
    # box 1: x / 0.5, clipped to the image; box 2 lies wholly right of it (in the padding):
    # zero area after clipping, dropped
    assert [c for c, _ in found] == [1]
    np.testing.assert_allclose(found[0][1], [0.1, 0.2, 0.5, 1.0], atol=1e-5)


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_config_sections_and_their_errors(tmp_path):
    c = load_config(_write(tmp_path, "model:\n  faster_rcnn:\n    image_size: 300\n"))
    assert c.model.meta_architecture == "faster_rcnn" and c.model.ssd is None
    assert c.model.faster_rcnn.image_size == 300 and c.model.faster_rcnn.max_image_size == 1024
    assert "ssd" not in c.to_dict()["model"]
    with pytest.raises(ConfigError, match=r"c.yaml: 'model.ssd' and 'model.rfcn' are sections of two"):
        load_config(_write(tmp_path, "model:\n  ssd: {}\n  rfcn: {}\n"))
    with pytest.raises(ConfigError, match=r"'model.image_size' is an SSD setting: put it under "
                                          r"'model.ssd' \(it cannot be mixed with model.rfcn\)"):
        load_config(_write(tmp_path, "model:\n  image_size: 300\n  rfcn: {}\n"))
    with pytest.raises(ConfigError, match=r"'model.rfcn' given but 'model.meta_architecture' is "
                                          r"'faster_rcnn'"):
        load_config(_write(tmp_path, "model:\n  meta_architecture: faster_rcnn\n  rfcn: {}\n"))
    with pytest.raises(ConfigError, match=r"'model.faster_rcnn.first_stage.max_proposals' must "
                                          r"be in 1..model.faster_rcnn.first_stage.pre_nms_top_k"):
        load_config(_write(tmp_path, "model:\n  faster_rcnn:\n    first_stage: "
                                     "{max_proposals: 0}\n"))
    with pytest.raises(ConfigError, match=r"max_proposals' must be in 1.*got 500"):
        load_config(_write(tmp_path, "model:\n  rfcn:\n    first_stage: "
                                     "{max_proposals: 500, pre_nms_top_k: 400}\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'model.rfcn.second_stage.batchsize'"):
        load_config(_write(tmp_path, "model:\n  rfcn:\n    second_stage: {batchsize: 3}\n"))
    with pytest.raises(ConfigError, match=r"'model.faster_rcnn.image_size' \(1100, the shorter "
                                          r"edge\) exceeds"):
        load_config(_write(tmp_path, "model:\n  faster_rcnn: {image_size: 1100}\n"))
    with pytest.raises(ConfigError, match=r"train.init_scope' must be 'backbone' or 'all'"):
        load_config(_write(tmp_path, "train: {init_scope: heads}\n"))


def test_old_flat_ssd_configs_still_load():
    zoo = load_config(os.path.join(ROOT, "train", "zoo", "ssd_mobilenet_v2_shapes", "config.yaml"))
    assert zoo.model.meta_architecture == "ssd" and zoo.model.ssd.image_size == 256
    assert zoo.model.ssd.extra_depths == [256, 128, 128] and zoo.model.ssd.use_depthwise
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(zoo.to_dict())))  # new layout
    assert again == zoo


def test_image_smaller_than_the_rpn_stride_is_a_config_error():
    config = tiny_two_stage_config("faster_rcnn")
    config.model.faster_rcnn.image_size = config.model.faster_rcnn.max_image_size = 8
    with pytest.raises(ConfigError, match="smaller than the RPN's stride 16"):
        build_model(config.model, 3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("data") / "shapes"))


@pytest.fixture(scope="module")
def ssd_run(data, tmp_path_factory):
    from train.trainer import fit

    out = str(tmp_path_factory.mktemp("ssd") / "run")
    fit(tiny_config(steps=2, checkpoint_every=2), data, out, progress=False)
    return out


def test_init_from_an_ssd_backbone(ssd_run, data, tmp_path):
    from train.evaluate import load_run
    from train.trainer import fit

    out = str(tmp_path / "frcnn")
    fit(tiny_two_stage_config("faster_rcnn", steps=0, init_from=ssd_run), data, out,
        progress=False)
    report = json.load(open(os.path.join(out, "init_from.json")))
    _, _, ssd, _ = load_run(ssd_run)
    assert report["scope"] == "backbone" and report["restored"] == report["model_variables"]
    assert report["restored"] > 50
    source = {l.name: l for l in ssd.keras_model.layers}
    from train.init_from import _weights
    model = build_model(tiny_two_stage_config("faster_rcnn").model, 8)
    # the RPN map's layers and the box classifier's (conv_pw_12/13) both come from the SSD
    from train.init_from import initialize_from
    initialize_from(model, ssd_run)
    for layer in ("conv1", "conv_pw_11", "conv_pw_13"):
        first = model.first_stage if layer != "conv_pw_13" else model.keras_models["second_stage"]
        np.testing.assert_array_equal(first.get_layer(layer).weights[0].numpy(),
                                      source[layer].weights[0].numpy())
    assert len(_weights(model.keras_models, model.backbone_layer_names())) == report["restored"]


def test_init_from_errors(ssd_run, tmp_path):
    from train.init_from import initialize_from

    model = build_model(tiny_two_stage_config("faster_rcnn").model, 8)
    with pytest.raises(ConfigError, match="train.init_from: .*nowhere does not exist"):
        initialize_from(model, str(tmp_path / "nowhere"))
    zoo = os.path.join(ROOT, "train", "zoo", "ssd_mobilenet_v2_shapes")
    with pytest.raises(ConfigError, match="is a mobilenet_v2 model; this config's extractor is "
                                          "mobilenet_v1"):
        initialize_from(model, zoo)
    wide = tiny_two_stage_config("faster_rcnn")
    wide.model.feature_extractor.depth_multiplier = 0.5  # same names, other shapes
    with pytest.raises(ConfigError, match="no variable of .* matches this model's backbone by "
                                          "name and shape"):
        initialize_from(build_model(wide.model, 8), ssd_run)
    (tmp_path / "w.h5").write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="cannot read .*w.h5 as HDF5"):
        initialize_from(model, str(tmp_path / "w.h5"))


def test_init_from_a_keras_weights_file(ssd_run, tmp_path):
    from train.evaluate import load_run
    from train.init_from import initialize_from

    _, _, ssd, _ = load_run(ssd_run)
    ssd.keras_model.save_weights(str(tmp_path / "ssd.h5"))
    model = build_model(tiny_two_stage_config("rfcn").model, 8)
    report = initialize_from(model, str(tmp_path / "ssd.h5"))
    assert report["restored"] == report["model_variables"] > 50
    np.testing.assert_array_equal(model.first_stage.get_layer("conv_pw_13").weights[0].numpy(),
                                  ssd.keras_model.get_layer("conv_pw_13").weights[0].numpy())


def test_more_boxes_than_the_padding_allows_is_a_counted_warning(data):
    from train.core.image_resizer import KeepAspectRatioResizer
    from train.data import load_dataset
    from train.data.pipeline import cache_images

    dataset = load_dataset(data, "train")
    most = max(len(e.classes) for e in dataset.examples)
    cache = cache_images(dataset, KeepAspectRatioResizer(64, 80), progress=False,
                         max_boxes=most - 1)
    assert cache.boxes.shape[1] == most - 1
    assert sum(v for k, v in cache.skipped.items() if "max_boxes_per_image" in k) >= 1
    assert cache.images.shape[1:] == (80, 80, 3)
    h, w = (cache.windows * 80).round().astype(int)[0]
    assert min(h, w) == 64 or max(h, w) == 80
    assert cache.images[0, h:].max() == 0 and cache.images[0, :, w:].max() == 0  # padding


# Both train in test_convert_two_stage's fixtures (20 steps) in make test; overfitting is slow-only
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["faster_rcnn", "rfcn"])
def test_tiny_two_stage_model_overfits_a_few_images(arch, data, tmp_path):
    from train.evaluate import evaluate
    from train.report import write_report
    from train.trainer import fit

    out = str(tmp_path / arch)
    config = tiny_two_stage_config(arch, steps=15)
    fit(config, data, out, progress=False)
    early = evaluate(out, data, split="train", progress=False)
    config.train.steps = 260
    summary = fit(config, data, out, progress=False)
    late = evaluate(out, data, split="train", progress=False)
    history = summary["history"]
    assert history[-1]["total"] < 0.6 * history[0]["total"]
    for key in ("rpn_localization", "rpn_objectness", "box_classifier_localization",
                "box_classifier_classification"):
        assert key in history[-1]
    assert late["AP50"] > early["AP50"] + 0.3, (early["AP50"], late["AP50"])
    assert late["settings"]["num_proposals"] == 32
    few = evaluate(out, data, split="train", progress=False, num_proposals=5, out_dir=out)
    assert few["settings"]["num_proposals"] == 5
    assert json.load(open(os.path.join(out, "eval_proposals_5.json")))["AP"] == few["AP"]
    with pytest.raises(ConfigError, match="--num-proposals must be in 1..300"):
        evaluate(out, data, split="train", progress=False, num_proposals=301)
    report = open(write_report(out)).read()
    assert "box_classifier_classification" in report and arch in report


def test_image_size_override_keeps_the_padded_input_a_stride_multiple():
    """--image-size 300 on a 256/320 config: the cap scales to 375, rounded up to 384 (the
    export needs a padded input divisible by the RPN stride 16)."""
    from train.config import load_config
    from train.evaluate import apply_overrides
    config = apply_overrides(load_config("faster_rcnn_mobilenet_v2_shapes"), None, 300)
    assert (config.model.faster_rcnn.image_size, config.model.faster_rcnn.max_image_size) == (
        300, 384)
