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


def _det(image, box, score, category=1):
    return {"image_id": image, "category_id": category, "bbox": box, "score": score}


def test_compare_pairs_by_image_and_class_and_holds_the_bounds():
    tol = dict(pi_check.FLOAT32_TOL)
    host = [_det(1, [87.80, 36.01, 15.23, 12.04], 0.5), _det(1, [0, 0, 50, 50], 0.9),
            _det(2, [10, 10, 20, 20], 0.4, category=2)]
    # a 15 px box 0.01 px off (the files' rounding: IoU 0.9987) is the same box
    arm = [_det(1, [87.79, 36.01, 15.23, 12.04], 0.5001), _det(1, [0, 0, 50, 50], 0.9),
           _det(2, [10, 10, 20, 20], 0.4, category=2)]
    c = pi_check.compare(host, arm, tol)
    assert c["paired"] == 3 and c["unpaired"] == 0 and c["within_tol"] == 3
    assert c["min_iou"] == 1.0 and c["min_iou_raw"] < 0.999 and pi_check.within(c, tol)
    arm[2] = _det(2, [10, 10, 20, 20], 0.4, category=3)  # another class: no partner
    arm[1] = _det(1, [2, 0, 50, 50], 0.9)  # IoU 0.92: paired, not within float32's bounds
    c = pi_check.compare(host, arm, tol)
    assert (c["paired"], c["unpaired"], c["within_tol"]) == (2, 2, 1)
    assert not pi_check.within(c, tol)
    loose = dict(tol, min_iou=0.9, within=1 / 3, unpaired=1.0)
    assert pi_check.within(pi_check.compare(host, arm, loose), loose)
    assert not pi_check.within(pi_check.compare(host, [], loose), loose)  # nothing compared


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
