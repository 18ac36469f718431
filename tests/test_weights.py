"""``model.feature_extractor.weights``: keras.applications weights (ImageNet from the Keras cache,
or a .h5 / Keras 3 .weights.h5 file) into our rebuilt backbones, strictly by layer name. No network:
every weights file is written here from a randomly initialised keras.applications model."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tf_keras as keras

from tests.helpers import make_dataset, tiny_config
from train.config import ConfigError
from train.feature_extractors import build_extractor
from train.feature_extractors.weights import imagenet_files, load_weights, resolve_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _randomize(model, seed):
    """Random batch-norm statistics and biases too, so that a layer left at its initial
    values would show (kernels keep their random initialisation)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.name.split("/")[-1]
        if name.startswith(("gamma", "moving_variance")):
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
        elif name.startswith(("beta", "moving_mean", "bias")):
            w.assign(rng.normal(0.0, 0.1, w.shape).astype(np.float32))


def _application_file(tmp_path_factory, app, alpha, seed, endpoints):
    """Writes a random keras.applications model's weights -> (path, {layer: [arrays]}, image,
    {endpoint layer: its output on image}). Everything is read out of the model here, at once:
    building an extractor later may build Keras models in a graph of their own, which leaves
    tf_keras models made before it unusable."""
    model = app(weights=None, include_top=False, alpha=alpha, input_shape=(224, 224, 3))
    _randomize(model, seed)
    path = str(tmp_path_factory.mktemp("weights") / f"{model.name}.h5")
    model.save_weights(path)
    image = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    features = keras.Model(model.input, [model.get_layer(e).output for e in endpoints])
    outputs = features(image, training=False)
    outputs = [outputs] if len(endpoints) == 1 else outputs
    return (path, {l.name: [w.numpy() for w in l.weights] for l in model.layers}, image,
            {e: o.numpy() for e, o in zip(endpoints, outputs)})


@pytest.fixture(scope="module")
def v2_file(tmp_path_factory):
    return _application_file(tmp_path_factory, keras.applications.MobileNetV2, 0.35, 1,
                             ["out_relu"])


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory):
    return _application_file(tmp_path_factory, keras.applications.MobileNet, 0.25, 2,
                             ["conv_pw_11_relu"])


def _assert_same_as_application(backbone, application, summary, endpoint, layer):
    _, weights, image, outputs = application
    checked = 0
    for l in backbone.layers:
        for ours, theirs in zip(l.weights, weights[l.name] if l.weights else []):
            np.testing.assert_array_equal(ours.numpy(), theirs)
            checked += 1
    assert checked == summary["tensors"] == len(backbone.weights)
    assert summary["parameters"] == backbone.count_params()
    # At even sizes Keras' ((0, 1), (0, 1)) padding is TF SAME's, so the outputs agree too.
    expected = outputs[layer]
    got = backbone(image, training=False)[endpoint].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_mobilenet_v2_h5_into_our_backbone(v2_file):
    path = v2_file[0]
    backbone = build_extractor("mobilenet_v2", depth_multiplier=0.35).backbone(
        (224, 224, 3), endpoints=["C5"])
    summary = load_weights(backbone, path)
    assert summary["file"] == path and summary["format"] == "keras_h5"
    assert summary["skipped_in_file"]["tensors"] == 0
    _assert_same_as_application(backbone, v2_file, summary, "C5", "out_relu")


def test_mobilenet_v1_h5_into_our_backbone_extra_layers_are_skipped(v1_file):
    path = v1_file[0]
    backbone = build_extractor("mobilenet_v1", depth_multiplier=0.25).backbone(
        (224, 224, 3), endpoints=["C4"])  # up to conv_pw_11: conv_*_12/13 stay in the file
    summary = load_weights(backbone, path)
    assert set(summary["skipped_in_file"]["layers"]) == {
        "conv_dw_12", "conv_dw_12_bn", "conv_pw_12", "conv_pw_12_bn",
        "conv_dw_13", "conv_dw_13_bn", "conv_pw_13", "conv_pw_13_bn"}
    assert summary["tensors"] + summary["skipped_in_file"]["tensors"] == summary["file_tensors"]
    _assert_same_as_application(backbone, v1_file, summary, "C4", "conv_pw_11_relu")


