"""``model.feature_extractor.weights: imagenet | PATH``: a backbone from pre-trained weights.

``imagenet`` is the file ``keras.applications`` would load for the extractor (``include_top=False``,
the "notop" file), read from the user's Keras cache -- nothing is downloaded at run time; Keras
fills the cache on a machine with internet. The cache is ``$KERAS_HOME/models`` (Keras 3),
``~/.keras/models`` (tf_keras, whatever KERAS_HOME says) or ``/tmp/.keras/models`` (where both
go when ``~/.keras`` is not writable), searched in that order. File names (tf_keras 2.21):

=====================  ========================================================================
mobilenet_v1           ``mobilenet_{1_0|7_5|5_0|2_5}_224_tf_no_top.h5``
                       (depth_multiplier 1, 0.75, 0.5, 0.25)
mobilenet_v2           ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5``
                       (alpha = depth_multiplier as ``str(float(a))``: 0.35 0.5 0.75 1.0 1.3 1.4)
vgg16                  ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``; Faster R-CNN's box
                       classifier is fc6/fc7 (Keras ``fc1``/``fc2``), only in the with-top file
                       ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``, used when the model has fc1
resnet101              ``resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5``
inception_v3           ``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``
inception_resnet_v2    ``inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5``
inception_v2           none: keras.applications has no Inception v2 (pass a PATH)
=====================  ========================================================================

The with-top file holds every layer of the notop one, so it is used when only it is cached.
MobileNet files are the 224x224 ones (the weights of an ``include_top=False`` model do not depend
on the input size; our extractors run at any size).

A PATH is a legacy Keras ``.h5`` (``model.save_weights("x.h5")``) or a Keras 3 ``.weights.h5``
(``train.init_from.read_weights_file`` reads both) of a ``keras.applications`` model, in
``keras.applications``' own convention, i.e. weights for the input its ``preprocess_input``
makes (the caffe folding below is applied to a PATH as to ``imagenet``). Weights of our own runs
are already in our convention: start from them with ``train.init_from``, which folds nothing.

Preprocessing. Our extractors all take RGB scaled to [-1, 1] (``FeatureExtractor.preprocess``, a
single scalar mean / std 127.5 / 127.5 for the exports). That is ``keras.applications``' "tf"
mode (MobileNet v1 / v2, Inception v3, Inception-ResNet-v2); VGG-16's and ResNet-101's weights
were trained with "caffe" preprocessing instead (``imagenet_utils.preprocess_input(mode=
"caffe")``: RGB -> BGR, minus the per-channel mean ``CAFFE_MEAN_BGR``, no scaling). For those
(``imagenet_preprocessing = "caffe"`` on the extractor class) the caffe step is folded into the
first convolution (``imagenet_first_conv``: ``block1_conv1``, ``conv1_conv``) on loading, see
``fold_caffe_preprocessing``, so that x' = x / 127.5 - 1 gives the first layer's output Keras
gives on the caffe input. Exact except at the image border: our zero padding is zero in x'
space (pixel 127.5), caffe's zero in mean-subtracted space (pixel = the mean), so the outputs
whose window overlaps the padding differ slightly.

Loading is strict, by layer name: every weight of every backbone layer (for two-stage models
also the box classifier's layers) must be in the file with the same shape, or nothing is loaded
and the error names the file and the first missing / mismatched weights. Extra layers in the file
(the ImageNet classifier's top) are skipped and counted. The extractors keep the
``keras.applications`` layer names (those of a fresh Keras session), which is what makes this
work; the geometry we change (TF "SAME" padding, atrous rates) has no weights. Keras itself loads
its ImageNet ``.h5`` files by layer *order*, and files saved by older Keras versions or in a busy
session give automatically named layers other names (``conv2d_1`` for ``conv2d``; Inception v3
and Inception-ResNet-v2 have hundreds), so where names do not match, a legacy ``.h5`` is read by
order into a fresh ``keras.applications`` model first and then matched by its fresh-session
names, as strictly.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from train.config import ConfigError
from train.init_from import _weights, flatten_weights, read_weights_file

log = logging.getLogger(__name__)

KEY = "model.feature_extractor.weights"

# registry name -> (keras.applications constructor, file stem); MobileNets: see imagenet_files.
# Mirrors tf_keras/src/applications/*.py (get_file(..., cache_subdir="models")).
_V1_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
_V2_ALPHAS = {a: str(a) for a in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)}
# MobileNets: (title, constructor, alpha -> file-name tag, file stem with {tag}).
_MOBILENETS = {
    "mobilenet_v1": ("MobileNet v1", "MobileNet", _V1_ALPHAS, "mobilenet_{tag}_224_tf"),
    "mobilenet_v2": ("MobileNet v2", "MobileNetV2", _V2_ALPHAS,
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{tag}_224"),
}
_FIXED = {
    "vgg16": ("VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels"),
    "resnet101": ("ResNet101", "resnet101_weights_tf_dim_ordering_tf_kernels"),
    "inception_v3": ("InceptionV3", "inception_v3_weights_tf_dim_ordering_tf_kernels"),
    "inception_resnet_v2": ("InceptionResNetV2",
                            "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels"),
}
# Layers of a detector's backbone that only the with-top file has (VGG-16's box classifier).
_TOP_LAYERS = {"vgg16": {"fc1", "fc2"}}
IMAGENET_EXTRACTORS = ("mobilenet_v1", "mobilenet_v2", *_FIXED)


def imagenet_files(name: str, depth_multiplier: float = 1.0) -> dict:
    """-> ``{"notop": file, "top": file, "call": "keras.applications call that caches them"}``."""
    dm = float(depth_multiplier)
    if name in _MOBILENETS:
        title, constructor, tags, stem = _MOBILENETS[name]
        if dm not in tags:
            raise ConfigError(f"{KEY}: imagenet: keras.applications has {title} ImageNet "
                              f"weights for model.feature_extractor.depth_multiplier "
                              f"{', '.join(map(str, tags))}, not {depth_multiplier}")
        stem = stem.format(tag=tags[dm])
        return {"notop": f"{stem}_no_top.h5", "top": f"{stem}.h5",
                "call": f"{constructor}(weights='imagenet', alpha={dm}, "
                        "input_shape=(224, 224, 3)"}
    if name in _FIXED:
        if dm != 1.0:
            raise ConfigError(f"{KEY}: imagenet: {name}'s ImageNet weights are for "
                              f"model.feature_extractor.depth_multiplier 1.0, not "
                              f"{depth_multiplier}")
        app, stem = _FIXED[name]
        return {"notop": f"{stem}_notop.h5", "top": f"{stem}.h5",
                "call": f"{app}(weights='imagenet'"}
    if name == "inception_v2":
        raise ConfigError(f"{KEY}: imagenet: keras.applications has no Inception v2, so there are "
                          f"no ImageNet weights for inception_v2 to load; give the path of a "
                          f".h5 / .weights.h5 file with this extractor's layer names, or leave "
                          f"{KEY} unset. ImageNet weights exist for: "
                          f"{', '.join(IMAGENET_EXTRACTORS)}")
    raise ConfigError(f"{KEY}: imagenet: no ImageNet weights known for extractor {name!r}; valid: "
                      f"{', '.join(IMAGENET_EXTRACTORS)} (or give a .h5 / .weights.h5 path)")


def keras_cache_dirs() -> list[str]:
    """Where Keras caches ``keras.applications`` weights, in search order (see module doc)."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(os.environ["KERAS_HOME"])
    dirs += [os.path.join(os.path.expanduser("~"), ".keras"), os.path.join("/tmp", ".keras")]
    out = []
    for d in dirs:
        d = os.path.join(os.path.abspath(os.path.expanduser(d)), "models")
        if d not in out:
            out.append(d)
    return out


