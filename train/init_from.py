"""``train.init_from``: start a model from another model's weights, by variable name.

The TF OD API calls it ``fine_tune_checkpoint``. A source is a run or zoo directory (its
config.yaml builds the source model, its latest checkpoint is restored), a checkpoint prefix
inside a run (``runs/x/checkpoints/ckpt-500``), or a Keras weights file (``.h5`` as tf_keras'
``model.save_weights`` writes it, or a Keras 3 ``.weights.h5``; ``read_weights_file``).
Variables are matched by ``layer name / weight name`` -- ``block_3_expand/kernel`` -- so a
Faster R-CNN starts from an SSD's backbone of the same extractor (its RPN map and its box classifier are both made of the SSD backbone's layers).
This is lenient (what matches is restored, the rest is reported); ``model.feature_extractor.
weights`` (``train.feature_extractors.weights``) reads the same files but is strict.
``scope``: ``backbone`` (the extractor's layers only) or ``all`` (every layer of the same name
and shape, e.g. a run of the same meta-architecture).
"""
from __future__ import annotations

import logging
import os

import numpy as np

from train.config import ConfigError

log = logging.getLogger(__name__)


def _weights(keras_models: dict, layer_names=None) -> dict:
    """``{"layer/weight": variable}`` of the models' layers (only ``layer_names`` if given)."""
    out = {}
    for model in keras_models.values():
        for layer in model.layers:
            if layer_names is not None and layer.name not in layer_names:
                continue
            for v in layer.weights:
                out[f"{layer.name}/{_short(v)}"] = v
    return out


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_weights_file(path: str, where: str = "train.init_from") -> tuple[str, dict]:
    """Reads a Keras HDF5 weights file -> (format, ``{layer name: [(weight name | None, array)]}``).

    Two layouts are read:

    * ``keras_h5``: legacy Keras (tf_keras ``model.save_weights("x.h5")``, ``model.save("x.h5")``
      and the ``keras.applications`` ImageNet files): the root (or its ``model_weights`` group)
      lists ``layer_names``; each layer's group lists ``weight_names`` (``conv1/kernel:0``).
    * ``keras3``: Keras 3 ``model.save_weights("x.weights.h5")``: ``layers/<attr>/vars/<i>``,
      where ``<attr>`` is an attribute path (``batch_normalization_1``), the layer's own name
      is the ``vars`` group's ``name`` attribute (the path segment where a file has none), and
      the weights are unnamed, in ``Layer.weights`` order (trainable first) -- the weight name
      is None and ``flatten_weights`` names them after the model's layer.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConfigError(f"{where}: cannot read {path} as HDF5 ({e})") from None
    try:
        with f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in root.attrs:
                return "keras_h5", _read_legacy_h5(root)
            if isinstance(f.get("layers"), h5py.Group):
                return "keras3", _read_keras3(f["layers"])
    except (KeyError, ValueError, OSError) as e:
        raise ConfigError(f"{where}: {path} is a damaged Keras weights file ({e})") from None
    raise ConfigError(f"{where}: {path} is an HDF5 file but not Keras weights (neither a "
                      "legacy .h5 with layer_names nor a Keras 3 .weights.h5 with layers/*/vars)")


def _read_legacy_h5(root) -> dict:
    out = {}
    for layer in root.attrs["layer_names"]:
        layer = _text(layer)
        group = root[layer]
        out[layer] = [(_text(name).split("/")[-1].split(":")[0], np.asarray(group[_text(name)]))
                      for name in group.attrs["weight_names"]]
    return out


def _read_keras3(layers_group) -> dict:
    import h5py

    out = {}

    def visit(name, obj):
        parts = name.split("/")
        if not (isinstance(obj, h5py.Group) and parts[-1] == "vars" and len(parts) >= 2):
            return
        keys = sorted(obj.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else k))
        if keys:
            layer = _text(obj.attrs.get("name", parts[-2]))
            out[layer] = [(None, np.asarray(obj[k])) for k in keys]

    layers_group.visititems(visit)
    return out


def flatten_weights(source: dict, keras_models: dict) -> dict:
    """``read_weights_file``'s layers -> ``{"layer/weight": array}``. Unnamed (Keras 3) weights
    take the names of the model's layer of the same name, by position, where it has as many
    weights; otherwise ``layer/#i`` (matches nothing)."""
    layers = {l.name: l for m in keras_models.values() for l in m.layers}
    out = {}
    for layer, entries in source.items():
        own = [_short(v) for v in layers[layer].weights] if layer in layers else []
        for i, (name, value) in enumerate(entries):
            if name is None:
                name = own[i] if len(own) == len(entries) else f"#{i}"
            out[f"{layer}/{name}"] = value
    return out