def test_imagenet_cache_file_names():
    assert imagenet_files("mobilenet_v1", 0.25)["notop"] == "mobilenet_2_5_224_tf_no_top.h5"
    assert imagenet_files("mobilenet_v1", 1.0)["notop"] == "mobilenet_1_0_224_tf_no_top.h5"
    assert (imagenet_files("mobilenet_v2", 0.35)["notop"]
            == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")
    assert (imagenet_files("mobilenet_v2", 1)["notop"]
            == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
    for name in ("vgg16", "resnet101", "inception_v3", "inception_resnet_v2"):
        files = imagenet_files(name)
        assert files["notop"] == f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"
        assert files["top"] == f"{name}_weights_tf_dim_ordering_tf_kernels.h5"
    with pytest.raises(ConfigError, match="no Inception v2"):
        imagenet_files("inception_v2")
    with pytest.raises(ConfigError, match="depth_multiplier 0.35, 0.5, .* not 0.6"):
        imagenet_files("mobilenet_v2", 0.6)
    with pytest.raises(ConfigError, match="valid: mobilenet_v1, mobilenet_v2, vgg16"):
        imagenet_files("alexnet")


def test_imagenet_from_the_keras_cache_and_its_errors(v1_file, tmp_path, monkeypatch):
    path = v1_file[0]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    extractor = build_extractor("mobilenet_v1", depth_multiplier=0.25)
    if os.path.exists("/tmp/.keras/models/mobilenet_2_5_224_tf_no_top.h5"):
        pytest.skip("this machine has the real file in /tmp/.keras (tf_keras' fallback cache)")
    with pytest.raises(ConfigError, match=r"(?s)imagenet: mobilenet_2_5_224_tf_no_top.h5 is not "
                       r"in the Keras cache .*keras_home/models.*nothing is downloaded.*"
                       r"k.applications.MobileNet\(weights='imagenet', alpha=0.25, "
                       r"input_shape=\(224, 224, 3\), include_top=False\)"):
        resolve_weights("imagenet", extractor)
    cached = tmp_path / "keras_home" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    cached.parent.mkdir(parents=True)
    shutil.copy(path, cached)
    assert resolve_weights("imagenet", extractor) == str(cached)
    backbone = extractor.backbone((96, 96, 3))
    assert load_weights(backbone, "imagenet", extractor)["file"] == str(cached)
    # VGG-16's Faster R-CNN box classifier (fc1/fc2) needs the with-top file
    with pytest.raises(ConfigError, match=r"(?s)vgg16_weights_tf_dim_ordering_tf_kernels.h5 "
                       r"\(the with-top file.*fc1/fc2\).*VGG16\(weights='imagenet', "
                       r"include_top=True\)"):
        resolve_weights("imagenet", "vgg16", {"block5_conv3", "fc1", "fc2"})


def test_wrong_architecture_or_width_and_bad_paths(v1_file, v2_file, tmp_path):
    v2 = build_extractor("mobilenet_v2", depth_multiplier=0.35).backbone((96, 96, 3))
    before = v2.get_layer("Conv1").kernel.numpy()
    with pytest.raises(ConfigError, match=r"weights: .*mobilenet_0.25_224.h5 does not fit this "
                       r"model's mobilenet_v2 backbone: \d+ of its \d+ backbone weights are not "
                       r"in the file \(first: Conv1/kernel \(3, 3, 3, 16\)"):
        load_weights(v2, v1_file[0], build_extractor("mobilenet_v2", depth_multiplier=0.35))
    np.testing.assert_array_equal(v2.get_layer("Conv1").kernel.numpy(), before)  # nothing loaded
    wide = build_extractor("mobilenet_v2", depth_multiplier=0.5).backbone((96, 96, 3))
    with pytest.raises(ConfigError, match=r"mobilenetv2_0.35_224.h5 does not fit .*: \d+ have "
                       r"another shape \(first: \w+/\w+: file \(\d+, \d+, \d+, \d+\), model"):
        load_weights(wide, v2_file[0])
    with pytest.raises(ConfigError, match=r"weights: .*nowhere.h5 does not exist"):
        load_weights(wide, str(tmp_path / "nowhere.h5"))
    with pytest.raises(ConfigError, match=r"weights: .* is a directory, not a weights file"):
        load_weights(wide, str(tmp_path))
    (tmp_path / "w.h5").write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match=r"weights: .*w.h5 is not an HDF5 file"):
        load_weights(wide, str(tmp_path / "w.h5"))
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ConfigError, match=r"other.h5 is an HDF5 file but not Keras weights"):
        load_weights(wide, str(tmp_path / "other.h5"))


