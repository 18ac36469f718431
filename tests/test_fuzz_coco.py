"""Fuzzing the two COCO readers (train/data/coco.py, edge_runtime/coco.py) with generated
annotation files: wrong types, missing keys, NaN/inf/huge/negative numbers, duplicate ids,
unicode and path-traversal file names, images that are empty, truncated or not images.

Every file must give a dataset (problems counted) or a one-line DataError naming it; both
readers must agree (they score one model against the same ground truth); no file outside the
dataset root may be opened or even looked at (every open/stat/scandir/imread is watched, and a
valid image waits outside the root to be found).
"""
import builtins
import json
import os
import sys
from unittest import mock

import cv2
import numpy as np
import pytest
from hypothesis import given, strategies as st

from edge_runtime.coco import read_ground_truth
from edge_runtime.evaluate import evaluate
from edge_runtime.images import DataError, read_image
from tests.fuzz import SCALES, Tally, fuzz_settings, mutated
from train.data.coco import read_coco

import pycocotools.coco  # noqa: E402,F401  (imported here, not inside the watched calls)
import pycocotools.cocoeval  # noqa: E402,F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, "tests", "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
GOOD = ["a.jpg", "b.png", "ünï cödé 😀.jpg", "sub/c.jpg"]
BAD = ["empty.jpg", "truncated.jpg", "truncated.png", "text.jpg", "folder.jpg", "missing.jpg"]
ESCAPES = ["../outside/secret.jpg", "../../outside/secret.jpg", "sub/../../../outside/secret.jpg",
           "{outside}/secret.jpg", "/etc/passwd", "../../../../../../etc/passwd", "~/secret.jpg"]
ODD = ["", ".", "..", "/", "sub", "sub/", "a.jpg\x00.png", "\ud800.jpg", "x" * 300 + ".jpg",
       "a.jpg/", "./a.jpg", "sub//c.jpg", "C:\\secret.jpg", "\\\\host\\share\\x.jpg"]


