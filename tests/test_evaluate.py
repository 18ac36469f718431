import pytest

from tests.helpers import make_dataset
from train.data import load_dataset
from train.evaluate import coco_metrics


@pytest.fixture(scope="module")
def val_gt(tmp_path_factory):
    root = make_dataset(str(tmp_path_factory.mktemp("data") / "shapes"))
    return load_dataset(root, "val").to_coco_gt()


def test_perfect_detections_score_one(val_gt):
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0} for a in val_gt["annotations"]]
    metrics, summary = coco_metrics(val_gt, dets)
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AR100"] == pytest.approx(1.0)
    assert "Average Precision" in summary


def test_shifted_and_missing_detections_score_lower(val_gt):
    anns = val_gt["annotations"]
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"],
             "bbox": [a["bbox"][0] + a["bbox"][2] * 0.3, a["bbox"][1], a["bbox"][2], a["bbox"][3]],
             "score": 1.0} for a in anns[::2]]
    metrics, _ = coco_metrics(val_gt, dets)
    assert 0.0 < metrics["AP"] < 0.6
    assert metrics["AR100"] < 0.6


def test_no_detections_is_zero(val_gt):
    metrics, _ = coco_metrics(val_gt, [])
    assert metrics["AP"] == 0.0 and metrics["AR100"] == 0.0
