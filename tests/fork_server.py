"""Runs ``python -m edge_runtime`` commands for the model fuzz tests, each in a fresh fork.

Started as a child of the test (``python tests/fork_server.py``): it imports edge_runtime and
LiteRT once, then reads one JSON request per line (``{"argv": [...], "timeout": s}``), forks,
runs ``edge_runtime.__main__.main(argv)`` in the fork and answers one JSON line with the fork's
exit status, signal, whether it was killed for running past the timeout, and its stderr. A crash
of the C++ interpreter kills only that fork; forking (a few ms) instead of starting Python per
model (~1 s) is what lets hundreds of mutated models fit the test budget.
"""
import json
import os
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from edge_runtime.__main__ import main  # noqa: E402
import edge_runtime.detector  # noqa: E402,F401  (imports cv2, numpy and LiteRT before forking)
import edge_runtime.interpreter  # noqa: E402

edge_runtime.interpreter.find_runtime()


def run(argv, timeout):
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the fork: stdout dropped, stderr kept
            code = 1
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(err.fileno(), 2)
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 99  # an uncaught exception: a traceback reached the user
            finally:
                sys.stderr.flush()
                os._exit(code)
        deadline, hang = time.monotonic() + timeout, False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                hang = True
                break
            time.sleep(0.002)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return {"exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) and not hang else None,
            "hang": hang, "stderr": stderr}


if __name__ == "__main__":
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(run(request["argv"], request.get("timeout", 30))), flush=True)
