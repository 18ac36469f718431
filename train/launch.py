"""``python -m train launch --workers N <fit arguments>``: a local multi-worker cluster.

Starts N ``python -m train fit ... --strategy multi_worker`` processes on free 127.0.0.1 ports,
each with its own ``TF_CONFIG`` (worker 0 is the chief). The chief's output (its progress bar)
streams to this console; the others' goes to log files that are deleted when all end well.
If one worker fails (an error, a crash, SIGKILL) the others are stopped, since a synchronous
all-reduce cannot go on without it, and the same command resumes from the last checkpoint.
Ctrl-C reaches every worker: they agree on a step, the chief checkpoints, all stop.
On several machines, run ``python -m train fit`` on each with that machine's TF_CONFIG instead
(README: "Training on several machines").
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports: list[int], host: str = "127.0.0.1") -> list[str]:
    """One TF_CONFIG (JSON) per worker of a cluster on ``host``."""
    cluster = {"worker": [f"{host}:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def _stop(procs, grace: float = 5.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + grace
    for p in procs:
        if p.poll() is None:
            try:
                p.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _tail(path: str, lines: int = 15) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def launch(workers: int, fit_args: list[str], poll: float = 0.2) -> int:
    """Runs the cluster to the end -> an exit status (the first failing worker's, else 0)."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    configs = tf_configs(free_ports(workers))
    logs = tempfile.mkdtemp(prefix="frontier-launch-")
    procs, files = [], []
    base = [sys.executable, "-m", "train", "fit", *fit_args, "--strategy", "multi_worker"]
    print(f"launching {workers} workers on 127.0.0.1 (logs of workers 1..{workers - 1}: "
          f"{logs})", flush=True)
    previous_int = signal.getsignal(signal.SIGINT)
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        for i, tf_config in enumerate(configs):
            env = dict(os.environ, TF_CONFIG=tf_config)
            if i == 0:
                out = None
            else:
                files.append(open(os.path.join(logs, f"worker-{i}.log"), "w"))
                out = files[-1]
            cmd = base if i == 0 else base + ["--no-progress"]
            procs.append(subprocess.Popen(cmd, env=env, cwd=os.getcwd(), stdout=out,
                                          stderr=subprocess.STDOUT if out else None))
        # set after the start: an ignored SIGINT would be inherited by the workers
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the workers themselves
        signal.signal(signal.SIGTERM, lambda *_: [p.send_signal(signal.SIGTERM)
                                                  for p in procs if p.poll() is None])
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:  # a worker killed by a signal is the cause, not a peer that lost it
                i = min(failed, key=lambda k: (codes[k] > 0, k))
                _stop(procs)
                where = "" if i == 0 else (
                    f"; its last lines ({logs}/worker-{i}.log):\n"
                    f"{_tail(os.path.join(logs, f'worker-{i}.log'))}")
                print(f"error: worker {i} exited with status {codes[i]}; stopped the others. "
                      f"Run the same command to resume from the last checkpoint{where}",
                      file=sys.stderr, flush=True)
                return codes[i] if codes[i] > 0 else 1
            if all(c == 0 for c in codes):
                shutil.rmtree(logs, ignore_errors=True)
                return 0
            time.sleep(poll)
    finally:
        _stop(procs)
        for f in files:
            f.close()
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