def _renamed_copy(src, dst, prefix):
    """A copy of a legacy .h5 with every layer renamed (as Keras 2.0 and other sessions named
    automatically named layers: conv2d_1 for today's conv2d)."""
    import h5py

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        for key, value in f.attrs.items():
            g.attrs[key] = value
        new_names = [f"{prefix}_{i}" for i in range(len(names))]
        g.attrs["layer_names"] = [n.encode() for n in new_names]
        for old, new in zip(names, new_names):
            group = g.create_group(new)
            weight_names = []
            for w in f[old].attrs["weight_names"]:
                w = w.decode() if isinstance(w, bytes) else w
                renamed = f"{new}/{w.split('/')[-1]}"
                group[renamed] = np.asarray(f[old][w])
                weight_names.append(renamed.encode())
            group.attrs["weight_names"] = weight_names


def test_a_keras_applications_file_with_other_layer_names_loads_by_layer_order(v1_file,
                                                                                 tmp_path):
    renamed = str(tmp_path / "renamed.h5")
    _renamed_copy(v1_file[0], renamed, "conv2d")
    extractor = build_extractor("mobilenet_v1", depth_multiplier=0.25)
    backbone = extractor.backbone((224, 224, 3), endpoints=["C4"])
    summary = load_weights(backbone, renamed, extractor)
    assert summary["matched_by"] == "layer order"
    _assert_same_as_application(backbone, v1_file, summary, "C4", "conv_pw_11_relu")


