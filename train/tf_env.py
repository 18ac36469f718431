"""TensorFlow's environment defaults, set by ``import train`` before TensorFlow is first imported.

Every entry point that uses TensorFlow (``python -m train``, ``python -m convert`` and
``convert/export_tflite.py``, ``benchmarks/*.py``) imports ``train`` first, and so gets these;
a variable the user has set keeps its value.

- ``TF_USE_LEGACY_KERAS=1``: the project's Keras (see train/__init__.py).
- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ INFO and WARNING logs off; errors still show.
- TensorFlow 2.21 prints a few lines before it reads that variable (absl logging is not set up
  yet, so no variable reaches them): "oneDNN custom operations are on" and "Could not find cuda
  drivers" (twice: the profiler plugin carries its own copy), absl's "All log messages before
  absl::InitializeLog() ..." above them, and on a machine without a GPU "failed call to cuInit"
  at the first device query. To a newcomer they read as failures. So the first
  ``import tensorflow`` runs with the process's stderr (file descriptor 2) sent to a temporary
  file, the GPU query is made there too on a machine with no GPU, and every other line is written
  back when it ends: Python's warnings and TensorFlow's errors still show, only later.
  ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything (also what to use if TensorFlow crashes while it
  loads: a crash loses what the temporary file held).
- One Python deprecation notice (``WARNING:tensorflow:From ...: _colocate_with (from
  tensorflow.python.framework.ops) is deprecated ...``), three lines in every ``python -m
  convert`` (it traces the model in graph mode): tf_keras' BatchNormalization calls
  ``tf.compat.v1.colocate_with``, not our code, and nothing we could change. A filter on the
  ``tensorflow`` logger drops that record only (:data:`DEPRECATIONS`); other deprecation
  notices, and everything with ``TF_CPP_MIN_LOG_LEVEL=0``, still show.
  Not used: ``TF_ENABLE_ONEDNN_OPTS=0`` silences the oneDNN line but changes TensorFlow's CPU
  kernels (numerics and speed); ``CUDA_VISIBLE_DEVICES=""`` does not silence the cuInit line
  (measured) and would hide a real GPU.
"""
from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import re
import sys
import tempfile

# The start-up notices (see the module docstring); matched anywhere in a line.
NOTICES = (r"WARNING: All log messages before absl::InitializeLog\(\) is called",
           r"port\.cc:\d+\] oneDNN custom operations are on",
           r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine")
NO_GPU_NOTICES = (r"cuda_platform\.cc:\d+\] failed call to cuInit",)
# Python deprecation notices about TensorFlow's internals that its own libraries call.
DEPRECATIONS = (r"_colocate_with \(from tensorflow\.python\.framework\.ops\) is deprecated",)


def set_defaults() -> None:
    """Sets the defaults above and, unless TF_CPP_MIN_LOG_LEVEL is 0, arms the quiet first
    import of TensorFlow (if it is not loaded yet) and the deprecation filter."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() == "0":
        return
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport)
                                                   for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
    logger = logging.getLogger("tensorflow")  # TensorFlow's Python logger, made or not yet
    if not any(isinstance(f, _DropDeprecations) for f in logger.filters):
        logger.addFilter(_DropDeprecations())


class _DropDeprecations(logging.Filter):
    """Drops the ``tensorflow`` logger's records that match :data:`DEPRECATIONS` (a logger's
    filter runs before its handlers and before the record reaches the root logger's)."""

    pattern = re.compile("|".join(DEPRECATIONS))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def has_gpu() -> bool:
    """Whether this machine shows an NVIDIA GPU (a device node, the driver, or WSL's GPU)."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/proc/driver/nvidia")
                or os.path.exists("/dev/dxg"))


@contextlib.contextmanager
def stderr_without(pattern: re.Pattern):
    """Runs the block with file descriptor 2 in a temporary file, then writes back to the real
    stderr every line that ``pattern`` does not match (also when the block raises)."""
    sys.stderr.flush()
    try:
        tmp, saved = tempfile.TemporaryFile(), os.dup(2)
    except OSError:  # no temporary folder, or no stderr at all: nothing is filtered
        yield
        return
    with tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = b"".join(line for line in tmp.read().splitlines(keepends=True)
                            if not pattern.search(line.decode("utf-8", "replace")))
            while kept:
                kept = kept[os.write(2, kept):]


class _QuietImport:
    """An import hook for the first ``import tensorflow`` only: it finds TensorFlow as usual
    and wraps its loader in :class:`_QuietLoader`, then steps out of ``sys.meta_path``."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """TensorFlow's own loader, run inside :func:`stderr_without` (the notices)."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # anything else a loader offers: TensorFlow's own
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        gpu = has_gpu()
        pattern = re.compile("|".join(NOTICES + (() if gpu else NO_GPU_NOTICES)))
        try:
            with stderr_without(pattern):
                self.loader.exec_module(module)
                if not gpu:  # cuInit fails now, inside the filter, not at the first op
                    try:
                        module.config.list_physical_devices("GPU")
                    except Exception:  # noqa: BLE001  (reported again at the first real use)
                        pass
        finally:
            module.__loader__ = module.__spec__.loader = self.loader
