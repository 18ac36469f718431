"""Loads and runs a model once in a child process before the CLI loads it in its own.

A corrupt ``.tflite`` that passes the cheap checks (``interpreter.check_model_file``) can still
crash LiteRT's C++ code, which no Python ``except`` catches: of 1,500 structure-byte mutations
of a real int8 SSD, 2 segfaulted and 1 aborted in ``allocate_tensors`` or the first ``invoke``
(tests/test_fuzz_model.py), and ai-edge-litert offers no flatbuffer verification. So
``python -m edge_runtime`` first builds the detector and invokes it on a blank input in a child
(``python -m edge_runtime.probe MODEL ...``); if the child dies, the user gets a one-line error
naming the file instead of a dead process. It costs one Python start (0.4 s here);
``--no-probe`` skips it.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from edge_runtime.interpreter import one_line

TIMEOUT_S = 300  # a large two-stage model on a Pi loads and runs in well under a minute


def _flags(num_threads, use_xnnpack, delegate, runtime) -> list[str]:
    return ((["--threads", str(num_threads)] if num_threads else [])
            + ([] if use_xnnpack else ["--no-xnnpack"])
            + (["--delegate", delegate] if delegate else [])
            + (["--runtime", runtime] if runtime else []))


def probe_model(model_path: str, num_threads: int | None = None, use_xnnpack: bool = True,
                delegate: str | None = None, runtime: str | None = None,
                timeout: float = TIMEOUT_S) -> str | None:
    """None if a child process loaded the model and ran it once; else a one-line error."""
    argv = [sys.executable, "-m", "edge_runtime.probe", str(model_path),
            *_flags(num_threads, use_xnnpack, delegate, runtime)]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return (f"{model_path}: loading and running the model once did not finish in "
                f"{timeout:g} s (a corrupt model can make the interpreter hang); --no-probe "
                "skips this check")
    if r.returncode == 0:
        return None
    if r.returncode < 0:
        try:
            name = signal.Signals(-r.returncode).name
        except ValueError:
            name = f"signal {-r.returncode}"
        return (f"{model_path}: the TFLite interpreter crashed ({name}) loading or running this "
                "model in a check process: the file is corrupt or not a model this runtime "
                "can run")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    tail = " ".join(r.stderr.split()[-30:])
    return f"{model_path}: the check process failed (exit status {r.returncode}): {tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_runtime.probe", description=__doc__)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-xnnpack", action="store_true")
    p.add_argument("--delegate")
    p.add_argument("--runtime")
    args = p.parse_args(argv)
    import numpy as np

    from edge_runtime.detector import Detector

    try:
        det = Detector(args.model, num_threads=args.threads, use_xnnpack=not args.no_xnnpack,
                       delegate=args.delegate, runtime=args.runtime)
        det.invoke(det.to_input(np.zeros((det.height, det.width, 3), np.uint8)))
    except Exception as e:  # any failure is the model's: reported, one line, by the parent
        message = one_line(e)
        print(f"error: {message if args.model in message else f'{args.model}: {message}'}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
