"""benchmarks/pi_check.py: the README's Raspberry Pi path on an emulated arm64 Debian bookworm.

The end-to-end test is slow (a fresh arm64 root takes ~10 min, a cached one ~3 min) and needs
root, qemu-user-static + binfmt_misc and the network to a Debian mirror and PyPI (probed with
apt-get and pip themselves); without them it is skipped, saying which. PI_CHECK_ROOT overrides
where the root is cached.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

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


def test_mirror_comes_from_the_machines_apt_sources(tmp_path):
    """One-line and deb822 files in apt's order; deb-src, comments, Enabled: no, security and
    non-Debian suites skipped."""
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ubuntu.example/ubuntu jammy main\n")
    d = tmp_path / "sources.list.d"
    (d / "10-security.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n"
        "Enabled: no\n")
    (d / "20-debian.sources").write_text(
        "# a comment\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm\n bookworm-updates\nComponents: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    (d / "30-later.list").write_text("deb http://later.example/debian trixie main\n")
    (d / "old.list.disabled").write_text("deb http://disabled.example/debian sid main\n")
    sources = pi_check.apt_sources(str(tmp_path))
    assert [s["uris"][0] for s in sources] == [
        "http://ubuntu.example/ubuntu", "http://security.example/debian-security",
        "http://mirror.example/debian/", "http://later.example/debian"]
    assert sources[2]["suites"] == ["bookworm", "bookworm-updates"]
    assert pi_check.debian_mirror(str(tmp_path)) == "http://mirror.example/debian"
    (d / "20-debian.sources").unlink()
    assert pi_check.debian_mirror(str(tmp_path)) == "http://later.example/debian"
    (d / "30-later.list").unlink()
    assert pi_check.debian_mirror(str(tmp_path)) is None  # then --mirror is required


def _client_problem(args: list[str], what: str) -> str | None:
    """Runs a package client's download (in a scratch folder); its last line if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            r = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{what}: {e}"
    lines = (r.stderr or r.stdout).strip().splitlines()
    return f"{what} failed: {lines[-1] if lines else r.returncode}" if r.returncode else None


def _host_problem(capsys) -> str | None:
    """What stops qemu-aarch64 + debootstrap here, in pi_check's own words (None: nothing).
    The network is probed through the clients pi_check relies on, not by host name: apt
    (debootstrap fetches from the machine's Debian mirror; only while the root is not cached)
    and pip (README's install inside the root)."""
    try:
        pi_check.ensure_host()
    except SystemExit:
        return capsys.readouterr().err.strip()
    root = os.environ.get("PI_CHECK_ROOT", pi_check.DEFAULT_ROOT)
    if not os.path.exists(os.path.join(root, ".pi-check-ready")):
        if not pi_check.debian_mirror():
            return "no Debian mirror in this machine's apt sources"
        problem = _client_problem(["apt-get", "download", "-q", "debootstrap"],
                                  "apt-get download debootstrap")
        if problem:
            return problem
    return _client_problem([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "--no-cache-dir", "-d", ".", "tqdm"], "pip download tqdm")


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
