"""The synthetic dataset generator: layout, determinism, occlusion-aware boxes, size mix."""
import json
import os

import cv2
import numpy as np
import pytest

from train.data import DataError, load_dataset
from train.data.generate import generate, main
from train.data.shapes import CATEGORIES, DrawnObject, shape_contours
from train.data.synthetic import paste_objects, size_bucket


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gen") / "tiny")
    result = generate(out, "tiny", seed=0, workers=1, progress=False)
    return out, result


def _square(category, x0, y0, side):
    return DrawnObject(category, x0, y0, np.full((side, side, 3), 50.0 * category, np.float32),
                       np.ones((side, side), bool))


def test_box_is_tight_on_visible_pixels_after_occlusion_and_truncation():
    img = np.zeros((40, 60, 3), np.float32)
    objects = [
        _square(1, 10, 10, 20),   # right half covered by the next one -> box x 10..20
        _square(2, 20, 10, 20),   # fully visible
        _square(3, -5, 30, 10),   # truncated at the left border: 5 x 10 of 10 x 10 visible
        _square(4, 21, 11, 18),   # hides 2 except a 1 px frame: 76 / 400 px < 30% visible
        _square(5, 100, 0, 10),   # entirely outside
    ]
    anns = paste_objects(img, objects)
    by_cat = {a.category_id: a for a in anns}
    assert by_cat[1].bbox == (10, 10, 10, 20) and by_cat[1].area == 200
    assert 2 not in by_cat  # only 400 - 324 = 76 px of 400 visible
    assert by_cat[3].bbox == (0, 30, 5, 10) and by_cat[3].area == 50
    assert by_cat[4].bbox == (21, 11, 18, 18)
    assert 5 not in by_cat
    assert img[15, 15, 0] == 50 and img[10, 25, 0] == 100 and img[20, 30, 0] == 200


def test_shape_contours_have_the_expected_areas():
    rng = np.random.default_rng(0)
    area = {name: abs(cv2.contourArea(shape_contours(name, rng)[0].astype(np.float32)))
            for name in CATEGORIES}
    assert area["circle"] == pytest.approx(np.pi, rel=0.01)
    assert area["square"] == pytest.approx(4.0, rel=1e-5)
    assert area["hexagon"] == pytest.approx(3 * np.sqrt(3) / 2, rel=1e-5)
    assert len(shape_contours("ring", rng)) == 2  # outer + hole


def test_size_buckets_follow_coco():
    assert [size_bucket(a) for a in (16, 1023, 1024, 9216, 9217)] == [
        "small", "small", "medium", "medium", "large"]


def test_tiny_layout_and_json(tiny):
    out, result = tiny
    assert result["skipped"] is False
    for split, n in (("train", 24), ("val", 8)):
        with open(os.path.join(out, "annotations", f"instances_{split}.json")) as f:
            coco = json.load(f)
        assert [c["id"] for c in coco["categories"]] == list(range(1, 9))
        assert {c["supercategory"] for c in coco["categories"]} == {"shape"}
        assert len(coco["images"]) == n
        sizes = {}
        for im in coco["images"]:
            img = cv2.imread(os.path.join(out, split, im["file_name"]))
            assert img.shape[:2] == (im["height"], im["width"])
            assert 256 <= im["width"] <= 384 and 256 <= im["height"] <= 384
            sizes[im["id"]] = (im["width"], im["height"])
        assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
        for a in coco["annotations"]:
            x, y, w, h = a["bbox"]
            W, H = sizes[a["image_id"]]
            assert x >= 0 and y >= 0 and x + w <= W and y + h <= H
            assert 16 <= a["area"] <= w * h and a["iscrowd"] == 0
    assert len({(w, h) for w, h in sizes.values()}) > 1  # sizes vary per image


def test_objects_span_coco_size_buckets(tiny):
    stats = tiny[1]["stats"]
    total = stats["small"] + stats["medium"] + stats["large"]
    assert total == stats["objects"] > 100
    assert stats["small"] / total >= 0.2
    assert stats["medium"] / total >= 0.25 and stats["large"] / total >= 0.1
    ds = load_dataset(tiny[0], "train")
    counts = [len(e.classes) for e in ds.examples]
    assert max(counts) <= 15 and len(set(np.concatenate([e.classes for e in ds.examples]))) == 8


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate(str(tmp_path / "a"), "tiny", seed=3, workers=1, progress=False, _counts=(5, 2))
    b = generate(str(tmp_path / "b"), "tiny", seed=3, workers=2, progress=False, _counts=(5, 2))
    c = generate(str(tmp_path / "c"), "tiny", seed=4, workers=1, progress=False, _counts=(5, 2))
    assert a["stats"] == b["stats"]
    for rel in ("annotations/instances_train.json", "annotations/instances_val.json",
                "train/000004.jpg", "val/000001.jpg"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert ((tmp_path / "a" / "annotations/instances_train.json").read_bytes()
            != (tmp_path / "c" / "annotations/instances_train.json").read_bytes())


def test_rerun_skips_regenerates_and_refuses(tmp_path, capsys):
    out = str(tmp_path / "d")
    generate(out, "tiny", seed=0, workers=1, progress=False, _counts=(2, 1))
    again = generate(out, "tiny", seed=0, workers=1, progress=False, _counts=(2, 1))
    assert again["skipped"] is True
    os.remove(os.path.join(out, "train", "000001.jpg"))  # incomplete -> regenerated
    redone = generate(out, "tiny", seed=0, workers=1, progress=False, _counts=(2, 1))
    assert redone["skipped"] is False
    assert os.path.exists(os.path.join(out, "train", "000001.jpg"))
    other = generate(out, "tiny", seed=1, workers=1, progress=False, _counts=(3, 1))
    assert other["skipped"] is False and len(os.listdir(os.path.join(out, "train"))) == 3
    assert [p for p in os.listdir(tmp_path) if p != "d"] == []  # no temporary dirs left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match="refusing to overwrite"):
        generate(str(foreign), "tiny", progress=False, _counts=(1, 1))
    assert (foreign / "notes.txt").read_text() == "precious"
    assert main(["--size", "tiny", "--out", str(foreign), "--quiet"]) == 2
    assert "refusing" in capsys.readouterr().err
