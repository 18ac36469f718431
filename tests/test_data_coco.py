"""COCO JSON reader: layouts, the bad-input policy, warnings and the to_coco_gt round trip."""
import json
import logging
import os
from unittest import mock

import cv2
import numpy as np
import pytest

from train.data import DataError, DetectionDataset, load_dataset, summarize_warnings
from train.data.coco import CLIPPED, CROWD, EMPTY, MISSING_FILE, OUTSIDE, UNKNOWN_CATEGORY

from tests.helpers import write_small_coco as _write


def test_reads_boxes_labels_and_applies_the_bad_input_policy(tmp_path, caplog):
    _write(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(str(tmp_path), "train")
    assert ds.category_ids == [3, 7] and ds.category_names == ["cat", "dog"]
    assert ds.num_classes == 2
    assert [e.image_id for e in ds.examples] == [10, 11]  # 12's file is missing
    a, b = ds.examples
    assert a.file_name == str(tmp_path / "train" / "a.jpg") and (a.height, a.width) == (50, 100)
    np.testing.assert_allclose(a.boxes, [[0.1, 0.1, 0.3, 0.3],       # dog: [10, 5, 20, 10]
                                         [0.8, 0.9, 1.0, 1.0]], atol=1e-6)  # cat, clipped
    assert a.classes.tolist() == [2, 1] and a.classes.dtype == np.int32
    assert a.boxes.dtype == np.float32 and a.areas.tolist() == [150, 100]
    np.testing.assert_allclose(a.crowd_boxes, [[0, 0, 1, 0.5]])
    assert a.crowd_classes.tolist() == [1]
    assert b.boxes.shape == (0, 4) and b.classes.shape == (0,)  # a valid negative image
    assert ds.warnings == {CLIPPED: 1, EMPTY: 1, UNKNOWN_CATEGORY: 1, OUTSIDE: 1, CROWD: 1,
                           MISSING_FILE: 1}
    text = summarize_warnings(ds)
    assert "1 x image file missing" in text and "1 x box partly outside" in text
    records = [r for r in caplog.records if r.name.startswith("train.data")]
    assert len(records) == 1 and "instances_train.json" in records[0].getMessage()


def test_warnings_are_counted_not_listed(tmp_path, caplog):
    anns = [{"id": i, "image_id": 10, "category_id": 3, "bbox": [90, 40, 20, 20]}
            for i in range(1, 501)]
    _write(str(tmp_path), anns=anns)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(str(tmp_path))
    assert ds.warnings[CLIPPED] == 500
    assert len([r for r in caplog.records if r.name.startswith("train.data")]) == 1
    assert summarize_warnings(DetectionDataset([], [1], ["x"], "s")) == "no problems found"


@pytest.mark.parametrize("sub", ["images/train", "train2017", "images"])
def test_finds_images_in_the_usual_layouts(tmp_path, sub):
    _write(str(tmp_path), image_sub=sub)
    ds = load_dataset(str(tmp_path), "train")
    assert ds.examples[0].file_name == str(tmp_path / sub / "a.jpg")


def test_json_path_images_dir_and_split_placeholder(tmp_path):
    path = _write(str(tmp_path), split="val", image_sub="somewhere")
    with pytest.raises(DataError, match=r"cannot find the images \(e.g. 'a.jpg'\); tried .*val"):
        load_dataset(path)
    ds = load_dataset(path, images_dir=str(tmp_path / "somewhere"))
    assert len(ds) == 2
    os.rename(tmp_path / "somewhere", tmp_path / "val")
    assert len(load_dataset(str(tmp_path / "annotations" / "instances_{split}.json"), "val")) == 2
    with pytest.raises(DataError, match="instances_train.json nor"):
        load_dataset(str(tmp_path), "train")
    with pytest.raises(DataError, match="no file matches"):
        load_dataset(str(tmp_path / "nothing_here.record"))


def test_malformed_files_raise_data_error_naming_file_and_entry(tmp_path):
    path = _write(str(tmp_path))
    with open(path, "w") as f:
        f.write('{"images": [], "annotations": [')
    with pytest.raises(DataError, match=r"instances_train\.json: malformed JSON at line 1"):
        load_dataset(str(tmp_path))

    anns = [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [1, 1, 2, 2]},
            {"id": 2, "image_id": 10, "category_id": 3}]
    _write(str(tmp_path), anns=anns)
    with pytest.raises(DataError, match=r"instances_train\.json: annotations\[1\] has no 'bbox'"):
        load_dataset(str(tmp_path))
    anns[1]["bbox"] = [1, 2, 3]
    _write(str(tmp_path), anns=anns)
    with pytest.raises(DataError, match=r"annotations\[1\] 'bbox' is \[1, 2, 3\]"):
        load_dataset(str(tmp_path))

    images = [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
              {"id": 11, "file_name": "b.png", "height": 40}]
    _write(str(tmp_path), images=images, anns=[])
    with pytest.raises(DataError, match=r"images\[1\] has no 'width'"):
        load_dataset(str(tmp_path))

    with open(path, "w") as f:
        json.dump({"images": [], "annotations": []}, f)
    with pytest.raises(DataError, match="no 'categories' list"):
        load_dataset(str(tmp_path))
    with open(path, "w") as f:
        json.dump({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"},
                                                                   {"id": 1, "name": "b"}]}, f)
    with pytest.raises(DataError, match="category id 1 is used more than once"):
        load_dataset(str(tmp_path))


