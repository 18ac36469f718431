"""The model zoo: `train package` and the committed long-run SSD-MobileNet-v2."""
import json
import os

import numpy as np
import pytest

from tests.helpers import make_dataset, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "train", "zoo", "ssd_mobilenet_v2_shapes")


def _size(ckpt_prefix):
    d = os.path.dirname(ckpt_prefix)
    base = os.path.basename(ckpt_prefix)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith(base))


@pytest.mark.slow  # make test stays under 15 min on 2 cores
def test_package_keeps_the_weights_and_drops_the_optimizer(tmp_path):
    from train.evaluate import load_run
    from train.package import package_run
    from train.trainer import fit

    data = make_dataset(str(tmp_path / "data"), train=4, val=2)
    run = str(tmp_path / "run")
    fit(tiny_config(steps=2, checkpoint_every=2), data, run, progress=False)
    info = package_run(run, str(tmp_path / "zoo" / "tiny"))
    assert info["checkpoint"] == "checkpoints/ckpt-2" and info["weights_only"]
    _, _, trained, ckpt = load_run(run)
    _, _, packaged, packaged_ckpt = load_run(str(tmp_path / "zoo" / "tiny"))
    assert _size(packaged_ckpt) < 0.6 * _size(ckpt)  # RMSProp's slots are gone
    x = np.random.default_rng(0).uniform(0, 255, (1, trained.image_size, trained.image_size, 3))
    for a, b in zip(trained.keras_model(x, training=False), packaged.keras_model(x, training=False)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert json.load(open(tmp_path / "zoo" / "tiny" / "package.json"))["source_run"] == run
    with pytest.raises(FileExistsError, match="already exists"):
        package_run(run, str(tmp_path / "zoo" / "tiny"))
    assert os.listdir(tmp_path / "zoo") == ["tiny"]  # no temporary directory left behind


@pytest.mark.slow  # the float16 zoo model is loaded by test_two_stage_zoo_model_loads_and_detects
def test_float16_package_halves_the_weights_and_loads_back(tmp_path):
    from train.evaluate import load_run
    from train.package import package_run
    from train.trainer import fit

    data = make_dataset(str(tmp_path / "data"), train=4, val=2)
    run = str(tmp_path / "run")
    fit(tiny_config(steps=2, checkpoint_every=2), data, run, progress=False)
    full = package_run(run, str(tmp_path / "full"))
    half = package_run(run, str(tmp_path / "half"), dtype="float16")
    assert half["checkpoint"] == "weights_float16.npz" and half["dtype"] == "float16"
    assert half["bytes"] < 0.6 * full["bytes"]
    assert not os.path.exists(tmp_path / "half" / "checkpoints")
    _, _, trained, _ = load_run(run)
    _, _, packaged, path = load_run(str(tmp_path / "half"))
    assert path.endswith("weights_float16.npz")
    for a, b in zip(trained.keras_model.weights, packaged.keras_model.weights):
        assert b.dtype == a.dtype
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3, atol=1e-7)
    from train.config import save_config
    other = tiny_config(steps=2)
    other.model.feature_extractor.depth_multiplier = 0.5
    save_config(other, str(tmp_path / "half" / "config.yaml"))
    with pytest.raises(ValueError, match="weights_float16.npz: the weights do not match"):
        load_run(str(tmp_path / "half"))
    with pytest.raises(ValueError, match="--dtype must be one of"):
        package_run(run, str(tmp_path / "bad"), dtype="int4")


def test_zoo_model_loads_and_detects(tmp_path):
    """Guards the committed checkpoint against changes to the SSD code: it must still load into
    the model its config builds and find the bundled dataset's objects."""
    from train.evaluate import evaluate

    info = json.load(open(os.path.join(ZOO, "package.json")))
    assert info["bytes"] < 10e6
    data = make_dataset(str(tmp_path / "data"), train=1, val=24, seed=3)
    report = evaluate(ZOO, data, out_dir=str(tmp_path), progress=False)
    assert report["num_images"] == 24
    assert report["AP50"] > 0.4, report["coco_summary"]  # 0.647 on the 1000 `large` val images



@pytest.mark.parametrize("name", ["faster_rcnn_mobilenet_v2_shapes", "rfcn_mobilenet_v2_shapes"])
def test_two_stage_zoo_model_loads_and_detects(name, tmp_path):
    """The float16 Faster R-CNN and R-FCN packages (AP 0.508 and 0.447 at 300 proposals on the
    1000 `large` val images) still load into the model their config builds and find the
    objects of freshly generated images."""
    from train.evaluate import evaluate

    zoo = os.path.join(ROOT, "train", "zoo", name)
    info = json.load(open(os.path.join(zoo, "package.json")))
    assert info["dtype"] == "float16" and os.path.getsize(
        os.path.join(zoo, info["checkpoint"])) < 5e6  # the repository keeps no file over 5 MB
    data = make_dataset(str(tmp_path / "data"), train=1, val=16, seed=3)
    report = evaluate(zoo, data, out_dir=str(tmp_path), progress=False, num_proposals=50)
    assert report["num_images"] == 16 and report["settings"]["num_proposals"] == 50
    assert report["AP50"] > 0.4, report["coco_summary"]
