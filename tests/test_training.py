"""End to end: training overfits a few images, resumes after SIGKILL, stops cleanly on SIGTERM,
skips bad images with a count. These run real (tiny) trainings on the CPU."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import yaml

from tests.helpers import make_dataset, tiny_config
from train.evaluate import evaluate
from train.report import write_report
from train.trainer import fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("data") / "shapes"))


@pytest.mark.slow  # 46 s; make test stays under 15 min on 2 cores
def test_overfits_a_few_images(data, tmp_path):
    out = str(tmp_path / "run")
    config = tiny_config(steps=15)
    fit(config, data, out, progress=False)
    early = evaluate(out, data, split="train", progress=False)
    config.train.steps = 250  # resumes from step 15 and goes on
    summary = fit(config, data, out, progress=False)
    assert summary["steps"] == 250 and summary["steps_this_run"] == 235
    late = evaluate(out, data, split="train", progress=False)
    losses = [h["total"] for h in summary["history"]]
    assert losses[-1] < 0.5 * losses[0]
    assert late["AP50"] > early["AP50"] + 0.2
    assert late["AP50"] > 0.3
    with open(os.path.join(out, "eval.json")) as f:
        saved = json.load(f)
    for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100"):
        assert -1.0 <= saved[key] <= 1.0
    assert os.path.exists(os.path.join(out, "detections_train.json"))
    report = open(write_report(out)).read()
    assert f"| {late['AP']:.3f} | {late['AP50']:.3f} |" in report
    assert "mobilenet_v1" in report and "machine:" in report


def _write_config(tmp_path, **train):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(**train).to_dict()))
    return str(path)


def _fit_cmd(config, data, out, steps):
    return [sys.executable, "-m", "train", "fit", "--config", config, "--data", data, "--out",
            out, "--steps", str(steps), "--no-progress"]


def _checkpoint_steps(out):
    d = os.path.join(out, "checkpoints")
    if not os.path.isdir(d):
        return []
    return sorted(int(f.split("-")[1].split(".")[0]) for f in os.listdir(d)
                  if f.startswith("ckpt-") and f.endswith(".index"))


def _start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait_for_checkpoint(proc, out, at_least, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        steps = _checkpoint_steps(out)
        if steps and steps[-1] >= at_least:
            return steps[-1]
        if proc.poll() is not None:
            pytest.fail(f"training ended early:\n{proc.stdout.read()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no checkpoint in time")


@pytest.mark.slow  # 42 s; test_distribute kills a worker and resumes in make test
def test_sigkill_then_resume(data, tmp_path):
    config = _write_config(tmp_path, checkpoint_every=10)
    out = str(tmp_path / "run")
    proc = _start(_fit_cmd(config, data, out, 100000))
    _wait_for_checkpoint(proc, out, 20)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = _checkpoint_steps(out)[-1]
    assert last >= 20
    result = subprocess.run(_fit_cmd(config, data, out, last + 5), cwd=ROOT, text=True,
                            capture_output=True)
    assert result.returncode == 0, result.stderr
    assert f"(step {last})" in result.stderr  # "resumed from .../ckpt-N (step N)"
    assert _checkpoint_steps(out)[-1] == last + 5
    with open(os.path.join(out, "train_log.json")) as f:
        assert json.load(f)["steps_this_run"] == 5


def test_resume_finds_checkpoint_the_state_file_missed(tmp_path):
    """SIGKILL after ckpt-N is written but before the state file names it: resume from ckpt-N;
    a newer checkpoint cut short mid-write is skipped for the one before it."""
    from train.trainer import Trainer
    config = tiny_config(steps=5)
    out = str(tmp_path / "run")
    trainer = Trainer(config, num_classes=3, out_dir=out)
    trainer.optimizer.iterations.assign(10)
    trainer.save()
    trainer.optimizer.iterations.assign(20)
    trainer.checkpoint.write(os.path.join(out, "checkpoints", "ckpt-20"))  # state file untouched
    with open(os.path.join(out, "checkpoints", "ckpt-30.index"), "wb") as f:
        f.write(b"cut short")
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-10")
    again = Trainer(config, num_classes=3, out_dir=out)
    assert again.restore() == 20
    assert again.manager.latest_checkpoint.endswith("ckpt-20")  # state file now names it
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-20")


@pytest.mark.slow  # test_sigkill_then_resume covers resuming
def test_sigterm_checkpoints_and_stops(data, tmp_path):
    config = _write_config(tmp_path, checkpoint_every=1000)
    out = str(tmp_path / "run")
    proc = _start(_fit_cmd(config, data, out, 100000))
    t0 = time.time()
    while not os.path.exists(os.path.join(out, "logs")) and time.time() - t0 < 240:
        time.sleep(0.2)  # logs/ appears once training has started
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "checkpoint saved, run the same command to resume" in output
    with open(os.path.join(out, "train_log.json")) as f:
        log = json.load(f)
    assert log["interrupted"] and log["steps"] > 0
    assert _checkpoint_steps(out)[-1] == log["steps"]


def test_bad_images_are_skipped_and_counted(data, tmp_path):
    root = str(tmp_path / "broken")
    shutil.copytree(data, root)
    with open(os.path.join(root, "annotations", "instances_train.json")) as f:
        images = json.load(f)["images"]
    with open(os.path.join(root, "train", images[0]["file_name"]), "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg")
    os.remove(os.path.join(root, "train", images[1]["file_name"]))
    summary = fit(tiny_config(steps=3), root, str(tmp_path / "run"), progress=False)
    assert summary["steps"] == 3
    assert summary["num_train_images"] == len(images) - 2
    assert sum(summary["skipped"].values()) >= 2


def test_cli_reports_bad_config(data, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  image_size: 128\n  extractor: mobilenet_v1\n")
    result = subprocess.run(_fit_cmd(str(bad), data, str(tmp_path / "run"), 5), cwd=ROOT,
                            text=True, capture_output=True)
    assert result.returncode == 2
    assert "bad.yaml: unknown key 'model.extractor'" in result.stderr
    assert "Traceback" not in result.stderr


MIRRORED = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {root!r})
from tests.helpers import tiny_config
from train.trainer import fit, make_strategy
assert make_strategy("mirrored").num_replicas_in_sync == 2
summary = fit(tiny_config(steps=4), {data!r}, {out!r}, strategy="mirrored", progress=False)
print("STEPS", summary["steps"], "LOSS", summary["history"][-1]["total"] if summary["history"] else None)
"""


@pytest.mark.slow  # make test stays under 15 min on 2 cores
def test_mirrored_strategy_with_two_replicas(data, tmp_path):
    script = MIRRORED.format(root=ROOT, data=data, out=str(tmp_path / "run"))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, text=True,
                            capture_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STEPS 4" in result.stdout
