"""edge_runtime's own COCO reader and the image decoding and COCOeval wrapper that train shares:
the same ground truth and pixels as train's (so TFLite and TensorFlow scores compare), clear
errors, no train import."""
import json
import os

import cv2
import numpy as np
import pytest

from edge_runtime.coco import STAT_NAMES, coco_metrics, read_ground_truth
from edge_runtime.images import DataError, read_image
from tests.helpers import make_dataset, write_small_coco


def _annotation_rows(coco):
    return sorted((a["image_id"], a["category_id"], a["iscrowd"], *a["bbox"], a["area"])
                  for a in coco["annotations"])


def test_ground_truth_matches_train_on_a_dataset_with_every_bad_annotation(tmp_path):
    from train.data import load_dataset
    write_small_coco(str(tmp_path))
    train_ds = load_dataset(str(tmp_path), "train")
    truth = read_ground_truth(str(tmp_path), "train")
    expected = train_ds.to_coco_gt()
    assert [im["id"] for im in truth.coco["images"]] == [10, 11]  # 12's file is missing
    assert truth.files == {e.image_id: e.file_name for e in train_ds.examples}
    assert truth.category_ids == train_ds.category_ids == [3, 7]
    np.testing.assert_allclose(np.array(_annotation_rows(truth.coco)),
                               np.array(_annotation_rows(expected)), atol=2e-3)
    # the clipped box [90, 40, 20, 20] in a 100x50 image, and the crowd region
    assert [90.0, 40.0, 10.0, 10.0] in [a["bbox"] for a in truth.coco["annotations"]]
    assert sum(a["iscrowd"] for a in truth.coco["annotations"]) == 1
    # same problems counted (the partly-outside and crowd notes are train's alone)
    train_counts = {k: v for k, v in train_ds.warnings.items()
                    if "clipped" not in k and "crowd" not in k}
    assert dict(truth.warnings) == train_counts


def test_generated_dataset_scores_identically_to_train(tmp_path):
    from train.data import load_dataset
    root = make_dataset(str(tmp_path / "d"), train=1, val=6)
    truth = read_ground_truth(root, "val")
    expected = load_dataset(root, "val").to_coco_gt()
    assert len(truth.coco["annotations"]) == len(expected["annotations"]) > 0
    # jittered ground truth as detections: the two ground truths must give the same scores
    rng = np.random.default_rng(0)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": float(s),
             "bbox": [v + float(rng.normal(0, 2)) for v in a["bbox"]]}
            for a, s in zip(expected["annotations"], rng.uniform(0.1, 1, 10_000))]
    ours, _ = coco_metrics(truth.coco, dets)
    theirs, _ = coco_metrics(expected, dets)
    assert set(ours) == set(STAT_NAMES)
    assert ours == pytest.approx(theirs, abs=1e-6) and 0.2 < ours["AP"] < 1.0


def test_perfect_detections_score_one_and_none_score_zero(tmp_path):
    root = make_dataset(str(tmp_path / "d"), train=1, val=3)
    truth = read_ground_truth(root, "val")
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                "score": 1.0} for a in truth.coco["annotations"] if not a["iscrowd"]]
    metrics, summary = coco_metrics(truth.coco, perfect)
    assert metrics["AP"] == pytest.approx(1.0) and "Average Precision" in summary
    assert coco_metrics(truth.coco, [])[0]["AP"] == 0.0


def test_bad_annotation_files_name_the_file_and_the_problem(tmp_path):
    path = write_small_coco(str(tmp_path))
    with open(path, "w") as f:
        f.write('{"images": [], "annotations": [')
    with pytest.raises(DataError, match=r"instances_train\.json: malformed JSON at line 1"):
        read_ground_truth(str(tmp_path), "train")
    write_small_coco(str(tmp_path), anns=[{"id": 1, "image_id": 10, "category_id": 3,
                                           "bbox": [1, 2, 3]}])
    with pytest.raises(DataError, match=r"annotations\[0\] 'bbox' is \[1, 2, 3\], expected"):
        read_ground_truth(str(tmp_path), "train")
    write_small_coco(str(tmp_path), anns=[{"id": 1, "image_id": 10, "category_id": 3,
                                           "bbox": [1, 2, 3, 4], "iscrowd": "yes"}])
    with pytest.raises(DataError, match=r"annotations\[0\] 'iscrowd' is 'yes'"):
        read_ground_truth(str(tmp_path), "train")
    write_small_coco(str(tmp_path), images=[{"id": 10, "file_name": "a.jpg", "height": 5}])
    with pytest.raises(DataError, match=r"images\[0\] 'width' is None, expected an integer"):
        read_ground_truth(str(tmp_path), "train")
    with open(path, "w") as f:
        json.dump({"images": []}, f)
    with pytest.raises(DataError, match="not a COCO instances file"):
        read_ground_truth(path)
    with pytest.raises(DataError, match="neither annotations/instances_val.json"):
        read_ground_truth(str(tmp_path), "val")
    with pytest.raises(DataError, match="TFRecords need TensorFlow"):
        read_ground_truth(str(tmp_path / "train.record"))
    with pytest.raises(DataError, match="annotation file not found"):
        read_ground_truth(str(tmp_path / "nope.json"))