def resolve_weights(spec: str, extractor, layer_names=()) -> str:
    """``imagenet`` or a path -> the weights file to load (absolute path); a clear ConfigError
    when it is missing or not a file. ``extractor``: a FeatureExtractor (or its registry name);
    ``layer_names``: the model's backbone layers (they decide whether the with-top file is
    needed, VGG-16's fc1/fc2)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{KEY}: expected 'imagenet' or the path of a .h5 / .weights.h5 file, "
                          f"got {spec!r}")
    if spec.strip().lower() == "imagenet":
        return _imagenet_file(extractor, set(layer_names))
    path = os.path.abspath(os.path.expanduser(spec))
    if os.path.isdir(path):
        raise ConfigError(f"{KEY}: {path} is a directory, not a weights file ('imagenet' or a "
                          ".h5 / .weights.h5 file; a run directory goes in train.init_from)")
    if not os.path.isfile(path):
        raise ConfigError(f"{KEY}: {path} does not exist ('imagenet' or a .h5 / .weights.h5 file)")
    import h5py

    if not h5py.is_hdf5(path):
        raise ConfigError(f"{KEY}: {path} is not an HDF5 file (expected a Keras .h5 or "
                          ".weights.h5 weights file)")
    return path


def _imagenet_file(extractor, layer_names: set) -> str:
    name = extractor if isinstance(extractor, str) else extractor.name
    dm = 1.0 if isinstance(extractor, str) else getattr(extractor, "depth_multiplier", 1.0)
    files = imagenet_files(name, dm)
    needs_top = bool(_TOP_LAYERS.get(name, set()) & layer_names)
    wanted = [files["top"]] if needs_top else [files["notop"], files["top"]]
    dirs = keras_cache_dirs()
    for file in wanted:
        for d in dirs:
            if os.path.isfile(os.path.join(d, file)):
                return os.path.join(d, file)
    top = "True" if needs_top else "False"
    why = (f" (the with-top file: this model's box classifier is "
           f"{'/'.join(sorted(_TOP_LAYERS[name] & layer_names))})" if needs_top else "")
    raise ConfigError(
        f"{KEY}: imagenet: {wanted[0]}{why} is not in the Keras cache ({', '.join(dirs)}); "
        f"nothing is downloaded at run time. On a machine with internet run\n"
        f"    python -c \"import tf_keras as k; k.applications.{files['call']}, "
        f"include_top={top})\"\n"
        f"and copy ~/.keras/models/{wanted[0]} to {dirs[0]} here, or set {KEY} to the "
        f"file's path")


def _targets(model, extractor):
    """A detector (``keras_models``, ``backbone_layer_names()``, ``extractor``) or a Keras model
    -> (keras_models, layer names to load, extractor)."""
    if hasattr(model, "keras_models"):
        return model.keras_models, model.backbone_layer_names(), extractor or model.extractor
    return {"model": model}, {l.name for l in model.layers}, extractor


def _problems(targets: dict, values: dict) -> tuple[list, list]:
    missing, mismatched = [], []
    for key, variable in targets.items():
        if key not in values:
            missing.append(f"{key} {tuple(variable.shape)}")
        elif tuple(values[key].shape) != tuple(variable.shape):
            mismatched.append(f"{key}: file {tuple(values[key].shape)}, model "
                              f"{tuple(variable.shape)}")
    return missing, mismatched


# keras.applications constructors by registry name (for loading a file by layer order).
_APPLICATIONS = {"mobilenet_v1": "MobileNet", "mobilenet_v2": "MobileNetV2",
                 **{name: app for name, (app, _) in _FIXED.items()}}


def canonical_names(layers) -> dict:
    """``{layer.name: name it gets in a fresh Keras session}`` for the layers of one model built
    in this process: Keras' automatic names (``conv2d_94``: snake-cased class name and a
    per-session counter) are renumbered from the model's first (``conv2d``, ``conv2d_1``, ...);
    explicit names (``mixed0``, ``conv_dw_1``) are kept."""
    import re

    def snake(name):
        name = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
        return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()

    auto = {}
    for layer in layers:
        prefix = snake(type(layer).__name__)
        m = re.fullmatch(re.escape(prefix) + r"(?:_(\d+))?", layer.name)
        if m:
            auto[layer.name] = (prefix, int(m.group(1) or 0))
    first = {}
    for prefix, index in auto.values():
        first[prefix] = min(first.get(prefix, index), index)
    out = {}
    for layer in layers:
        if layer.name in auto:
            prefix, index = auto[layer.name]
            n = index - first[prefix]
            out[layer.name] = prefix if n == 0 else f"{prefix}_{n}"
        else:
            out[layer.name] = layer.name
    return out


def _by_layer_order(path: str, extractor) -> dict | None:
    """The file loaded the way ``keras.applications`` loads its ImageNet files -- by layer order,
    whatever the names, into a fresh application (notop, else with top) -- as ``{"layer/weight":
    array}`` under the names of a fresh session (our extractors build theirs so). Files saved by
    older Keras name automatically named layers differently (one-based ``conv2d_1``, another
    session's counters): Inception v3 and Inception-ResNet-v2 have many such layers. None when
    neither application accepts the file."""
    name = extractor if isinstance(extractor, str) else getattr(extractor, "name", None)
    if name not in _APPLICATIONS:
        return None
    import tf_keras as keras

    dm = 1.0 if isinstance(extractor, str) else getattr(extractor, "depth_multiplier", 1.0)
    kwargs = {"alpha": dm} if name.startswith("mobilenet") else {}
    for include_top in (False, True):
        try:
            app = getattr(keras.applications, _APPLICATIONS[name])(
                weights=None, include_top=include_top, **kwargs)
            app.load_weights(path)
        except (ValueError, KeyError, OSError):
            continue
        canonical = canonical_names(app.layers)
        return {f"{canonical[l.name]}/{w.name.split('/')[-1].split(':')[0]}": w.numpy()
                for l in app.layers for w in l.weights}
    return None


# keras.applications.imagenet_utils.preprocess_input(mode="caffe"): mean of B, G, R.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def fold_caffe_preprocessing(kernel, bias):
    """A first convolution's ``kernel [kh, kw, 3, out]`` and ``bias [out]`` trained on caffe
    input (c = flip_channels(x) - CAFFE_MEAN_BGR, x the RGB pixels in [0, 255]) -> the kernel and
    bias that give the same output on our x' = x / 127.5 - 1 (RGB):

        W * (flip(127.5 x' + 127.5) - mean) + b
            = (127.5 W, input channels reversed) * x' + (b + sum over the window and the input
              channels of W * (127.5 - mean_bgr))

    Exact except where the window overlaps the zero padding at the border (module doc)."""
    k = np.asarray(kernel, np.float64)
    b = np.asarray(bias, np.float64)
    if k.ndim != 4 or k.shape[2] != 3:
        raise ValueError(f"fold_caffe_preprocessing: expected a [kh, kw, 3, out] kernel, got "
                         f"{k.shape}")
    shift = 127.5 - np.asarray(CAFFE_MEAN_BGR, np.float64)  # per caffe (BGR) input channel
    folded_bias = b + np.einsum("hwio,i->o", k, shift)
    folded_kernel = 127.5 * k[:, :, ::-1, :]
    return (folded_kernel.astype(np.asarray(kernel).dtype),
            folded_bias.astype(np.asarray(bias).dtype))


def imagenet_preprocessing(extractor) -> tuple[str, str] | None:
    """``(mode, first conv layer)`` for an extractor whose keras.applications weights expect
    other preprocessing than ours (``("caffe", "block1_conv1")`` for vgg16), else None.
    ``extractor``: a FeatureExtractor, its registry name or None (unknown: nothing to fold)."""
    if extractor is None:
        return None
    if isinstance(extractor, str):
        from train.feature_extractors import EXTRACTORS

        extractor = EXTRACTORS.get(extractor)
    mode = getattr(extractor, "imagenet_preprocessing", None)
    if mode in (None, "tf"):
        return None
    if mode != "caffe":
        raise ValueError(f"{KEY}: unknown imagenet_preprocessing {mode!r} of {extractor}")
    return mode, extractor.imagenet_first_conv


def _fold(values: dict, targets: dict, extractor) -> dict | None:
    """Folds the extractor's ImageNet preprocessing into ``values`` (a new dict entry for the
    first conv's kernel and bias); -> what was folded (the summary's ``preprocessing``)."""
    found = imagenet_preprocessing(extractor)
    if found is None:
        return None
    mode, layer = found
    kernel, bias = f"{layer}/kernel", f"{layer}/bias"
    if kernel not in targets:  # a model without the extractor's first layer
        return None
    if bias not in targets:
        raise ConfigError(f"{KEY}: cannot fold {mode} preprocessing into {layer}: it has no bias")
    values[kernel], values[bias] = fold_caffe_preprocessing(values[kernel], values[bias])
    return {"mode": mode, "layer": layer, "order": "BGR", "mean": list(CAFFE_MEAN_BGR)}


def load_weights(model, spec: str, extractor=None) -> dict:
    """Loads ``spec`` (``imagenet`` | PATH) into ``model``'s backbone layers, strictly (module
    doc); returns and prints a summary. ``model``: a detector (its backbone and box-classifier
    layers are loaded) or a Keras model (all its layers; ``extractor`` is needed for
    ``imagenet``).

    Weights are matched by layer name. Where that fails for a legacy ``.h5`` and the extractor
    is a keras.applications one, the file is read by layer order as Keras reads its ImageNet
    files (``_by_layer_order``) and used if then every weight fits (``matched_by: "layer
    order"`` in the summary).

    For VGG-16 and ResNet-101 the file's caffe preprocessing is folded into the first conv
    (module doc; ``preprocessing`` in the summary). That needs the extractor: with a bare Keras
    model and no ``extractor`` nothing is folded."""
    keras_models, names, extractor = _targets(model, extractor)
    if extractor is None and isinstance(spec, str) and spec.strip().lower() == "imagenet":
        raise ConfigError(f"{KEY}: imagenet: which extractor? (pass extractor=)")
    path = resolve_weights(spec, extractor, names)
    fmt, source = read_weights_file(path, KEY)
    values = flatten_weights(source, keras_models)
    targets = _weights(keras_models, names)
    if not targets:
        raise ConfigError(f"{KEY}: the model has no backbone weights to load from {path}")
    missing, mismatched = _problems(targets, values)
    matched_by, tried = "layer name", ""
    if missing and fmt == "keras_h5":  # names differ (shapes alone: another width, not names)
        by_order = _by_layer_order(path, extractor)
        if by_order is not None and _problems(targets, by_order) == ([], []):
            values, missing, mismatched, matched_by = by_order, [], [], "layer order"
        elif by_order is not None:
            tried = " (by layer order, as keras.applications reads it, it does not fit either)"
    if missing or mismatched:
        what = extractor if isinstance(extractor, str) else getattr(extractor, "name", "this")
        problems = []
        if missing:
            problems.append(f"{len(missing)} of its {len(targets)} backbone weights are not in "
                            f"the file (first: {', '.join(missing[:4])})")
        if mismatched:
            problems.append(f"{len(mismatched)} have another shape (first: "
                            f"{'; '.join(mismatched[:3])})")
        raise ConfigError(f"{KEY}: {path} does not fit this model's {what} backbone: "
                          f"{' and '.join(problems)}{tried}. Is it a weights file of another "
                          f"architecture or depth_multiplier? Nothing was loaded")
    values = dict(values)
    folded = _fold(values, targets, extractor)
    loaded_layers = set()
    parameters = 0
    for key, variable in targets.items():
        variable.assign(values[key])
        loaded_layers.add(key.rsplit("/", 1)[0])
        parameters += int(np.prod(variable.shape))
    unused = sorted(set(values) - set(targets))
    unused_layers = sorted({k.rsplit("/", 1)[0] for k in unused})
    summary = {"weights": spec, "file": path, "format": fmt, "matched_by": matched_by,
               "tensors": len(targets), "parameters": parameters, "layers": len(loaded_layers),
               "file_tensors": len(values), "preprocessing": folded,
               "skipped_in_file": {"tensors": len(unused), "layers": unused_layers}}
    skipped = (f"{len(unused)} tensors of {len(unused_layers)} "
               f"layer{'s' if len(unused_layers) > 1 else ''} "
               f"({', '.join(unused_layers[:4])}{', ...' if len(unused_layers) > 4 else ''})"
               if unused else "none")
    line = (f"weights: loaded {len(targets)} tensors ({parameters:,} parameters) into "
            f"{len(loaded_layers)} layers from {path}"
            + (" (by layer order)" if matched_by == "layer order" else "")
            + f"; skipped in file: {skipped}"
            + (f"; folded {folded['mode']} preprocessing ({folded['order']}, mean "
               f"{' '.join(map(str, folded['mean']))}) into {folded['layer']}" if folded else ""))
    log.info(line)
    print(line)
    return summary
