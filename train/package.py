"""``python -m train package``: a run directory as a small, shareable model (the zoo's format).

Keeps what ``evaluate``, ``report`` and ``convert`` read -- config.yaml, labels.json and, when
present, eval.json, train_log.json and report.md -- plus the chosen checkpoint's model weights
without the optimizer's state (RMSProp's slots are two thirds of a training checkpoint). The
result is itself a run directory; ``package.json`` records where it came from.
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

KEPT = ("config.yaml", "labels.json", "eval.json", "train_log.json", "report.md")


def package_run(run_dir: str, out_dir: str, checkpoint: str | None = None) -> dict:
    """Writes ``out_dir`` (which must not exist yet) from ``run_dir``; returns package.json."""
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
        ckpt_dir = os.path.join(tmp, "checkpoints")
        manager = tf.train.CheckpointManager(  # writes the state file latest_checkpoint reads
            model.checkpoint(), ckpt_dir, max_to_keep=1)
        step = re.search(r"-(\d+)$", name)  # keep the training step in the name when known
        name = os.path.basename(manager.save(checkpoint_number=int(step[1]) if step else 0))
        info = {"source_run": run_dir, "source_checkpoint": ckpt,
                "checkpoint": f"checkpoints/{name}", "weights_only": True,
                "parameters": model.count_params(),
                "bytes": sum(os.path.getsize(os.path.join(ckpt_dir, f))
                             for f in os.listdir(ckpt_dir)),
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
