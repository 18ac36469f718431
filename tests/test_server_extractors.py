"""The paper's server extractors (VGG-16, ResNet-101, Inception v3, Inception-ResNet-v2): published
parameter counts, feature-map sizes at 300 / 600 and output stride 16 / 8, box classifiers on
crops, output-stride errors, and the rebuild rules they need (padding folded into pools,
align_feature_maps). Inception-ResNet-v2 (782 layers, ~30 s to build its models on 2 cores) is
tested by ``slow`` tests only."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from train.feature_extractors import EXTRACTORS, build_extractor, ssd_feature_maps
from train.feature_extractors.base import rebuild_application

slow = pytest.mark.slow

# (name, output_stride argument) -> {endpoint: (size at 300, size at 600, channels)}; SAME
# padding: ceil(input / stride).
SIZES = {
    ("vgg16", None): {"C3": (38, 75, 512), "C4": (19, 38, 512)},
    ("resnet101", None): {"C3": (38, 75, 512), "C4": (19, 38, 1024), "C5": (19, 38, 2048)},  # 16
    ("resnet101", 8): {"C3": (38, 75, 512), "C4": (38, 75, 1024), "C5": (38, 75, 2048)},
    ("inception_v3", None): {"C4": (19, 38, 768), "C5": (10, 19, 2048)},
    ("inception_v3", 16): {"C4": (19, 38, 768), "C5": (19, 38, 2048)},
    ("inception_resnet_v2", None): {"C4": (19, 38, 1088), "C5": (10, 19, 1536)},
    ("inception_resnet_v2", 16): {"C4": (19, 38, 1088), "C5": (19, 38, 1536)},
    ("inception_resnet_v2", 8): {"C4": (38, 75, 1088), "C5": (38, 75, 1536)},
}
HEAVY = {"inception_resnet_v2"}


def _params(keys):
    return [pytest.param(*k, marks=slow) if k[0] in HEAVY else k for k in keys]


_BACKBONES = {}


def backbone(name, output_stride):
    """(extractor, backbone for any input size), built once per module."""
    key = (name, output_stride)
    if key not in _BACKBONES:
        e = build_extractor(name, **({} if output_stride is None else {"output_stride": output_stride}))
        _BACKBONES[key] = (e, e.backbone((None, None, 3)))
    return _BACKBONES[key]


# --- feature maps -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, output_stride", _params(SIZES))
def test_feature_map_sizes_at_300_and_600(name, output_stride):
    e, b = backbone(name, output_stride)
    assert list(b.output) == list(e.endpoints)  # finest to topmost: R-FCN reads the last one
    for i, size in enumerate((300, 600)):
        shapes = b.compute_output_shape((1, size, size, 3))
        got = {k: tuple(v)[1:] for k, v in shapes.items()}
        assert got == {k: (s[i], s[i], s[2]) for k, s in SIZES[name, output_stride].items()}
        for endpoint, shape in got.items():
            assert shape[0] == -(-size // e.stride(endpoint))
    # One forward pass at a small input (64 is not a multiple of 32 at stride 8 .. 32 alike).
    out = b(tf.random.uniform([1, 64, 64, 3], -1, 1), training=False)
    for endpoint, stride in ((k, e.stride(k)) for k in e.endpoints):
        assert out[endpoint].shape == (1, -(-64 // stride), -(-64 // stride),
                                       SIZES[name, output_stride][endpoint][2])
        assert np.isfinite(out[endpoint].numpy()).all()


def test_resnet101_atrous_rates():
    # Stride 16 (default): conv5 unstrided and dilated 2; stride 8: conv4 too (2), conv5 4.
    for output_stride, conv4, conv5 in ((None, 1, 2), (8, 2, 4)):
        _, b = backbone("resnet101", output_stride)
        assert b.get_layer("conv5_block1_1_conv").strides == (1, 1)
        assert b.get_layer("conv4_block1_1_conv").strides == ((2, 2) if conv4 == 1 else (1, 1))
        assert b.get_layer("conv4_block7_2_conv").dilation_rate == (conv4, conv4)
        assert b.get_layer("conv5_block3_2_conv").dilation_rate == (conv5, conv5)
        assert b.get_layer("pool1_pool").padding == "same"  # pool1_pad folded in
        assert "pool1_pad" not in [l.name for l in b.layers]


def test_keras_layer_names_whatever_was_built_before():
    keras.layers.Conv2D(1, 1)(keras.Input((4, 4, 1)))  # moves Keras' automatic name counter
    e, b = backbone("inception_v3", None)
    app_names = [l["name"] for l in e._application_config()["layers"]]
    assert app_names[:3] == ["input_1", "conv2d", "batch_normalization"]  # a fresh session's
    names = {l.name for l in b.layers}
    assert names <= set(app_names)
    assert {"conv2d", "conv2d_93", "mixed7", "mixed10"} <= names


@slow
def test_inception_resnet_v2_atrous_and_its_scale_layer():
    # Stride 8 (the zoo's atrous model): mixed_6a unstrided, the block17 1x7 / 7x1 convs dilated 2.
    for output_stride, rate in ((None, 1), (8, 2)):
        _, b = backbone("inception_resnet_v2", output_stride)
        convs = [l for l in b.layers if isinstance(l, keras.layers.Conv2D)
                 and l.kernel_size in ((1, 7), (7, 1))]
        assert len(convs) == 2 * 20 and all(l.dilation_rate == (rate, rate) for l in convs)
        scales = [l for l in b.layers if type(l).__name__ == "CustomScaleLayer"]
        assert len(scales) == 10 + 20 + 10  # block35, block17, block8 residual scaling
    assert scales[0].scale == pytest.approx(0.17)


@pytest.mark.parametrize("name", ["vgg16", "resnet101"])
def test_ssd_maps_at_300(name):
    e, b = backbone(name, None)
    image = keras.Input((300, 300, 3))
    maps = ssd_feature_maps(b(image), e)
    # The original SSD's layout: a stride-8 map (conv4_3 / conv3) and a stride-16 top map.
    assert [m.shape[1] for m in maps] == [38, 19, 10, 5, 3, 2]


# --- box classifiers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, crop, out", _params([
    ("vgg16", (14, 14, 512), (4096,)),  # block5_pool, fc6, fc7
    ("resnet101", (7, 7, 1024), (7, 7, 2048)),  # 14x14 crops max-pooled 2x2; conv5_1 stride 1
    ("inception_v3", (14, 14, 768), (7, 7, 2048)),  # Mixed_7a..7c, SAME
    ("inception_resnet_v2", (17, 17, 1088), (8, 8, 1536)),  # the zoo's crop 17, VALID Mixed_7a
]))
def test_box_classifier_on_crops(name, crop, out):
    e = build_extractor(name)
    bc = e.box_classifier(crop)
    assert bc.output_shape == (None, *out)
    y = bc(tf.random.uniform([2, *crop]), training=False)
    assert y.shape == (2, *out) and np.isfinite(y.numpy()).all()
    if name == "vgg16":
        assert [l.name for l in bc.layers[1:]] == ["block5_pool", "flatten", "fc1", "fc2"]
    if name == "resnet101":  # the OD API's: conv5_1 at stride 1, no dilation
        for layer in ("conv5_block1_0_conv", "conv5_block1_1_conv"):
            assert bc.get_layer(layer).strides == (1, 1)
        assert bc.get_layer("conv5_block3_2_conv").dilation_rate == (1, 1)


def test_resnet101_box_classifier_on_a_whole_stride_8_map():
    """R-FCN style (``input_stride``): conv5 keeps the map's stride, dilated like the backbone's."""
    bc = build_extractor("resnet101", output_stride=8).box_classifier((None, None, 1024),
                                                                      input_stride=8)
    assert bc.compute_output_shape((1, 38, 38, 1024)) == (1, 38, 38, 2048)
    assert bc.get_layer("conv5_block2_2_conv").dilation_rate == (4, 4)


# --- parameter counts -----------------------------------------------------------------------------

# keras.applications' published counts; head: the last Dense (global pool -> 1000 classes).
@pytest.mark.parametrize("name, published, head", [
    ("inception_v3", 23_851_784, 2048 * 1000 + 1000),
    ("vgg16", 138_357_544, 4096 * 1000 + 1000),
    ("resnet101", 44_707_176, 2048 * 1000 + 1000),
    pytest.param("inception_resnet_v2", 55_873_736, 1536 * 1000 + 1000, marks=slow),
])
def test_published_parameter_counts(name, published, head):
    e = build_extractor(name)
    assert e.classifier((224, 224, 3), 1000).count_params() == published
    # The RPN's backbone and the box classifier split the network with nothing lost or repeated.
    crop = {"vgg16": (14, 14, 512), "resnet101": (7, 7, 1024), "inception_v3": (7, 7, 768),
            "inception_resnet_v2": (17, 17, 1088)}[name]
    rpn = e.backbone((224, 224, 3), endpoints=[e.rpn_endpoint]).count_params()
    assert rpn + e.box_classifier(crop).count_params() == published - head


# --- output stride and bad input ----------------------------------------------------------------------

def test_output_stride_defaults_and_stride():
    r = build_extractor("resnet101")
    assert r.output_stride == 16 and [r.stride(k) for k in r.endpoints] == [8, 16, 16]
    r8 = build_extractor("resnet101", output_stride=8)
    assert [r8.stride(k) for k in r8.endpoints] == [8, 8, 8] and "output_stride=8" in repr(r8)
    r32 = build_extractor("resnet101", output_stride=32)
    assert [r32.stride(k) for k in r32.endpoints] == [8, 16, 32]
    m = build_extractor("mobilenet_v2")
    assert m.output_stride is None and m.stride("C5") == 32
    assert build_extractor("mobilenet_v2", output_stride=16).stride("C5") == 16
    assert build_extractor("inception_resnet_v2", output_stride=8).stride("C4") == 8
    for name in ("vgg16", "resnet101", "inception_v3", "inception_resnet_v2"):
        e = build_extractor(name)
        assert e.rpn_endpoint in e.endpoints and set(e.ssd_endpoints) <= set(e.endpoints)
        assert max(e.endpoints.values()) == list(e.endpoints.values())[-1]  # topmost last
    with pytest.raises(ValueError, match="C6"):
        r.stride("C6")


def test_unknown_extractor_lists_all():
    with pytest.raises(ValueError) as err:
        build_extractor("resnet_9000")
    for name in ("resnet_9000", *EXTRACTORS):
        assert name in str(err.value)
    assert {"vgg16", "resnet101", "inception_v3", "inception_resnet_v2"} <= set(EXTRACTORS)


@pytest.mark.parametrize("name, output_stride, valid", [
    ("mobilenet_v1", 8, "16, 32"),
    ("mobilenet_v2", 8, "16, 32"),
    ("vgg16", 8, "valid: 16$"),
    ("inception_v3", 8, "16, 32"),
    ("resnet101", 4, "8, 16, 32"),
    ("inception_resnet_v2", 12, "8, 16, 32"),
    ("inception_v2", 16, "none"),
])
def test_unsupported_output_stride(name, output_stride, valid):
    with pytest.raises(ValueError, match=f"{name}.*feature_extractor.output_stride "
                                         f"{output_stride} is not supported; .*{valid}"):
        build_extractor(name, output_stride=output_stride)


def test_other_bad_input():
    with pytest.raises(ValueError, match="output_stride 4 .*8, 16, 32"):
        build_extractor("resnet101").backbone((64, 64, 3), output_stride=4)
    with pytest.raises(ValueError, match="resnet101.*depth_multiplier must be 1.0"):
        build_extractor("resnet101", depth_multiplier=0.5)
    with pytest.raises(ValueError, match="14x14x512 crops .*maxpool_kernel_size 1"):
        build_extractor("vgg16").box_classifier((7, 7, 512))  # before building anything
    with pytest.raises(ValueError, match="unknown argument 'output_strid'"):
        build_extractor("vgg16", output_strid=16)


# --- rebuild rules, on tiny models --------------------------------------------------------------------

def _tiny(*layers_):
    x = image = keras.Input((None, None, 3))
    for layer in layers_:
        x = layer(x)
    return keras.Model(image, x, name="tiny")


def _rebuild(model, input_shape=(None, None, 3), **kwargs):
    return rebuild_application(model, input_shape, name="t", batchnorm_momentum=0.9,
                               weight_decay=0.0, **kwargs)


def test_padding_folds_into_a_max_pool_after_relu_only():
    relu_pool = _tiny(keras.layers.ReLU(), keras.layers.ZeroPadding2D(1),
                      keras.layers.MaxPooling2D(3, 2))
    m = _rebuild(relu_pool)
    assert [type(l).__name__ for l in m.layers] == ["InputLayer", "ReLU", "MaxPooling2D"]
    for size in (75, 150):
        assert m.compute_output_shape((1, size, size, 3))[1] == -(-size // 2)
    with pytest.raises(ValueError, match="cannot fold padding layer"):
        _rebuild(_tiny(keras.layers.ZeroPadding2D(1), keras.layers.MaxPooling2D(3, 2)))
    with pytest.raises(ValueError, match="cannot fold padding layer .*AveragePooling2D"):
        _rebuild(_tiny(keras.layers.ReLU(), keras.layers.ZeroPadding2D(1),
                       keras.layers.AveragePooling2D(3, 2)))


def test_align_feature_maps_makes_valid_windows_same():
    model = _tiny(keras.layers.Conv2D(4, 3, strides=2), keras.layers.Conv2D(4, 3),
                  keras.layers.Conv2D(4, 1), keras.layers.MaxPooling2D(3, 2))
    assert _rebuild(model).compute_output_shape((1, 75, 75, 3))[1] == 17  # VALID: 37, 35, 35, 17
    aligned = _rebuild(model, align_feature_maps=True)
    assert aligned.compute_output_shape((1, 75, 75, 3))[1] == 19  # 38, 38, 38, 19
    assert [getattr(l, "padding", None) for l in aligned.layers[1:]] == \
        ["same", "same", "valid", "same"]  # a 1x1 stride-1 conv is the same either way