def test_to_coco_gt_round_trip_and_scores_perfectly(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = [{"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 5, 20, 10], "area": 150},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [50.5, 20.25, 40, 25]},
            {"id": 3, "image_id": 11, "category_id": 3, "bbox": [0, 0, 40, 40], "iscrowd": 1},
            {"id": 4, "image_id": 11, "category_id": 7, "bbox": [2, 3, 4, 5]}]
    _write(str(tmp_path), anns=anns)
    ds = load_dataset(str(tmp_path))
    gt = ds.to_coco_gt()
    by_id = {a["id"]: a for a in gt["annotations"]}
    assert [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in by_id.values()] == [
        (10, 7, [10, 5, 20, 10], 0), (10, 3, [50.5, 20.25, 40, 25], 0),
        (11, 7, [2, 3, 4, 5], 0), (11, 3, [0, 0, 40, 40], 1)]
    assert by_id[1]["area"] == 150 and by_id[2]["area"] == 1000
    assert {c["id"]: c["name"] for c in gt["categories"]} == {3: "cat", 7: "dog"}

    out = tmp_path / "gt" / "annotations" / "instances_train.json"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(gt))
    again = load_dataset(str(out), images_dir=str(tmp_path / "train"))
    for e1, e2 in zip(ds.examples, again.examples):
        np.testing.assert_allclose(e1.boxes, e2.boxes, atol=1e-6)
        assert e1.classes.tolist() == e2.classes.tolist()
        np.testing.assert_allclose(e1.crowd_boxes, e2.crowd_boxes, atol=1e-6)

    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0} for a in gt["annotations"] if not a["iscrowd"]]
    ev = COCOeval(coco, coco.loadRes(dets), "bbox")
    ev.evaluate(), ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_generated_tiny_dataset_loads_with_all_eight_classes(tmp_path):
    from train.data.generate import generate

    generate(str(tmp_path / "g"), "tiny", workers=1, progress=False, _counts=(6, 2))
    ds = load_dataset(str(tmp_path / "g"), "val")
    assert ds.num_classes == 8 and ds.category_ids == list(range(1, 9))
    assert len(ds) == 2 and not ds.warnings
    for e in ds.examples:
        assert ((e.boxes >= 0) & (e.boxes <= 1)).all()
        assert (e.boxes[:, 2] > e.boxes[:, 0]).all() and (e.boxes[:, 3] > e.boxes[:, 1]).all()


