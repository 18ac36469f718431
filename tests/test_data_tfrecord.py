"""TF OD API TFRecords: COCO -> TFRecord -> DetectionDataset round trip, label maps, bad records."""
import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from train.data import DataError, load_dataset, load_image, write_tfrecord
from train.data.tfrecord import CLIPPED, EMPTY, read_label_map


def _coco(root, split="train", with_cat_5=True):
    """2 images, categories {2: 'b', 5: 'e'} (5 absent from the boxes when not with_cat_5)."""
    os.makedirs(root / split, exist_ok=True)
    os.makedirs(root / "annotations", exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in (("x.jpg", (30, 40)), ("y.png", (20, 20))):
        cv2.imwrite(str(root / split / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    anns = [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [4, 3, 10, 12], "area": 99},
            {"id": 2, "image_id": 1, "category_id": 5 if with_cat_5 else 2,
             "bbox": [20.5, 0, 19.5, 30]},
            {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20], "iscrowd": 1}]
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 40, "height": 30},
                      {"id": 2, "file_name": "y.png", "width": 20, "height": 20}],
           "annotations": anns,
           "categories": [{"id": 5, "name": "e"}, {"id": 2, "name": "b"}]}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def test_coco_to_tfrecord_round_trip(tmp_path):
    _coco(tmp_path)
    coco = load_dataset(str(tmp_path), "train")
    path = str(tmp_path / "records" / "train.record")
    write_tfrecord(coco, path)
    assert sorted(os.listdir(tmp_path / "records")) == ["label_map.pbtxt", "train.record"]
    rec = load_dataset(path)
    assert rec.category_ids == coco.category_ids == [2, 5]
    assert rec.category_names == ["b", "e"] and rec.warnings == coco.warnings  # 1 crowd region
    for a, b in zip(coco.examples, rec.examples, strict=True):
        assert (a.image_id, a.height, a.width) == (b.image_id, b.height, b.width)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-7)
        assert a.classes.tolist() == b.classes.tolist()
        np.testing.assert_allclose(a.areas, b.areas)
        np.testing.assert_allclose(a.crowd_boxes, b.crowd_boxes, atol=1e-7)
        assert a.crowd_classes.tolist() == b.crowd_classes.tolist()
        assert b.file_name == "" and b.encoded == open(a.file_name, "rb").read()
        assert (load_image(data=b.encoded) == load_image(a.file_name)).all()
    assert rec.to_coco_gt()["annotations"] == coco.to_coco_gt()["annotations"]


def test_label_map_keeps_ids_consistent_when_a_class_is_absent(tmp_path):
    _coco(tmp_path, "val", with_cat_5=False)
    val = load_dataset(str(tmp_path), "val")
    write_tfrecord(val, str(tmp_path / "val.record"))
    assert read_label_map(str(tmp_path / "label_map.pbtxt")) == {2: "b", 5: "e"}
    assert load_dataset(str(tmp_path / "val.record")).category_ids == [2, 5]
    os.remove(tmp_path / "label_map.pbtxt")  # without it, only the labels seen are known
    assert load_dataset(str(tmp_path / "val.record")).category_ids == [2]
    assert load_dataset(str(tmp_path / "{split}.record"), "val",
                        label_map={2: "b", 5: "e", 9: "i"}).num_classes == 3


def test_read_label_map_tf_od_api_style(tmp_path):
    (tmp_path / "m.pbtxt").write_text(
        'item {\n  name: "/m/01g317"\n  id: 1\n  display_name: "person"\n}\n'
        "item { name: 'bicycle' id: 2 }\n")
    assert read_label_map(str(tmp_path / "m.pbtxt")) == {1: "person", 2: "bicycle"}
    (tmp_path / "bad.pbtxt").write_text("item { name: 'x' }")
    with pytest.raises(DataError, match="bad.pbtxt: item 0 has no integer 'id'"):
        read_label_map(str(tmp_path / "bad.pbtxt"))


def _record(path, xmin, ymin, xmax, ymax, labels, text=()):
    ok, buf = cv2.imencode(".png", np.zeros((10, 20, 3), np.uint8))
    f = tf.train.Feature
    feature = {
        "image/encoded": f(bytes_list=tf.train.BytesList(value=[buf.tobytes()])),
        "image/source_id": f(bytes_list=tf.train.BytesList(value=[b"42"])),
        "image/object/bbox/xmin": f(float_list=tf.train.FloatList(value=xmin)),
        "image/object/bbox/ymin": f(float_list=tf.train.FloatList(value=ymin)),
        "image/object/bbox/xmax": f(float_list=tf.train.FloatList(value=xmax)),
        "image/object/bbox/ymax": f(float_list=tf.train.FloatList(value=ymax)),
        "image/object/class/label": f(int64_list=tf.train.Int64List(value=labels)),
        "image/object/class/text": f(bytes_list=tf.train.BytesList(value=list(text))),
    }
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_foreign_records_clip_drop_and_take_names_from_text(tmp_path):
    # height/width absent: taken from the decoded image (10 x 20)
    _record(tmp_path / "r.tfrecord", xmin=[0.1, 0.5, 0.3], ymin=[0.2, -0.1, 0.5],
            xmax=[0.4, 1.2, 0.3], ymax=[0.6, 0.9, 0.9], labels=[3, 1, 3],
            text=[b"three", b"one", b"three"])
    ds = load_dataset(str(tmp_path / "*.tfrecord"))
    (e,) = ds.examples
    assert (e.image_id, e.height, e.width) == (42, 10, 20)
    np.testing.assert_allclose(e.boxes, [[0.2, 0.1, 0.6, 0.4], [0.0, 0.5, 0.9, 1.0]], atol=1e-6)
    assert ds.category_ids == [1, 3] and ds.category_names == ["one", "three"]
    assert e.classes.tolist() == [2, 1]
    assert ds.warnings == {CLIPPED: 1, EMPTY: 1}

    _record(tmp_path / "bad.tfrecord", xmin=[0.1], ymin=[0.1], xmax=[0.2], ymax=[0.2],
            labels=[1, 2])
    with pytest.raises(DataError, match="bad.tfrecord: record 0: 1 boxes but 2 class/label"):
        load_dataset(str(tmp_path / "bad.tfrecord"))


def test_corrupt_record_file(tmp_path):
    _record(tmp_path / "r.tfrecord", [0.1], [0.1], [0.2], [0.2], [1])
    data = (tmp_path / "r.tfrecord").read_bytes()
    (tmp_path / "cut.tfrecord").write_bytes(data[: len(data) - 7])
    with pytest.raises(DataError, match="cut.tfrecord: corrupt"):
        load_dataset(str(tmp_path / "cut.tfrecord"))
    (tmp_path / "junk.tfrecord").write_bytes(b"\x00" * 40)
    with pytest.raises(DataError, match="junk.tfrecord: corrupt"):
        load_dataset(str(tmp_path / "junk.tfrecord"))