def test_images_decode_to_the_same_pixels_as_train(tmp_path):
    from train.data import load_image
    assert load_image is read_image  # one decoder: the same pixels by construction
    rng = np.random.default_rng(0)
    files = {"c.jpg": rng.integers(0, 256, (9, 7, 3), np.uint8),
             "g.png": rng.integers(0, 256, (9, 7), np.uint8),
             "a.png": rng.integers(0, 256, (9, 7, 4), np.uint8),
             "d.png": rng.integers(0, 65536, (9, 7, 3), np.uint16)}
    for name, pixels in files.items():
        path = str(tmp_path / name)
        cv2.imwrite(path, pixels)
        ours = read_image(path)
        assert ours.dtype == np.uint8 and ours.shape == (9, 7, 3), name
        if name == "c.jpg":
            continue  # lossy; its bytes and path decodings are compared below
        # the lossless files give exactly the stored pixels: grey repeated, alpha dropped,
        # 16-bit v/257 rounded (65535 -> 255; OpenCV's IMREAD_COLOR would give v >> 8)
        bgr = np.dstack([pixels] * 3) if pixels.ndim == 2 else pixels[..., :3]
        if pixels.dtype == np.uint16:
            bgr = (bgr.astype(np.uint32) + 128) // 257
        assert (ours == bgr[..., ::-1]).all(), name
    assert (read_image(data=open(tmp_path / "c.jpg", "rb").read()) == read_image(
        str(tmp_path / "c.jpg"))).all()
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name, problem in (("bad.jpg", "cannot decode image"), ("empty.jpg", "is empty"),
                          ("missing.jpg", "not found")):
        with pytest.raises(DataError, match=f"{name}: .*{problem}|{name}: image file {problem}"):
            read_image(str(tmp_path / name))


# found by tests/test_fuzz_coco.py: where the edge reader took what train's refuses, and
# evaluate's IndexError for a model with more classes than the data (no sidecar to compare)
@pytest.mark.parametrize("categories, match", [
    ([{"id": 3, "name": ""}], r"categories\[0\] 'name' is '', expected a non-empty string"),
    ([{"id": 3}], r"categories\[0\] (has no|'name' is None)"),
    ([{"id": 3, "name": "a"}, {"id": 3, "name": "b"}], "category id 3 is used more than once"),
    ([{"id": 10**30, "name": "a"}], r"integer 1000+\.\.\. does not fit in 64 bits"),
])
def test_categories_are_checked_as_train_checks_them(tmp_path, categories, match):
    from train.data import load_dataset
    write_small_coco(str(tmp_path), categories=categories, anns=[])
    for read in (load_dataset, read_ground_truth):
        with pytest.raises(DataError, match=match):
            read(str(tmp_path), "train")


def test_a_model_with_more_classes_than_the_data_is_an_error(tmp_path):
    from edge_runtime.detector import Detector
    from edge_runtime.evaluate import evaluate
    model = os.path.join(os.path.dirname(__file__), "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
    det = Detector(model, num_threads=1)
    det.metadata = {}  # as a .tflite without its sidecar
    write_small_coco(str(tmp_path), categories=[{"id": 1, "name": "circle"}], anns=[])
    rng = np.random.default_rng(0)  # noise: some detection of a class index above 0
    cv2.imwrite(str(tmp_path / "train" / "a.jpg"), rng.integers(0, 256, (50, 100, 3), np.uint8))
    with pytest.raises(ValueError, match=r"detects class index \d+, but .* has 1 categories"):
        evaluate(model, str(tmp_path), "train", detector=det, progress=False)
