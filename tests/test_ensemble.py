"""The ensemble of issue 24 on the zoo's two-stage models (real trained weights, no training
here): the pooled-proposal procedure recomputed by hand, one member = that model, the CLI
end to end with greedy selection and multicrop, and bad input."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from edge_runtime.images import read_image
from tests.helpers import make_dataset
from train.__main__ import main
from train.ensemble.ensemble import Ensemble, load_members

FRCNN = "train/zoo/faster_rcnn_mobilenet_v2_shapes"
RFCN = "train/zoo/rfcn_mobilenet_v2_shapes"
SSD = "train/zoo/ssd_mobilenet_v2_shapes"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("ens_data")), train=2, val=4)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("ens_held_out")), train=2, val=4, seed=1)


@pytest.fixture(scope="module")
def members():
    return load_members([FRCNN, RFCN], "proposals")


@pytest.fixture(scope="module")
def image(data):
    name = sorted(os.listdir(os.path.join(data, "val")))[0]
    return read_image(os.path.join(data, "val", name))


def test_pooled_proposals_are_averaged_over_every_box_classifier(members, image):
    """Recomputed member by member through the detector contract: the pool is each member's
    valid proposals mapped to the image; every member classifies the whole pool (mapped into
    its own input); scores and boxes are the plain means."""
    got = Ensemble(members).proposals_predictions(image)
    pooled, valid, per_member = [], [], []
    for m in members:
        canvas, window = m.model.image_resizer.resize_numpy(image)
        scale = np.tile(window, 2)
        p = m.model.propose(tf.constant(canvas[None], tf.float32), window[None])
        n = int(p["num_proposals"][0])
        pooled.append(p["proposals"][0].numpy() / scale)
        valid.append(np.arange(pooled[-1].shape[0]) < n)
        per_member.append((p["state"], scale))
    pool = np.concatenate(pooled) * np.concatenate(valid)[:, None]
    valid = np.concatenate(valid)
    assert valid.sum() > 0 and (got["valid"] == valid).all()
    np.testing.assert_allclose(got["proposals"], pool, atol=1e-6)
    scores, boxes = [], []
    for m, (state, scale) in zip(members, per_member):
        out = m.model.classify(state, tf.constant((pool * scale)[None], tf.float32))
        scores.append(out["scores"][0].numpy() * valid[:, None])
        boxes.append(out["boxes"][0].numpy() / scale)
    np.testing.assert_allclose(got["scores"], (scores[0] + scores[1]) / 2, atol=1e-5)
    np.testing.assert_allclose(got["boxes"], (boxes[0] + boxes[1]) / 2, atol=1e-5)
    assert got["scores"].shape == (2 * 300, 8) and got["boxes"].shape == (2 * 300, 8, 4)


def test_one_member_is_that_model(members, image):
    """The pooled path with one member gives its own detect's detections."""
    for m in members:
        a = Ensemble([m], combine="proposals").detect(image)
        b = Ensemble([m], combine="detections").detect(image)
        assert len(a[1]) > 0
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-5)


def test_multicrop_merges_crops_back_into_the_image(members, image):
    ens = Ensemble(members[:1], combine="detections", multicrop_spec="2x2:0.6")
    assert ens.evaluations_per_image == 5
    boxes, scores, classes = ens.detect(image)
    assert len(scores) > 0 and boxes.min() >= 0 and boxes.max() <= 1
    assert np.all(np.diff(scores) <= 0) and set(classes.tolist()) <= set(range(1, 9))


def test_two_member_ensemble_cli_with_greedy_selection(data, held_out, tmp_path, capsys):
    out = tmp_path / "ens"
    rc = main(["ensemble", "--runs", f"{FRCNN},{RFCN}", "--data", data, "--select", "greedy",
               "--select-data", held_out, "--similarity", "1.0", "--multicrop", "2x2:0.6",
               "--score-members", "--image-size", "224", "--out", str(out), "--no-progress"])
    assert rc == 0
    report = json.loads((out / "eval.json").read_text())
    for key in ("AP", "AP50", "AP_small", "AR100", "AR_small", "per_category_AP"):
        assert key in report
    e = report["ensemble"]
    sel = e["selection"]
    assert sel["data"] == os.path.abspath(held_out) and len(sel["decisions"]) == 2
    assert [m["name"] for m in e["members"]] == sel["chosen"] == sorted(
        sel["candidates"], key=lambda n: -sel["candidates"][n]["AP"])
    assert e["network_evaluations_per_image"] == 10 and report["num_images"] == 4
    assert e["image_size"] == 224
    assert report["ms_per_image"]["median"] > 0
    alone = e["members_alone"]
    assert set(alone) == set(sel["chosen"]) and all("AP" in v for v in alone.values())
    assert (out / "detections_val.json").exists()
    assert "network evaluations per image" in capsys.readouterr().out


def _labels_changed(tmp_path):
    run = tmp_path / "other_labels"
    shutil.copytree(RFCN, run)
    labels = json.loads((run / "labels.json").read_text())
    labels["category_names"] = list(reversed(labels["category_names"]))
    (run / "labels.json").write_text(json.dumps(labels))
    return str(run)


@pytest.mark.parametrize("runs,extra,match", [
    ("runs/no_such_run", [], "runs/no_such_run: not a trained run"),
    (f"{FRCNN},{SSD}", [], f"{SSD}: an ssd model has no proposals"),
    (f"{FRCNN},LABELS", [], "other_labels: labels"),
    (f"{FRCNN},{FRCNN}", [], "listed twice"),
    (",", [], "no member runs"),
    (FRCNN, ["--multicrop", "3x2:0.5"], "multicrop spec '3x2:0.5'"),
    (FRCNN, ["--select", "greedy"], "the split the scores are reported on"),
    (FRCNN, ["--image-size", "8"], "--image-size must be >= 32, got 8"),
])
def test_bad_members_and_options_exit_2_before_evaluating(data, tmp_path, capsys, runs, extra,
                                                          match):
    runs = runs.replace("LABELS", _labels_changed(tmp_path))
    assert main(["ensemble", "--runs", runs, "--data", data, "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
