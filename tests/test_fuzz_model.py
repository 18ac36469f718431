"""Fuzzing the model loader: byte-mutated and truncated copies of a real int8 SSD and of its
sidecar JSON, each run by ``python -m edge_runtime detect`` in a fork (tests/fork_server.py),
so that an interpreter crash kills only the fork and is seen as its signal.

Forks run with ``--no-probe`` (the loader itself under test); one that dies by a signal is run
again as a user runs it, with the probe, which must turn the crash into exit status 2 and an
error naming the file (edge_runtime/probe.py).
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tests.fuzz import SCALES, Tally, fuzz_settings, mutated

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
MODEL = os.path.join(ASSETS, "shapes_ssd_mobilenet_v2_int8.tflite")
with open(MODEL, "rb") as f:
    ORIGINAL = f.read()
with open(os.path.join(ASSETS, "shapes_ssd_mobilenet_v2_int8.json"), "rb") as f:
    SIDECAR = f.read()


def _structure_bytes() -> np.ndarray:
    """Offsets of the flatbuffer's tables, vectors and strings (not weights): 66 kB of 1 MB,
    where a mutation changes what the interpreter builds rather than one weight."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(ORIGINAL, 0)
    weights = np.zeros(len(ORIGINAL), bool)
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            weights[start:start + b.DataLength()] = True
    return np.flatnonzero(~weights)


STRUCTURE = _structure_bytes()
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=3), max_leaves=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


SIDECAR_PATHS = list(_paths(json.loads(SIDECAR)))[1:]


@st.composite
def sidecars(draw):
    """The sidecar with its bytes mutated, or one key path given a random value or removed."""
    if draw(st.booleans()):
        return draw(mutated(SIDECAR))
    meta = json.loads(SIDECAR)
    path = draw(st.sampled_from(SIDECAR_PATHS))
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(meta).encode()


@pytest.fixture(scope="module")
def server():
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "fork_server.py")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert json.loads(p.stdout.readline()) == {"ready": True}

    def run(argv, timeout=30):
        p.stdin.write(json.dumps({"argv": argv, "timeout": timeout}) + "\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())
    yield run
    p.stdin.close()
    p.wait(timeout=30)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_model")
    cv2.imwrite(str(d / "image.jpg"), np.full((48, 64, 3), 90, np.uint8))
    return d


def check_outcome(r: dict, model: str, tally: Tally, rerun) -> None:
    """Exit 0, or exit 2 with one ``error:`` line naming the model; a fork killed by a signal
    is counted and must give that with the probe (``rerun``)."""
    if r["hang"]:
        tally["hangs"] += 1
        raise AssertionError(f"{model}: no answer within the timeout:\n{r['stderr']}")
    if r["signal"]:
        tally["interpreter crashes without the probe"] += 1
        r = rerun()
        assert not r["signal"] and not r["hang"], r
        tally["crashes caught by the probe"] += 1
    tally[f"exit {r['exit']}"] += 1
    assert r["exit"] in (0, 2), r["stderr"]
    assert "Traceback" not in r["stderr"], r["stderr"]
    if r["exit"] == 2:
        errors = [line for line in r["stderr"].splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and model in errors[0], r["stderr"]


@pytest.mark.parametrize("scale", SCALES)
def test_mutated_models_give_an_error_naming_the_file_never_a_crash(server, workdir, scale):
    model, image, tally = str(workdir / "m.tflite"), str(workdir / "image.jpg"), Tally()
    (workdir / "m.json").write_bytes(SIDECAR)
    argv = ["detect", model, image, "--threads", "1", "--no-progress"]

    @fuzz_settings(400, scale)
    @given(mutated(ORIGINAL, STRUCTURE))
    def fuzz(data):
        with open(model, "wb") as f:
            f.write(data)
        tally["mutated models"] += 1
        tally["passed the cheap checks"] += len(data) >= 24 and data[4:8] == b"TFL3"
        check_outcome(server(argv + ["--no-probe"]), model, tally, lambda: server(argv, 330))

    fuzz()
    tally.report(f"mutated models x{scale}")
    assert tally["mutated models"] >= 300 * scale and tally["hangs"] == 0
    assert tally["interpreter crashes without the probe"] == tally["crashes caught by the probe"]


@pytest.mark.parametrize("scale", SCALES)
def test_mutated_sidecars_give_an_error_naming_the_file(server, workdir, scale):
    model, image, tally = str(workdir / "s.tflite"), str(workdir / "image.jpg"), Tally()
    (workdir / "s.tflite").write_bytes(ORIGINAL)
    argv = ["detect", model, image, "--threads", "1", "--no-progress", "--no-probe"]

    @fuzz_settings(150, scale)
    @given(sidecars())
    def fuzz(data):
        (workdir / "s.json").write_bytes(data)
        tally["mutated sidecars"] += 1
        r = server(argv)
        assert not r["signal"], r
        check_outcome(r, str(workdir / "s.json") if r["exit"] == 2 and "s.json" in r["stderr"]
                      else model, tally, None)

    fuzz()
    tally.report(f"mutated sidecars x{scale}")
    assert tally["mutated sidecars"] >= 100 * scale and tally["hangs"] == 0


def _with_metadata() -> tuple[bytes, np.ndarray]:
    """The asset with standard metadata and frontier.json embedded (as exports carry them), and
    the offsets to mutate: the metadata flatbuffer and the appended zip of associated files."""
    from convert import tflite_metadata
    from edge_runtime import tflite_metadata as reader

    meta = json.loads(SIDECAR)
    record = {k: v for k, v in meta.items() if k not in ("labels", "check")}
    model = tflite_metadata.embed(
        ORIGINAL, labels=meta["labels"], mean=0.0, std=1.0,
        output_tensors=tflite_metadata.signature_outputs(ORIGINAL), record=record, name="fuzz",
        description="fuzz", version="1", author="tests", licence="Apache-2.0")
    buf = reader.metadata_buffer(model)
    start = model.find(buf)
    zip_start = model.find(b"PK\x03\x04")
    return model, np.concatenate([np.arange(start, start + len(buf)),
                                  np.arange(zip_start, len(model))])


@pytest.mark.parametrize("scale", SCALES)
def test_mutated_embedded_metadata_gives_an_error_naming_the_file(server, workdir, scale):
    """The standard metadata and its associated files, byte-mutated, through `detect` (no
    sidecar: the embedded metadata is all the runtime has)."""
    original, where = _with_metadata()
    model, image, tally = str(workdir / "md.tflite"), str(workdir / "image.jpg"), Tally()
    argv = ["detect", model, image, "--threads", "1", "--no-progress"]

    @fuzz_settings(150, scale)
    @given(mutated(original, where))
    def fuzz(data):
        with open(model, "wb") as f:
            f.write(data)
        tally["mutated models"] += 1
        check_outcome(server(argv + ["--no-probe"]), model, tally, lambda: server(argv, 330))

    fuzz()
    tally.report(f"mutated embedded metadata x{scale}")
    assert tally["mutated models"] >= 100 * scale and tally["hangs"] == 0
