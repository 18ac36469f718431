"""``python -m train package``: a run directory as a small, shareable model (the zoo's format).

Keeps what ``evaluate``, ``report`` and ``convert`` read -- config.yaml, labels.json and, when
present, eval.json, train_log.json and report.md -- plus the chosen checkpoint's model weights
without the optimizer's state (RMSProp's slots are two thirds of a training checkpoint). The
result is itself a run directory; ``package.json`` records where it came from.

``dtype="float16"`` stores the weights as float16 in ``weights_float16.npz`` instead of a
checkpoint (half the size; the repository keeps no file over 5 MB, and a two-stage model's
float32 weights are ~6 MB). ``load_run`` casts them back to float32; the AP this costs is
measured when the package is evaluated (its eval.json is the package's own, not the run's).
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from train.evaluate import load_run

import numpy as np

KEPT = ("config.yaml", "labels.json", "eval.json", "train_log.json", "report.md")
FLOAT16_WEIGHTS = "weights_float16.npz"
DTYPES = ("float32", "float16")


def _weights(model):
    """``{"<keras model key>/<index>/<weight name>": variable}`` in a fixed order."""
    return {f"{key}/{i:04d}/{w.name}": w for key, m in model.keras_models.items()
            for i, w in enumerate(m.weights)}


def save_float16_weights(model, path: str) -> None:
    arrays = {k: (w.numpy().astype(np.float16) if w.dtype.is_floating else w.numpy())
              for k, w in _weights(model).items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def restore_float16_weights(model, path: str) -> None:
    """Assigns a :func:`save_float16_weights` file to ``model`` (ValueError on a mismatch)."""
    with np.load(path) as stored:
        wanted = _weights(model)
        if set(stored.files) != set(wanted):
            missing, extra = sorted(set(wanted) - set(stored.files)), sorted(
                set(stored.files) - set(wanted))
            raise ValueError(f"{path}: the weights do not match the model of its config.yaml "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
        for key, variable in wanted.items():
            value = stored[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{path}: {key} has shape {value.shape}, the model "
                                 f"{tuple(variable.shape)}")
            variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def package_run(run_dir: str, out_dir: str, checkpoint: str | None = None,
                dtype: str = "float32") -> dict:
    """Writes ``out_dir`` (which must not exist yet) from ``run_dir``; returns package.json."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir}: already exists; remove it or choose another --out")
    _, labels, model, ckpt = load_run(run_dir, checkpoint)
    name = os.path.basename(ckpt)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".package-", dir=parent)  # renamed into place when complete
    try:
        for f in KEPT:
            if os.path.exists(os.path.join(run_dir, f)):
                shutil.copy(os.path.join(run_dir, f), os.path.join(tmp, f))
        if dtype == "float16":
            save_float16_weights(model, os.path.join(tmp, FLOAT16_WEIGHTS))
            stored, size = FLOAT16_WEIGHTS, os.path.getsize(os.path.join(tmp, FLOAT16_WEIGHTS))
        else:
            ckpt_dir = os.path.join(tmp, "checkpoints")
            manager = tf.train.CheckpointManager(  # writes the state file latest_checkpoint reads
                model.checkpoint(), ckpt_dir, max_to_keep=1)
            step = re.search(r"-(\d+)$", name)  # keep the training step in the name when known
            name = os.path.basename(manager.save(checkpoint_number=int(step[1]) if step else 0))
            stored = f"checkpoints/{name}"
            size = sum(os.path.getsize(os.path.join(ckpt_dir, f)) for f in os.listdir(ckpt_dir))
        info = {"source_run": run_dir, "source_checkpoint": ckpt,
                "checkpoint": stored, "weights_only": True, "dtype": dtype,
                "parameters": model.count_params(), "bytes": size,
                "categories": labels.get("category_names"),
                "packaged": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds")}
        with open(os.path.join(tmp, "package.json"), "w") as f:
            json.dump(info, f, indent=2)
        os.chmod(tmp, 0o755)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
