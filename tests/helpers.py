"""Shared test fixtures' building blocks: a tiny generated dataset, a small hand-written COCO
dataset with every kind of bad annotation, and a tiny SSD config."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np

from train.config import config_from_dict


def tiny_config(**train_overrides) -> "train.config.Config":
    """A small, fast SSD (MobileNet v1 x0.25, 128 px) that can overfit a few images in seconds."""
    train = {"batch_size": 8, "steps": 200, "checkpoint_every": 50, "log_every": 10,
             "optimizer": {"name": "adam", "learning_rate": 0.003, "warmup_steps": 10},
             "augment": {"horizontal_flip": False, "random_crop": False, "color": False}}
    train.update(train_overrides)
    return config_from_dict({
        "model": {"image_size": 128, "extra_depths": [64, 64],
                  "feature_extractor": {"name": "mobilenet_v1", "depth_multiplier": 0.25,
                                        "batchnorm_momentum": 0.9},
                  "use_depthwise": True,
                  "anchors": {"min_scale": 0.15, "max_scale": 0.9},
                  "matcher": {"matched_threshold": 0.5, "unmatched_threshold": 0.4},
                  "loss": {"classification": "focal"}},
        "train": train})


def make_dataset(root: str, train: int = 8, val: int = 4, seed: int = 0) -> str:
    from train.data.generate import generate

    if not os.path.exists(os.path.join(root, "annotations", "instances_train.json")):
        generate(root, "tiny", seed=seed, workers=1, progress=False, _counts=(train, val))
    return root


def write_small_coco(root, split="train", image_sub=None, anns=None, images=None,
                     categories=None):
    """Writes a 2-category, 3-image COCO dataset (image 3's file is missing) into ``root``."""
    image_sub = image_sub or split
    os.makedirs(os.path.join(root, image_sub), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images = images or [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
                        {"id": 11, "file_name": "b.png", "width": 40, "height": 40},
                        {"id": 12, "file_name": "gone.jpg", "width": 40, "height": 40}]
    for im in images[:2]:
        cv2.imwrite(os.path.join(root, image_sub, im["file_name"]),
                    np.zeros((im.get("height", 8), im.get("width", 8), 3), np.uint8))
    doc = {"images": images,
           "annotations": anns if anns is not None else [
               {"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 5, 20, 10], "area": 150,
                "iscrowd": 0},
               {"id": 2, "image_id": 10, "category_id": 3, "bbox": [90, 40, 20, 20]},  # clipped
               {"id": 3, "image_id": 10, "category_id": 3, "bbox": [5, 5, 0, 10]},  # zero width
               {"id": 4, "image_id": 10, "category_id": 99, "bbox": [1, 1, 5, 5]},  # unknown cat
               {"id": 5, "image_id": 10, "category_id": 3, "bbox": [200, 0, 10, 10]},  # outside
               {"id": 6, "image_id": 10, "category_id": 3, "bbox": [0, 0, 50, 50], "iscrowd": 1},
               {"id": 7, "image_id": 12, "category_id": 3, "bbox": [1, 1, 5, 5]},
           ],
           "categories": categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def write_classifier_tflite(path) -> None:
    """A valid .tflite that is not a detector: one [1, 32, 32, 3] input, one "logits" output."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="image")])
    def classify(image):
        return {"logits": tf.reduce_mean(image, axis=[1, 2])}

    with open(path, "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_concrete_functions(
            [classify.get_concrete_function()], None).convert())


def tiny_two_stage_config(meta_architecture: str = "faster_rcnn", **train_overrides):
    """A small, fast Faster R-CNN / R-FCN (MobileNet v1 x0.25, shorter edge 128, padded to 160)
    that can overfit a few images in a couple of minutes on 2 cores."""
    train = {"batch_size": 4, "steps": 200, "checkpoint_every": 50, "log_every": 10,
             "optimizer": {"name": "adam", "learning_rate": 0.002, "warmup_steps": 10},
             "augment": {"horizontal_flip": False, "random_crop": False, "color": False}}
    train.update(train_overrides)
    section = {"image_size": 128, "max_image_size": 160,
               "first_stage": {"anchors": {"base_size": 64.0, "scales": [0.25, 0.5, 1.0, 2.0]},
                               "conv_depth": 64, "pre_nms_top_k": 300, "max_proposals": 32,
                               "batch_size": 64},
               "second_stage": {"batch_size": 16}}
    if meta_architecture == "rfcn":
        section.update(depth=64, crop_size=6)
    return config_from_dict({
        "model": {"meta_architecture": meta_architecture,
                  "feature_extractor": {"name": "mobilenet_v1", "depth_multiplier": 0.25,
                                        "batchnorm_momentum": 0.9},
                  meta_architecture: section},
        "train": train})


def mediapipe_agrees(model_path: str, images) -> int:
    """Runs an export, as written, in MediaPipe Tasks' ObjectDetector and asserts that on each
    image (resized here to the model's input, so neither side resizes) it reports exactly the
    model's own detections (edge_runtime.mediapipe_peer.as_mediapipe_reports); returns how many
    it compared. The labels must come from the model: MediaPipe names every class."""
    import cv2

    from edge_runtime.detector import Detector
    from edge_runtime.mediapipe_peer import MediaPipeDetector, as_mediapipe_reports, reports

    det = Detector(model_path, num_threads=1)
    compared = 0
    with MediaPipeDetector(model_path, det.labels, score_threshold=0.0) as peer:
        for rgb in images:
            rgb = cv2.resize(rgb, (det.width, det.height), interpolation=cv2.INTER_AREA)
            det.invoke(det.to_input(rgb))
            mine = as_mediapipe_reports(det.raw_outputs(), det.height, det.width)
            theirs = reports(peer, rgb)
            # float32: the same rows, but equal scores may be kept in another order by NMS
            # (a tie broken otherwise); integer: LiteRT's int8 kernels may round a score a
            # 1/256 step apart, so a row at the lowest steps may be on one side only
            tol = 1e-4 if det.input_dtype == np.float32 else 2 / 256 + 1e-5
            left, alone = sorted(theirs), []
            for m in sorted(mine):
                near = [t for t in left if max(abs(a - b) for a, b in zip(t[:4], m[:4])) <= 1
                        and abs(t[4] - m[4]) <= tol]
                if near:
                    left.remove(near[0])
                else:
                    alone.append(m)
            for rows, others in ((alone, left), (left, alone)):
                for r in rows:
                    tie = any(abs(o[4] - r[4]) <= tol for o in others)
                    assert tie or (det.input_dtype != np.float32 and r[4] <= tol), (r, others[:3])
            named = {c.category_name for d in peer.raw(rgb).detections for c in d.categories}
            assert named <= set(det.labels), named
            compared += len(mine)
    return compared


def assert_load_writes_preprocess(det, shapes=((323, 370), (480, 640), (90, 60))) -> None:
    """``det.load(image)`` puts in the interpreter's input tensor exactly what
    ``det.preprocess(image)`` returns (resized, padded, normalised), for images larger,
    smaller and of another aspect than the input, and of exactly its size; and the detections
    of ``detect`` (which loads) equal those of invoking the preprocessed array."""
    rng = np.random.default_rng(0)
    for shape in tuple(shapes) + (det.input_size,):
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        det.interpreter.tensor(det._input["index"])().fill(7)  # stale bytes must not survive
        det.load(image)
        loaded, window = det.interpreter.get_tensor(det._input["index"]), det.window
        expected = det.preprocess(image)
        assert expected.dtype == loaded.dtype and det.window == window
        np.testing.assert_array_equal(loaded, expected, err_msg=f"image {shape}")
        got = det.detect(image)
        det.invoke(det.preprocess(image))
        ref = det.parse(det.raw_outputs())
        for a, b in ((got.boxes, ref.boxes), (got.classes, ref.classes), (got.scores, ref.scores)):
            np.testing.assert_array_equal(a, b)