# found by tests/test_fuzz_coco.py: numpy's int64 arrays raised OverflowError (a traceback) for
# ids past 64 bits and silently took 1.5, "3" or True for an id and nested lists for a box
@pytest.mark.parametrize("ann, match", [
    ({"image_id": 2**63}, "integer 9223372036854775808 does not fit in 64 bits"),
    ({"image_id": 1e19}, r"annotations\[0\] 'image_id' is 1e\+19, expected an? integer"),
    ({"category_id": 1.5}, r"annotations\[0\] 'category_id' is 1.5"),
    ({"category_id": "3"}, r"annotations\[0\] 'category_id' is '3'"),
    ({"category_id": True}, r"annotations\[0\] 'category_id' is True"),
    ({"bbox": [[1], [2], [3], [4]]}, r"annotations\[0\] 'bbox' is \[\[1\], \[2\]"),
    ({"bbox": ["1", "2", "3", "4"]}, r"annotations\[0\] 'bbox' is \['1'"),
    ({"area": "12"}, r"annotations\[0\] 'area' is '12', expected a number"),
    ({"iscrowd": 2}, r"annotations\[0\] 'iscrowd' is 2, expected 0 or 1"),
])
def test_numbers_numpy_would_bend_are_errors(tmp_path, ann, match):
    from edge_runtime.coco import read_ground_truth
    _write(str(tmp_path), anns=[{"id": 1, "image_id": 10, "category_id": 3, "bbox": [1, 1, 2, 2],
                                 **ann}])
    for read in (load_dataset, read_ground_truth):  # the edge reader agrees
        with pytest.raises(DataError, match=match):
            read(str(tmp_path), "train")


def test_file_names_outside_the_image_folder_are_skipped_unless_allowed(tmp_path):
    from edge_runtime.coco import OUTSIDE_ROOT, read_ground_truth
    secret = tmp_path / "secret.jpg"
    cv2.imwrite(str(secret), np.zeros((8, 8, 3), np.uint8))
    root = tmp_path / "data"
    images = [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
              {"id": 11, "file_name": "b.png", "width": 40, "height": 40},
              {"id": 12, "file_name": "../../secret.jpg", "width": 8, "height": 8},
              {"id": 13, "file_name": str(secret), "width": 8, "height": 8},
              {"id": 14, "file_name": "../../../../../../etc/passwd", "width": 8, "height": 8}]
    _write(str(root), images=images, anns=[])
    seen = []
    real_stat = os.stat
    with mock.patch.object(os, "stat", lambda p, *a, **k: seen.append(str(p)) or real_stat(
            p, *a, **k)):
        ds = load_dataset(str(root), "train")
        truth = read_ground_truth(str(root), "train")
    assert [e.image_id for e in ds.examples] == list(truth.files) == [10, 11]
    assert ds.warnings[OUTSIDE_ROOT] == truth.warnings[OUTSIDE_ROOT] == 3
    assert not [p for p in seen if "secret" in p or "passwd" in p]  # not even looked at
    ds = load_dataset(str(root), "train", allow_outside_root=True)
    truth = read_ground_truth(str(root), "train", allow_outside_root=True)
    assert [e.image_id for e in ds.examples] == list(truth.files)  # 14 where /etc/passwd is
    assert list(truth.files)[:4] == [10, 11, 12, 13]
    assert os.path.samefile(ds.examples[2].file_name, secret)
    with mock.patch.dict(os.environ, {"FRONTIER_ALLOW_OUTSIDE_ROOT": "1"}):  # how CLIs ask
        assert len(load_dataset(str(root), "train").examples) == len(ds.examples)
        assert list(read_ground_truth(str(root), "train").files) == list(truth.files)
    assert "FRONTIER_ALLOW_OUTSIDE_ROOT=1" in OUTSIDE_ROOT  # the warning says how