def _layout(base) -> str:
    """base/root: annotations/ and train/ with good and bad images; base/outside/secret.jpg."""
    root, train = base / "root", base / "root" / "train"
    (train / "sub").mkdir(parents=True)
    (root / "annotations").mkdir()
    (base / "outside").mkdir()
    jpg = cv2.imencode(".jpg", np.full((24, 32, 3), 200, np.uint8))[1].tobytes()
    png = cv2.imencode(".png", np.full((24, 32, 3), 50, np.uint8))[1].tobytes()
    for name, data in [("a.jpg", jpg), ("b.png", png), ("ünï cödé 😀.jpg", jpg),
                       ("sub/c.jpg", jpg), ("empty.jpg", b""), ("truncated.jpg", jpg[:len(jpg) // 2]),
                       ("truncated.png", png[:len(png) // 2]), ("text.jpg", b"not an image\n")]:
        (train / name).write_bytes(data)
    (train / "folder.jpg").mkdir()
    (base / "outside" / "secret.jpg").write_bytes(jpg)
    return str(root)


numbers = (st.integers(-3, 40) | st.sampled_from([2**31, 2**63, -2**63 - 1, 2**64, 10**400])
           | st.floats() | st.sampled_from([1e308, -0.0, 5e-324, 0.5]))
junk = st.recursive(st.none() | st.booleans() | numbers | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=4), kids, max_size=2), max_leaves=4)


def _rarely(good, bad, one_in: int = 12):
    """``good``, but about one time in ``one_in`` ``bad`` (a middle value: hypothesis favours
    the ends of a range)."""
    return st.integers(1, one_in).flatmap(lambda i: bad if i == one_in // 2 else good)


ids = _rarely(st.integers(0, 6), st.sampled_from([2**63, -1, 3.0, 1.5, 1e19, True]), 40)
sizes = _rarely(st.integers(1, 64), st.sampled_from([0, -8, 2**40, 10**400, 24.0, 0.5, 1e400]), 40)
coords = _rarely(st.integers(-10, 80) | st.floats(-10, 80),
                 st.floats() | st.sampled_from([1e308, -1e308, 5e-324, -0.0]), 10)


def _names(outside: str):
    return _rarely(st.sampled_from(GOOD), st.sampled_from(
        BAD + [e.format(outside=outside) for e in ESCAPES] + ODD) | st.text(max_size=10), 3)


def _key_paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        yield from _key_paths(v, prefix + (k,))


@st.composite
def coco_files(draw, outside: str) -> bytes:
    """The bytes of an annotation file: a plausible COCO document with 0-3 values replaced by
    anything or removed, sometimes its bytes mutated."""
    def entries(min_size=0, **fields):  # ids unique but one time in ten
        unique = {} if draw(st.integers(1, 10)) == 5 else {"unique_by": lambda e: str(e["id"])}
        return st.lists(st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k not in ("area", "iscrowd")},
            optional={k: v for k, v in fields.items() if k in ("area", "iscrowd")}),
            min_size=min_size, max_size=6, **unique)

    doc = {"images": draw(entries(id=ids, file_name=_names(outside), width=sizes, height=sizes)),
           "annotations": draw(entries(
               id=ids, image_id=ids, category_id=ids, area=coords, iscrowd=st.sampled_from([0, 1]),
               bbox=st.lists(coords, min_size=4, max_size=4))),
           "categories": draw(entries(1, id=ids, name=_rarely(st.text(min_size=1, max_size=6),
                                                              st.text(max_size=1))))}
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        path = draw(st.sampled_from(list(_key_paths(doc))))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if not path:
            doc = draw(junk)
        elif isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(junk)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return draw(mutated(text)) if draw(st.integers(0, 9)) == 5 else text


class Watch:
    """Records every path opened, stat'ed, listed or decoded that lies outside ``root``."""

    def __init__(self, root: str):
        self.root, self.outside = os.path.abspath(root), []
        self.allowed = [os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, REPO)]

    def _see(self, path):
        if isinstance(path, int):
            return
        path = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
        full = os.path.abspath(path)
        # inside the root or Python's own files, or a folder above them (imports and
        # linecache stat those)
        if not any(os.path.commonpath([p, full]) in (p, full) for p in [self.root, *self.allowed]):
            self.outside.append(path)

    def _wrap(self, fn):
        def watched(path, *args, **kwargs):
            self._see(path)
            return fn(path, *args, **kwargs)
        return watched

    def __enter__(self):
        names = [(builtins, "open"), (os, "open"), (os, "stat"), (os, "lstat"), (os, "scandir"),
                 (os, "listdir"), (cv2, "imread")]
        self._patches = [mock.patch.object(m, n, self._wrap(getattr(m, n))) for m, n in names]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self._patches:
            p.stop()


def _outcome(fn, path: str, tally: Tally, what: str):
    """fn()'s result, or the DataError it raised (one line, naming ``path``)."""
    try:
        result = fn()
    except DataError as e:
        message = str(e)
        assert "\n" not in message and path in message, message
        tally[f"{what}: errors"] += 1
        return e
    tally[f"{what}: read"] += 1
    return result


@pytest.fixture(scope="module")
def detector():
    from edge_runtime.detector import Detector
    det = Detector(MODEL, num_threads=1, interpolation="area")
    det.metadata = {}  # no sidecar: scored against the data's categories, whichever they are
    return det


@pytest.mark.parametrize("scale", SCALES)
def test_generated_coco_files_give_a_dataset_or_an_error_naming_the_file(
        tmp_path_factory, detector, scale):
    base = tmp_path_factory.mktemp("fuzz_coco")
    root, tally = _layout(base), Tally()
    path = os.path.join(root, "annotations", "instances_train.json")
    outside = str(base / "outside")

    @fuzz_settings(500, scale)
    @given(coco_files(outside))
    def fuzz(data):
        with open(path, "wb") as f:
            f.write(data)
        tally["COCO files"] += 1
        with Watch(root) as watch:
            train = _outcome(lambda: read_coco(path, "train"), path, tally, "train")
            edge = _outcome(lambda: read_ground_truth(path, "train"), path, tally, "edge")
            assert isinstance(train, DataError) == isinstance(edge, DataError), (train, edge)
            if not isinstance(train, DataError):
                assert dict(edge.warnings) == {  # the clipped and crowd notes are train's alone
                    k: v for k, v in train.warnings.items() if "clipped" not in k and "crowd" not in k}
                assert [e.image_id for e in train.examples] == [
                    im["id"] for im in edge.coco["images"]]
                assert sum(len(e.boxes) + len(e.crowd_boxes) for e in train.examples) == len(
                    edge.coco["annotations"])
                for example in train.examples:  # the decoder train's input pipeline uses
                    _outcome(lambda: read_image(example.file_name), example.file_name, tally,
                             "images")
                try:
                    report = evaluate(MODEL, path, "train", detector=detector, progress=False)
                    tally["evaluate: scored"] += 1
                except ValueError as e:  # DataError, or more classes than the data has
                    assert "\n" not in str(e) and (path in str(e) or MODEL in str(e)), str(e)
                    tally["evaluate: errors"] += 1
                else:
                    tally["images skipped by evaluate"] += sum(
                        v for k, v in report["skipped"].items() if k.startswith(root))
        tally["outside reads"] += len(watch.outside)
        assert not watch.outside, watch.outside

    with open(path, "w") as f:  # lazy imports out of the way of Watch
        json.dump({"images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}],
                   "annotations": [], "categories": [{"id": i, "name": "x"} for i in range(8)]},
                  f)
    read_coco(path), evaluate(MODEL, path, "train", detector=detector, progress=False)
    fuzz()
    tally.report(f"COCO files x{scale}")
    assert tally["COCO files"] >= 400 * scale and tally["outside reads"] == 0
    assert tally["train: read"] > 0.2 * tally["COCO files"]  # not only errors: deep checks ran
