"""Chooses and builds the TFLite interpreter.

LiteRT (``ai-edge-litert``) is the default: it is the maintained successor of tflite-runtime,
works with numpy 2, and on our x86-64 (AVX2) build machine runs int8 models 4-7x faster than
tflite-runtime 2.14. tflite-runtime and TensorFlow's ``tf.lite`` are fallbacks when LiteRT is
not installed; the runtime that ran is always reported.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import types

RUNTIMES = ("litert", "tflite_runtime", "tensorflow")
_MODULES = {"litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
            "tflite_runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
            "tensorflow": ("tensorflow.lite", "tensorflow")}


class RuntimeUnavailable(RuntimeError):
    pass


# the smallest flatbuffer with a root table: root offset, "TFL3", a vtable and a table
MIN_MODEL_BYTES = 24


def check_model_file(model_path: str) -> None:
    """Cheap checks before the interpreter sees the file: it can crash on a broken one (see
    edge_runtime/probe.py). ValueError naming the file if it is missing, too small, not a
    TFLite flatbuffer ("TFL3" at bytes 4..8) or its root table lies past its end."""
    try:
        size = os.path.getsize(model_path)
        with open(model_path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ValueError(f"{model_path}: model file not found") from None
    except OSError as e:
        raise ValueError(f"{model_path}: cannot read the model file ({e.strerror or e})") from None
    if size < MIN_MODEL_BYTES:
        raise ValueError(f"{model_path}: {size} bytes, too small for a TFLite model (truncated?)")
    if head[4:8] != b"TFL3":
        raise ValueError(f"{model_path}: not a TFLite model (no \"TFL3\" flatbuffer identifier "
                         f"at bytes 4..8, found {bytes(head[4:8])!r})")
    if int.from_bytes(head[:4], "little") + 4 > size:
        raise ValueError(f"{model_path}: corrupt TFLite model (its root table offset points past "
                         f"the end of the {size}-byte file: truncated?)")


def one_line(error: Exception) -> str:
    """The interpreter's multi-line messages on one line."""
    return " ".join(str(error).split())


def _load(name: str):
    module_name, dist = _MODULES[name]
    module = importlib.import_module(module_name)
    if name == "tensorflow":  # same three names as the standalone packages export
        module = types.SimpleNamespace(Interpreter=module.Interpreter,
                                       OpResolverType=module.experimental.OpResolverType,
                                       load_delegate=module.experimental.load_delegate)
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return module, version


def find_runtime(prefer: str | None = None):
    """Returns ``(module, name, version)`` of the first importable runtime (``prefer`` only)."""
    names = [prefer] if prefer else list(RUNTIMES)
    errors = []
    for name in names:
        if name not in _MODULES:
            raise ValueError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
        try:
            module, version = _load(name)
            return module, name, version
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise RuntimeUnavailable("no TFLite interpreter is installed (" + "; ".join(errors)
                             + "); run `pip install ai-edge-litert`")


def make_interpreter(model_path: str, num_threads: int | None = None, use_xnnpack: bool = True,
                     delegate: str | None = None, runtime: str | None = None):
    """Builds an interpreter for ``model_path`` and allocates its tensors.

    ``use_xnnpack=False`` turns off the default XNNPACK delegate; ``delegate`` is the path of an
    external delegate library (e.g. ``libedgetpu.so.1``). Returns ``(interpreter, info)`` where
    info is ``{"runtime", "version", "threads", "xnnpack", "delegate"}``.
    """
    check_model_file(model_path)
    module, name, version = find_runtime(runtime)
    kwargs = {"model_path": str(model_path), "num_threads": num_threads}
    if not use_xnnpack:
        kwargs["experimental_op_resolver_type"] = (
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if delegate:
        try:
            kwargs["experimental_delegates"] = [module.load_delegate(delegate)]
        except (ValueError, OSError) as e:
            raise RuntimeUnavailable(f"{delegate}: cannot load the delegate ({e})") from None
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:  # RuntimeError: a kernel refused it in Prepare
        raise ValueError(f"{model_path}: not a model this interpreter can run "
                         f"({one_line(e)})") from None
    info = {"runtime": name, "version": version, "threads": num_threads,
            "xnnpack": use_xnnpack, "delegate": delegate}
    return interpreter, info


def op_names(interpreter) -> list[str]:
    """Names of the model's operators in execution order (custom ops by their custom name)."""
    return [op["op_name"] for op in interpreter._get_ops_details()]
