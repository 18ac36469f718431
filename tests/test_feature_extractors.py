"""Feature extractors: published parameter counts, endpoint strides, SSD extra layers, hyperparameters."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from train.feature_extractors import build_extractor, ssd_feature_maps
from train.feature_extractors.base import rebuild_application

# The mobile extractors (with a depth multiplier); the server ones: tests/test_server_extractors.py.
MOBILE = ("mobilenet_v1", "mobilenet_v2", "inception_v2")


def bn_layers(model):
    return [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


@pytest.fixture(scope="module")
def backbones_300():
    """{name: (extractor, backbone for 300x300)} at depth multiplier 1."""
    out = {}
    for name in MOBILE:
        e = build_extractor(name, batchnorm_momentum=0.9)
        out[name] = (e, e.backbone((300, 300, 3)))
    return out


# --- registry ---------------------------------------------------------------------------------------

def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_extractor("resnet_9000")
    for name in ("resnet_9000", "mobilenet_v1", "mobilenet_v2", "inception_v2"):
        assert name in str(err.value)


def test_unknown_kwarg_is_named():
    with pytest.raises(ValueError, match="depth_multipler"):
        build_extractor("mobilenet_v1", depth_multipler=0.5)


def test_bad_hyperparameters_rejected():
    with pytest.raises(ValueError, match="depth_multiplier"):
        build_extractor("inception_v2", depth_multiplier=0)
    with pytest.raises(ValueError, match="batchnorm_momentum"):
        build_extractor("mobilenet_v2", batchnorm_momentum=1.5)


def test_preprocess_maps_0_255_to_minus1_1():
    e = build_extractor("mobilenet_v2")
    out = e.preprocess(tf.constant([[[[0.0, 127.5, 255.0]]]]))
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy().ravel(), [-1.0, 0.0, 1.0], atol=1e-6)


# --- parameter counts -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, classifier_params, head_params", [
    # keras.applications' published counts; head = 1x1 conv / dense to 1000 classes with bias.
    ("mobilenet_v1", 4_253_864, 1024 * 1000 + 1000),
    ("mobilenet_v2", 3_538_984, 1280 * 1000 + 1000),
])
def test_mobilenet_parameter_counts(name, classifier_params, head_params):
    e = build_extractor(name)
    assert e.classifier((224, 224, 3), 1000).count_params() == classifier_params
    assert e.backbone((224, 224, 3)).count_params() == classifier_params - head_params


def _convs_params(convs):
    """(trainable, non-trainable) of conv(no bias)+BN(beta only, slim's scale=False) units (k, cin, cout)."""
    trainable = sum(k * k * cin * cout + cout for k, cin, cout in convs)  # weights + beta
    return trainable, sum(2 * cout for _, _, cout in convs)  # moving mean + variance


# slim's inception_v2.py, module by module: (kernel, in channels, out channels) of every conv.
INCEPTION_V2_MODULES = {
    "stem": [(1, 24, 64), (1, 64, 64), (3, 64, 192)],  # Conv2d_1a pointwise, Conv2d_2b, Conv2d_2c
    "Mixed_3b": [(1, 192, 64), (1, 192, 64), (3, 64, 64), (1, 192, 64), (3, 64, 96), (3, 96, 96),
                 (1, 192, 32)],  # -> 64 + 64 + 96 + 32 = 256
    "Mixed_3c": [(1, 256, 64), (1, 256, 64), (3, 64, 96), (1, 256, 64), (3, 64, 96), (3, 96, 96),
                 (1, 256, 64)],  # -> 64 + 96 + 96 + 64 = 320
    "Mixed_4a": [(1, 320, 128), (3, 128, 160), (1, 320, 64), (3, 64, 96), (3, 96, 96)],
    # -> 160 + 96 + 320 (max pool) = 576
    "Mixed_4b": [(1, 576, 224), (1, 576, 64), (3, 64, 96), (1, 576, 96), (3, 96, 128), (3, 128, 128),
                 (1, 576, 128)],  # -> 224 + 96 + 128 + 128 = 576
    "Mixed_4c": [(1, 576, 192), (1, 576, 96), (3, 96, 128), (1, 576, 96), (3, 96, 128), (3, 128, 128),
                 (1, 576, 128)],  # -> 192 + 128 + 128 + 128 = 576
    "Mixed_4d": [(1, 576, 160), (1, 576, 128), (3, 128, 160), (1, 576, 128), (3, 128, 160),
                 (3, 160, 160), (1, 576, 96)],  # -> 160 + 160 + 160 + 96 = 576
    "Mixed_4e": [(1, 576, 96), (1, 576, 128), (3, 128, 192), (1, 576, 160), (3, 160, 192),
                 (3, 192, 192), (1, 576, 96)],  # -> 96 + 192 + 192 + 96 = 576
    "Mixed_5a": [(1, 576, 128), (3, 128, 192), (1, 576, 192), (3, 192, 256), (3, 256, 256)],
    # -> 192 + 256 + 576 (max pool) = 1024
    "Mixed_5b": [(1, 1024, 352), (1, 1024, 192), (3, 192, 320), (1, 1024, 160), (3, 160, 224),
                 (3, 224, 224), (1, 1024, 128)],  # -> 352 + 320 + 224 + 128 = 1024
    "Mixed_5c": [(1, 1024, 352), (1, 1024, 192), (3, 192, 320), (1, 1024, 192), (3, 192, 224),
                 (3, 224, 224), (1, 1024, 128)],  # -> 1024
}
STEM_DEPTHWISE = 7 * 7 * 3 * 8  # Conv2d_1a_7x7 separable: 7x7 depthwise, multiplier 8, no BN between


def test_inception_v2_parameter_count_from_layer_table():
    trainable = STEM_DEPTHWISE + 1024 * 1000 + 1000  # + logits (1x1 conv with bias)
    non_trainable = 0
    for convs in INCEPTION_V2_MODULES.values():
        t, n = _convs_params(convs)
        trainable, non_trainable = trainable + t, non_trainable + n
    assert trainable == 11_178_336  # slim's Inception v2: "11.2M parameters"
    e = build_extractor("inception_v2")
    clf = e.classifier((224, 224, 3), 1000)
    assert sum(int(np.prod(w.shape)) for w in clf.trainable_weights) == trainable
    assert clf.count_params() == trainable + non_trainable
    assert e.backbone((224, 224, 3)).count_params() == trainable + non_trainable - (1024 * 1000 + 1000)


def test_inception_v2_depth_multiplier_follows_slim():
    e = build_extractor("inception_v2", depth_multiplier=0.25)
    b = e.backbone((64, 64, 3), endpoints=("Mixed_4c",))
    # depth(64) = 16 -> depthwise multiplier min(int(16 / 3), 8) = 5; depth(32) = max(8, 16) = 16.
    assert b.get_layer("Conv2d_1a_7x7_depthwise").depth_multiplier == 5
    assert b.get_layer("Mixed_3b_Branch_3_Conv2d_0b_1x1").filters == 16
    assert b.get_layer("Mixed_4c_Branch_0_Conv2d_0a_1x1").filters == 48  # int(192 * 0.25)
    assert b.output_shape["Mixed_4c"][-1] == 48 + 32 + 32 + 32
    for layer in ("MaxPool_2a_3x3", "Conv2d_2c_3x3", "Mixed_3b", "Mixed_4a"):
        b.get_layer(layer)  # slim's names


# --- endpoints --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, channels", [
    ("mobilenet_v1", {"C4": 512, "C5": 1024}),
    ("mobilenet_v2", {"C4": 576, "C5": 1280}),
    ("inception_v2", {"C4": 576, "C5": 1024, "Mixed_4c": 576}),
])
def test_endpoint_shapes_at_300(backbones_300, name, channels):
    e, b = backbones_300[name]
    out = b(tf.zeros([1, 300, 300, 3]), training=False)
    assert set(out) == set(e.endpoints) == set(channels)
    for endpoint, stride in e.endpoints.items():
        size = -(-300 // stride)  # SAME padding: ceil(300 / stride) -> 19 at 16, 10 at 32
        assert out[endpoint].shape == (1, size, size, channels[endpoint])
    assert (e.endpoints["C4"], e.endpoints["C5"]) == (16, 32)
    for endpoint in (*e.ssd_endpoints, e.rpn_endpoint):
        assert endpoint in e.endpoints


@pytest.mark.parametrize("name", MOBILE)
def test_any_input_size(name):
    e = build_extractor(name, depth_multiplier=0.25)
    b = e.backbone((None, None, 3), endpoints=("C4", "C5"))
    for h, w in ((300, 300), (97, 160)):
        out = b(tf.zeros([1, h, w, 3]), training=False)
        assert out["C4"].shape[1:3] == (-(-h // 16), -(-w // 16))
        assert out["C5"].shape[1:3] == (-(-h // 32), -(-w // 32))


def test_endpoint_subset_builds_only_needed_layers():
    e = build_extractor("mobilenet_v1")
    c4_only = e.backbone((64, 64, 3), endpoints=("C4",))
    assert list(c4_only.output) == ["C4"]
    # Dropping C5 drops conv_dw_12 .. conv_pw_13: exactly the box classifier's 1,601,024 parameters.
    assert e.backbone((64, 64, 3)).count_params() - c4_only.count_params() == 1_601_024
    with pytest.raises(ValueError, match="C6"):
        e.backbone((64, 64, 3), endpoints=("C6",))


# --- box classifier (two-stage second stage) ---------------------------------------------------------

def test_mobilenet_v1_box_classifier_by_hand():
    # conv_dw_12 (3x3 dw, stride 2) + BN, conv_pw_12 512->1024 + BN, conv_dw_13 + BN, conv_pw_13 + BN;
    # BN has 4 values (gamma, beta, mean, variance) per channel.
    expected = (9 * 512 + 4 * 512) + (512 * 1024 + 4 * 1024) + (9 * 1024 + 4 * 1024) \
        + (1024 * 1024 + 4 * 1024)
    bc = build_extractor("mobilenet_v1").box_classifier((14, 14, 512))
    assert bc.count_params() == expected == 1_601_024
    assert bc(tf.zeros([3, 14, 14, 512])).shape == (3, 7, 7, 1024)


def test_inception_v2_box_classifier_is_mixed_5():
    bc = build_extractor("inception_v2").box_classifier((14, 14, 576))
    t, n = zip(*(_convs_params(INCEPTION_V2_MODULES[m]) for m in ("Mixed_5a", "Mixed_5b", "Mixed_5c")))
    assert bc.count_params() == sum(t) + sum(n)
    assert bc(tf.zeros([2, 14, 14, 576])).shape == (2, 7, 7, 1024)


def test_mobilenet_v2_box_classifier_shape():
    e = build_extractor("mobilenet_v2")
    bc = e.box_classifier((14, 14, 576))
    assert bc(tf.zeros([2, 14, 14, 576])).shape == (2, 7, 7, 1280)
    # Together with the C4-only backbone it is the whole backbone.
    c4 = e.backbone((224, 224, 3), endpoints=("C4",))
    assert c4.count_params() + bc.count_params() == 2_257_984


def test_slice_needing_earlier_layers_is_refused():
    app = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, include_top=False)
    with pytest.raises(ValueError, match="needs layers before it"):  # block_14_add's skip input
        rebuild_application(app, (7, 7, 960), name="x", batchnorm_momentum=0.9, weight_decay=0,
                            start_after="block_14_expand_relu")


# --- hyperparameters ----------------------------------------------------------------------------------

def test_batchnorm_momentum_is_set(backbones_300):
    for name, (_, b) in backbones_300.items():
        bns = bn_layers(b)
        assert len(bns) > 10, name
        assert all(l.momentum == pytest.approx(0.9) for l in bns), name


@pytest.mark.parametrize("name", MOBILE)
def test_weight_decay_is_slim_l2_on_conv_kernels(name):
    wd = 1e-2
    b = build_extractor(name, depth_multiplier=0.25, weight_decay=wd).backbone((64, 64, 3))
    assert b.losses
    kernels = [l.kernel for l in b.layers
               if isinstance(l, keras.layers.Conv2D) and not isinstance(l, keras.layers.DepthwiseConv2D)]
    assert len(b.losses) == len(kernels)
    expected = sum(0.5 * wd * float(tf.reduce_sum(k ** 2)) for k in kernels)  # slim: wd * l2_loss
    assert float(tf.add_n(b.losses)) == pytest.approx(expected, rel=1e-5)
    # Nested inside a detector, the losses are still collected.
    image = keras.Input((64, 64, 3))
    outer = keras.Model(image, b(image)["C5"])
    assert len(outer.losses) == len(kernels)


def test_no_weight_decay_no_losses():
    assert not build_extractor("mobilenet_v2", depth_multiplier=0.25, weight_decay=0.0) \
        .backbone((64, 64, 3)).losses


# --- SSD extra layers -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MOBILE)
def test_ssd_feature_maps_300_layout(backbones_300, name):
    e, b = backbones_300[name]
    image = keras.Input((300, 300, 3))
    maps = ssd_feature_maps(b(image), e, batchnorm_momentum=0.9)
    assert [m.shape[1] for m in maps] == [19, 10, 5, 3, 2, 1]
    assert [m.shape[2] for m in maps] == [19, 10, 5, 3, 2, 1]
    assert [m.shape[3] for m in maps[2:]] == [512, 256, 256, 128]
    # Classic SSD-MobileNet layout: 3 anchors per cell on the lowest map, 6 elsewhere.
    sizes = [m.shape[1] for m in maps]
    assert 3 * sizes[0] ** 2 + 6 * sum(s * s for s in sizes[1:]) == 1917
    model = keras.Model(image, maps)
    extra_bns = [l for l in bn_layers(model) if l.name.startswith("ssd_extra")]
    assert len(extra_bns) == 2 * 4  # batch norm after both convs of every added layer
    assert all(l.momentum == pytest.approx(0.9) for l in extra_bns)


def _ssd_extra_params(use_depthwise):
    features = {"C4": keras.Input((19, 19, 8)), "C5": keras.Input((10, 10, 40))}
    e = build_extractor("mobilenet_v1")
    maps = ssd_feature_maps(features, e, extra_depths=(64,), use_depthwise=use_depthwise)
    assert maps[2].shape[1:] == (5, 5, 64)
    return keras.Model(list(features.values()), maps).count_params()


def test_ssd_extra_layer_parameters_by_hand():
    # 1x1 conv 40 -> 32 + BN(32); 3x3/2 conv 32 -> 64 + BN(64); BN = 4 values per channel.
    assert _ssd_extra_params(False) == 40 * 32 + 4 * 32 + 9 * 32 * 64 + 4 * 64
    # SSDLite: 1x1 conv + BN, 3x3/2 depthwise (32) + BN, 1x1 conv 32 -> 64 + BN.
    assert _ssd_extra_params(True) == 40 * 32 + 4 * 32 + 9 * 32 + 4 * 32 + 32 * 64 + 4 * 64


def test_ssd_extra_depths_use_depth_multiplier_and_min_depth():
    e = build_extractor("mobilenet_v1", depth_multiplier=0.25)
    features = {"C4": keras.Input((19, 19, 8)), "C5": keras.Input((10, 10, 16))}
    maps = ssd_feature_maps(features, e, extra_depths=(512, 256, 64))
    assert [m.shape[-1] for m in maps[2:]] == [128, 64, 16]  # max(int(d * 0.25), 16)


def test_ssd_feature_maps_missing_endpoint():
    e = build_extractor("inception_v2")
    with pytest.raises(ValueError, match="Mixed_4c"):
        ssd_feature_maps({"C4": keras.Input((19, 19, 8)), "C5": keras.Input((10, 10, 16))}, e)