def _short(variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def _from_h5(path: str, keras_models: dict) -> dict:
    return flatten_weights(read_weights_file(path)[1], keras_models)


def _from_run(path: str, extractor_name: str, scope: str) -> dict:
    from train.config import load_config
    from train.evaluate import load_run

    checkpoint = None
    if os.path.isfile(path + ".index"):  # a checkpoint prefix: RUN/checkpoints/ckpt-N
        checkpoint, path = path, os.path.dirname(os.path.dirname(path))
    if not os.path.isfile(os.path.join(path, "config.yaml")):
        raise ConfigError(f"train.init_from: {path} is neither a run/zoo directory (no "
                          "config.yaml), a checkpoint prefix nor a .h5 weights file")
    source_extractor = load_config(os.path.join(path, "config.yaml")).model.feature_extractor
    if source_extractor.name != extractor_name:
        raise ConfigError(f"train.init_from: {path} is a {source_extractor.name} model; this "
                          f"config's extractor is {extractor_name} (model.feature_extractor.name)")
    try:
        _, _, model, ckpt = load_run(path, checkpoint)
    except FileNotFoundError as e:
        raise ConfigError(f"train.init_from: {e}") from None
    names = model.backbone_layer_names() if scope == "backbone" else None
    values = {k: v.numpy() for k, v in _weights(model.keras_models, names).items()}
    return values, ckpt


def initialize_from(model, source: str, scope: str = "backbone") -> dict:
    """Assigns ``model``'s variables from ``source`` where name and shape match; returns (and
    logs) what was restored and what was not. Errors name ``train.init_from``."""
    if scope not in ("backbone", "all"):
        raise ConfigError(f"train.init_scope must be 'backbone' or 'all', got {scope!r}")
    path = os.path.expanduser(source)
    if not (os.path.exists(path) or os.path.isfile(path + ".index")):
        raise ConfigError(f"train.init_from: {source} does not exist")
    if path.endswith(".h5"):
        values, origin = _from_h5(path, model.keras_models), path
    else:
        values, origin = _from_run(path, model.extractor.name, scope)
    names = model.backbone_layer_names() if scope == "backbone" else None
    targets = _weights(model.keras_models, names)
    restored, mismatched = [], []
    for key, variable in targets.items():
        if key not in values:
            continue
        if tuple(values[key].shape) != tuple(variable.shape):
            mismatched.append(f"{key}: {tuple(values[key].shape)} -> {tuple(variable.shape)}")
            continue
        variable.assign(values[key])
        restored.append(key)
    if not restored:
        raise ConfigError(f"train.init_from: no variable of {origin} matches this model's "
                          f"{scope} by name and shape ({len(values)} source variables, "
                          f"{len(targets)} in the model{'; e.g. ' + mismatched[0] if mismatched else ''})")
    missing = sorted(set(targets) - set(restored) - {m.split(":")[0] for m in mismatched})
    report = {"source": os.path.abspath(path), "checkpoint": origin, "scope": scope,
              "restored": len(restored), "model_variables": len(targets),
              "shape_mismatch": mismatched, "not_in_source": missing,
              "restored_names": sorted(restored)}
    log.info("init_from %s (%s): restored %d of %d variables; %d not in the source, %d of "
             "another shape", origin, scope, len(restored), len(targets), len(missing),
             len(mismatched))
    print(f"init_from: restored {len(restored)}/{len(targets)} {scope} variables from {origin}"
          + (f"; not restored: {len(missing) + len(mismatched)} (see init_from.json)"
             if missing or mismatched else ""))
    return report
