"""train/tf_env.py: TensorFlow's start-up notices stay off the console; everything else shows."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from train import tf_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTICES = ("oneDNN custom operations", "cudart_stub.cc", "cpu_feature_guard.cc", "cuInit",
           "absl::InitializeLog")


def test_cli_prints_no_tensorflow_start_up_lines():
    """`python -m convert --help` (which imports TensorFlow) as a user runs it: none of the
    variables tests/conftest.py sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    out = subprocess.run([sys.executable, "-m", "convert", "--help"], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0 and "usage" in out.stdout, out.stderr[-2000:]
    assert not [n for n in NOTICES if n in out.stderr], out.stderr[-2000:]


def test_filter_writes_back_every_other_line(capfd):
    pattern = re.compile("|".join(tf_env.NOTICES))
    with tf_env.stderr_without(pattern):
        os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. ...\n"
                    b"E0000 a real error\nW a Python warning\n")
    assert capfd.readouterr().err == "E0000 a real error\nW a Python warning\n"
    try:  # written back when the block raises too
        with tf_env.stderr_without(pattern):
            os.write(2, b"why it failed\n")
            raise ImportError("boom")
    except ImportError:
        pass
    assert capfd.readouterr().err == "why it failed\n"


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path
                                           if not isinstance(f, tf_env._QuietImport)])
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    tf_env.set_defaults()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert not any(isinstance(f, tf_env._QuietImport) for f in sys.meta_path)  # shows it all


def test_colocate_with_deprecation_is_dropped_and_others_kept(monkeypatch, caplog):
    """tf_keras' BatchNormalization calls tf.compat.v1.colocate_with in graph mode (every
    export): that one notice is dropped, other TensorFlow warnings still reach the handlers."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    tf_env.set_defaults()
    monkeypatch.setattr(deprecation, "_PRINTED_WARNING", {})  # as in a fresh process
    with caplog.at_level("WARNING", logger="tensorflow"), tf.Graph().as_default():
        v = tf.compat.v1.Variable(1.0)
        with tf.compat.v1.colocate_with(v):
            tf.identity(v)
        tf.get_logger().warning("From x: tf.foo (from tensorflow.bar) is deprecated")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "_colocate_with" in m], messages
    assert any("tf.foo" in m for m in messages)