def test_canonical_names_renumber_keras_automatic_names():
    from train.feature_extractors.weights import canonical_names

    def build():
        x = keras.Input((8, 8, 3))
        y = keras.layers.Conv2D(4, 3)(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.Conv2D(4, 1)(y)
        return keras.Model(x, keras.layers.Conv2D(2, 1, name="conv_dw_1")(y))

    first, second = build(), build()  # the second's automatic names are numbered on
    assert [l.name for l in first.layers[1:]] != [l.name for l in second.layers[1:]]
    for model in (first, second):
        names = canonical_names(model.layers)
        assert [names[l.name] for l in model.layers[1:]] == [
            "conv2d", "batch_normalization", "conv2d_1", "conv_dw_1"]


@pytest.mark.slow
def test_inception_v3_file_from_another_session_loads_by_layer_order(tmp_path):
    from train.feature_extractors import EXTRACTORS

    if "inception_v3" not in EXTRACTORS:
        pytest.skip("no inception_v3 extractor")
    keras.layers.Conv2D(1, 1), keras.layers.BatchNormalization()  # this session's names go on
    application = keras.applications.InceptionV3(weights=None, include_top=False)
    _randomize(application, 4)
    application.save_weights(str(tmp_path / "v3.h5"))
    kernels = {l.name: l.weights[0].numpy() for l in application.layers if l.weights}
    from train.feature_extractors.weights import canonical_names

    canonical = canonical_names(application.layers)
    extractor = build_extractor("inception_v3")
    backbone = extractor.backbone((299, 299, 3))
    summary = load_weights(backbone, str(tmp_path / "v3.h5"), extractor)
    assert summary["tensors"] == len(backbone.weights) and summary["matched_by"] == "layer order"
    ours = {l.name: l for l in backbone.layers}
    for name, kernel in kernels.items():
        np.testing.assert_array_equal(ours[canonical[name]].weights[0].numpy(), kernel)


_KERAS3 = """
import os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras, numpy as np
assert int(keras.__version__.split(".")[0]) >= 3, keras.__version__
model = keras.applications.MobileNetV2(weights=None, include_top=True, alpha=0.35,
                                       input_shape=(224, 224, 3))
rng = np.random.default_rng(3)
for w in model.weights:
    if w.name in ("gamma", "moving_variance"):
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    elif w.name in ("beta", "moving_mean", "bias"):
        w.assign(rng.normal(0.0, 0.1, w.shape).astype("float32"))
model.save_weights(sys.argv[1] + "/k3.weights.h5")
image = rng.uniform(-1, 1, (1, 224, 224, 3)).astype("float32")
features = keras.Model(model.input, model.get_layer("out_relu").output)
np.save(sys.argv[1] + "/image.npy", image)
np.save(sys.argv[1] + "/out_relu.npy", np.asarray(features(image, training=False)))
np.save(sys.argv[1] + "/Conv1.npy", np.asarray(model.get_layer("Conv1").kernel))
np.save(sys.argv[1] + "/dw.npy", np.asarray(model.get_layer("block_5_depthwise").weights[0]))
"""


def test_keras3_weights_h5(tmp_path):
    pytest.importorskip("keras")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    run = subprocess.run([sys.executable, "-c", _KERAS3, str(tmp_path)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    if run.returncode and "AssertionError" in run.stderr:
        pytest.skip(f"the installed keras is not Keras 3: {run.stderr.splitlines()[-1]}")
    assert run.returncode == 0, run.stderr[-3000:]
    backbone = build_extractor("mobilenet_v2", depth_multiplier=0.35).backbone(
        (224, 224, 3), endpoints=["C5"])
    summary = load_weights(backbone, str(tmp_path / "k3.weights.h5"))
    assert summary["format"] == "keras3" and summary["tensors"] == len(backbone.weights)
    assert summary["skipped_in_file"]["layers"] == ["predictions"]  # the top's Dense
    np.testing.assert_array_equal(backbone.get_layer("Conv1").kernel.numpy(),
                                  np.load(tmp_path / "Conv1.npy"))
    np.testing.assert_array_equal(backbone.get_layer("block_5_depthwise").weights[0].numpy(),
                                  np.load(tmp_path / "dw.npy"))
    expected = np.load(tmp_path / "out_relu.npy")
    got = backbone(np.load(tmp_path / "image.npy"), training=False)["C5"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.slow  # make test stays under 15 min on 2 cores
def test_fit_loads_imagenet_weights_at_a_fresh_start_only(v1_file, tmp_path, monkeypatch):
    from train.evaluate import load_run
    from train.trainer import fit

    cached = tmp_path / "keras_home" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    cached.parent.mkdir(parents=True)
    shutil.copy(v1_file[0], cached)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    data = make_dataset(str(tmp_path / "shapes"))
    config = tiny_config(steps=1, checkpoint_every=1)
    config.model.feature_extractor.weights = "imagenet"
    out = str(tmp_path / "run")
    fit(config, data, out, progress=False)
    summary = json.load(open(os.path.join(out, "weights.json")))
    assert summary["file"] == str(cached) and summary["weights"] == "imagenet"
    _, _, model, _ = load_run(out)
    assert summary["tensors"] == len([w for l in model.keras_model.layers
                                      if l.name in model.backbone_layer_names()
                                      for w in l.weights])
    # one Adam step (lr 3e-4 in warm-up) away from the file's kernels, not from a fresh init
    for layer in ("conv1", "conv_pw_13"):
        file_kernel = v1_file[1][layer][0]
        assert np.abs(model.keras_model.get_layer(layer).weights[0].numpy()
                      - file_kernel).max() < 2e-3
    os.remove(os.path.join(out, "weights.json"))
    fit(config, data, out, progress=False)  # resumed at step 1: nothing reloaded
    assert not os.path.exists(os.path.join(out, "weights.json"))


def _caffe_application(tmp_path, app, first_conv, seed):
    """A random keras.applications model (64x64, notop) saved -> (path, {layer: [arrays]},
    pixels x [1, 64, 64, 3] in [0, 255], Keras' first conv output on preprocess_input(x,
    mode="caffe")). All read out at once, before any extractor is built (see above)."""
    from tf_keras.applications.imagenet_utils import preprocess_input

    model = app(weights=None, include_top=False, input_shape=(64, 64, 3))
    _randomize(model, seed)
    path = str(tmp_path / f"{model.name}.h5")
    model.save_weights(path)
    x = np.random.default_rng(seed).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    caffe = preprocess_input(x.copy(), mode="caffe")
    expected = keras.Model(model.input, model.get_layer(first_conv).output)(caffe).numpy()
    return path, {l.name: [w.numpy() for w in l.weights] for l in model.layers}, x, expected


def _assert_caffe_folded(backbone, summary, first_conv, weights, got, expected, border):
    assert summary["preprocessing"] == {"mode": "caffe", "layer": first_conv, "order": "BGR",
                                        "mean": [103.939, 116.779, 123.68]}
    inner = (slice(None), slice(border, -border), slice(border, -border))
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0,
                               atol=1e-5 * np.abs(expected).max())
    assert np.abs(got - expected).max() > 1e-3 * np.abs(expected).max()  # the border differs
    checked = 0
    for layer in backbone.layers:
        if layer.name == first_conv or not layer.weights:
            continue
        for ours, theirs in zip(layer.weights, weights[layer.name]):
            np.testing.assert_array_equal(ours.numpy(), theirs)
            checked += 1
    assert checked == summary["tensors"] - 2


def test_vgg16_caffe_preprocessing_is_folded_into_block1_conv1_not_by_init_from(tmp_path,
                                                                                 capsys):
    from types import SimpleNamespace

    from train.init_from import initialize_from

    path, weights, x, expected = _caffe_application(tmp_path, keras.applications.VGG16,
                                                    "block1_conv1", 5)
    extractor = build_extractor("vgg16")
    backbone = extractor.backbone((64, 64, 3))
    summary = load_weights(backbone, path, extractor)
    assert ("folded caffe preprocessing (BGR, mean 103.939 116.779 123.68) into block1_conv1"
            in capsys.readouterr().out)
    first = keras.Model(backbone.input, backbone.get_layer("block1_conv1").output)
    got = first(x / 127.5 - 1).numpy()  # block1_conv1 is 3x3 SAME in both: the same grid
    _assert_caffe_folded(backbone, summary, "block1_conv1", weights, got, expected, 1)
    # a bare Keras model and no extractor: unknown preprocessing, nothing folded
    assert load_weights(backbone, path)["preprocessing"] is None
    np.testing.assert_array_equal(backbone.get_layer("block1_conv1").kernel.numpy(),
                                  weights["block1_conv1"][0])
    # init_from (our runs' weights, already in our convention) folds nothing either
    load_weights(backbone, path, extractor)
    ours = str(tmp_path / "ours.h5")
    backbone.save_weights(ours)
    backbone.get_layer("block1_conv1").kernel.assign(np.zeros((3, 3, 3, 64), np.float32))
    names = {l.name for l in backbone.layers}
    initialize_from(SimpleNamespace(keras_models={"model": backbone}, extractor=extractor,
                                    backbone_layer_names=lambda: names), ours)
    np.testing.assert_array_equal(
        backbone.get_layer("block1_conv1").kernel.numpy(),
        127.5 * weights["block1_conv1"][0][:, :, ::-1, :])


@pytest.mark.slow  # a 170 MB weights file; VGG-16's fold test covers the same code in make test
def test_resnet101_caffe_preprocessing_is_folded_into_conv1_conv(tmp_path):
    path, weights, x, expected = _caffe_application(tmp_path, keras.applications.ResNet101,
                                                    "conv1_conv", 6)
    extractor = build_extractor("resnet101")
    # Keras pads conv1 by 3 on each side (7x7/2: output i centred on pixel 2i); ours is SAME
    # (2 before, 3 after at 64: centred on 2i + 1), so ours sees the image one pixel down and
    # right in a 66x66 input to sample the same grid.
    backbone = extractor.backbone((66, 66, 3), endpoints=["C3"])
    summary = load_weights(backbone, path, extractor)
    image = np.zeros((1, 66, 66, 3), np.float32)
    image[:, 1:65, 1:65] = x / 127.5 - 1
    first = keras.Model(backbone.input, backbone.get_layer("conv1_conv").output)
    got = first(image).numpy()[:, :32, :32]
    _assert_caffe_folded(backbone, summary, "conv1_conv", weights, got, expected, 2)
