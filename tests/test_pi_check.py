"""benchmarks/pi_check.py: the README's Raspberry Pi path on an emulated arm64 Debian bookworm.

The end-to-end test is slow (a fresh arm64 root takes ~10 min, a cached one ~3 min) and needs
root, qemu-user-static + binfmt_misc and the network to the Debian mirror and PyPI; without
them it is skipped, saying which. PI_CHECK_ROOT overrides where the root is cached.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from benchmarks import pi_check

REPO = pi_check.REPO


def test_readme_says_what_pi_check_runs():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    for line in pi_check.INSTALL:
        assert line in readme, f"README's Pi section no longer says {line!r}"
    assert "make pi-check" in readme


def _unreachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=10).close()
        return False
    except OSError:
        return True


def _host_problem(capsys) -> str | None:
    """What stops qemu-aarch64 + debootstrap here, in pi_check's own words (None: nothing)."""
    try:
        pi_check.ensure_host()
    except SystemExit:
        return capsys.readouterr().err.strip()
    for host, port in (("deb.debian.org", 80), ("pypi.org", 443)):
        if _unreachable(host, port):
            return f"no network to {host}:{port}"
    return None


@pytest.mark.slow
def test_pi_check_end_to_end(tmp_path, capsys):
    problem = _host_problem(capsys)
    if problem:
        pytest.skip(f"cannot emulate arm64 Debian here: {problem}")
    from tests.helpers import make_dataset

    data = make_dataset(str(tmp_path / "data"), train=2, val=6)
    float32 = str(tmp_path / "model_float32.tflite")
    subprocess.run([sys.executable, "-m", "convert", "--run", "train/zoo/ssd_mobilenet_v2_shapes",
                    "--quantize", "float32", "--data", data, "--check-images", "2",
                    "--no-progress", "--out", float32], cwd=REPO, check=True)
    int8 = os.path.join(REPO, "tests", "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "benchmarks/pi_check.py", "--models", float32, int8,
                             "--data", data, "--images", "3", "--eval-images", "6",
                             "--runs", "3", "--out", str(out)], cwd=REPO)
    summary = json.loads((out / "pi_check.json").read_text())
    assert result.returncode == 0 and summary["passed"], summary
    assert "NOT Raspberry Pi figures" in summary["latency_note"]
    assert summary["arm64_machine"]["arch"] == "aarch64"
    kinds = {r["kind"]: r for r in summary["models"]}
    f, q = kinds["float32"]["evaluate"], kinds["int8"]["evaluate"]  # the same pixels both sides
    assert f["paired"] > 0 and f["unpaired"] == 0, f
    assert f["min_iou"] >= 0.999 and f["max_score_diff"] <= 1e-4, f
    assert q["paired"] > 0 and q["passed"], q
    # detect resizes with INTER_LINEAR_EXACT, the same pixels on both: held to the same bounds
    d = kinds["float32"]["detect"]
    assert d["paired"] > 0 and d["unpaired"] == 0, d
    assert d["min_iou"] >= 0.999 and d["max_score_diff"] <= 1e-4, d
    assert kinds["int8"]["detect"]["passed"], kinds["int8"]["detect"]
    assert abs(kinds["float32"]["AP"]["x86_64"] - kinds["float32"]["AP"]["arm64"]) < 1e-6
