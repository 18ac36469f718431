"""``train.init_from``: start a model from another model's weights, by variable name.

The TF OD API calls it ``fine_tune_checkpoint``. A source is a run or zoo directory (its
config.yaml builds the source model, its latest checkpoint is restored), a checkpoint prefix
inside a run (``runs/x/checkpoints/ckpt-500``), or a Keras weights file (``.h5``, as
``model.save_weights`` writes it). Variables are matched by ``layer name / weight name`` --
``block_3_expand/kernel`` -- so a Faster R-CNN starts from an SSD's backbone of the same
extractor (its RPN map and its box classifier are both made of the SSD backbone's layers).
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
                out[f"{layer.name}/{v.name.split('/')[-1].split(':')[0]}"] = v
    return out


def _from_h5(path: str) -> dict:
    import h5py

    values = {}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise ConfigError(f"train.init_from: {path} is not a Keras .h5 weights file "
                                  "(no layer_names; Keras 3 .weights.h5 files are not read yet)")
            for layer in root.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                group = root[layer]
                for name in group.attrs["weight_names"]:
                    name = name.decode() if isinstance(name, bytes) else name
                    short = name.split("/")[-1].split(":")[0]
                    values[f"{layer}/{short}"] = np.asarray(group[name])
    except OSError as e:
        raise ConfigError(f"train.init_from: cannot read {path} as HDF5 ({e})") from None
    return values


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
        values, origin = _from_h5(path), path
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
