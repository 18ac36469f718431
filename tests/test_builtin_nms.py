"""convert/builtin_nms.py: one NMS over all classes (boxes offset per class) keeps what one NMS
per class keeps, in TensorFlow and in LiteRT at any thread count (unlike the fused op); the
choice of graph by the NMS settings."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from convert.builtin_nms import batched_nms, per_class_nms
from convert.graph import DETECTION_OUTPUTS, postprocess_function
from convert.postprocess_op import NmsSettings
from convert.sources import ExportError, nms_graph


def _boxes(rng, n):
    """Crowded boxes, some beyond the image (decoded boxes are not clipped)."""
    corner = rng.uniform(-0.2, 0.8, (n, 2))
    return np.concatenate([corner, corner + rng.uniform(0.05, 0.5, (n, 2))], 1).astype(
        np.float32)


@pytest.mark.parametrize("v5", [False, True])
def test_batched_equals_per_class(v5):
    rng = np.random.default_rng(0)
    boxes = tf.constant(_boxes(rng, 300))
    scores = rng.uniform(0, 1, (300, 6)).astype(np.float32) ** 4  # column 0: background
    scores[:20] = scores[20:40]  # ties across anchors and classes
    scores = tf.constant(scores)
    for per_class, total, threshold in ((100, 100, 0.01), (40, 30, 0.3), (100, 20, 1e-8)):
        nms = NmsSettings(num_classes=5, max_detections=total, detections_per_class=per_class,
                          score_threshold=threshold, iou_threshold=0.5)
        want, got = per_class_nms(boxes, scores, nms), batched_nms(boxes, scores, nms, v5=v5)
        assert int(want[3][0]) == int(got[3][0]) > 10
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def _nms_only_model(path, graph, anchors, k):
    """A .tflite of the post-processing alone: box_encodings [1, A, 4], class_predictions
    [1, A, K+1] -> the four outputs."""
    nms = NmsSettings(num_classes=k, max_detections=50, detections_per_class=50, graph=graph)
    post = postprocess_function(nms, anchors)
    a = len(anchors)

    @tf.function(input_signature=[tf.TensorSpec([1, a, 4]), tf.TensorSpec([1, a, k + 1])])
    def serve(box_encodings, class_predictions):
        return dict(zip(DETECTION_OUTPUTS, post(box_encodings, class_predictions)))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()],
                                                                tf.Module())
    with open(path, "wb") as f:
        f.write(converter.convert())


def test_litert_detects_the_same_at_any_thread_count(tmp_path):
    """Every class detected; the built-in graphs give identical outputs at 1, 2 and 4
    threads and equal the fused op at 1 thread, which loses class index T at T threads."""
    from edge_runtime.interpreter import make_interpreter

    rng = np.random.default_rng(1)
    k, a = 8, 96
    yx = rng.uniform(0.1, 0.9, (a, 2))
    anchors = np.concatenate([yx, rng.uniform(0.1, 0.4, (a, 2))], 1).astype(np.float32)
    inputs = [rng.normal(0, 0.5, (1, a, 4)).astype(np.float32),
              tf.nn.softmax(rng.normal(0, 3, (1, a, k + 1))).numpy().astype(np.float32)]
    found = {}
    for graph in ("fused", "per_class", "batched", "batched_v5"):
        path = str(tmp_path / f"{graph}.tflite")
        _nms_only_model(path, graph, anchors, k)
        for threads in (1, 2, 4):
            runner = make_interpreter(path, threads)[0].get_signature_runner()
            out = runner(box_encodings=inputs[0], class_predictions=inputs[1])
            n = int(out["num_detections"][0])
            found[graph, threads] = {key: v[0, :n] if v.ndim > 1 else v for key, v in out.items()}
    assert set(found["fused", 1]["detection_classes"].astype(int)) == set(range(k))
    for graph in ("per_class", "batched", "batched_v5"):
        for threads in (1, 2, 4):
            got, want = found[graph, threads], found["fused", 1]
            np.testing.assert_array_equal(got["detection_classes"], want["detection_classes"])
            np.testing.assert_allclose(got["detection_scores"], want["detection_scores"])
            np.testing.assert_allclose(got["detection_boxes"], want["detection_boxes"], atol=1e-6)
            assert all(np.array_equal(v, found[graph, 1][key]) for key, v in got.items())
    # tensorflow/tensorflow#56058 (ai-edge-litert 2.3.0): if this fails, LiteRT fixed it and the
    # warnings of convert/export_tflite.py and edge_runtime/detector.py can go
    for threads in (2, 4):
        assert threads not in set(found["fused", threads]["detection_classes"].astype(int))


def test_batched_refuses_a_class_cap_below_the_total():
    nms = NmsSettings(num_classes=2, max_detections=100, detections_per_class=10)
    with pytest.raises(ValueError, match="per-class"):
        batched_nms(tf.zeros([4, 4]), tf.zeros([4, 3]), nms)


def test_graph_choice():
    assert nms_graph(None, True, 100, 100) == "batched"
    assert nms_graph(None, True, 10, 100) == "per_class"  # one call cannot cap a class
    assert nms_graph(None, False, 100, 100) == "fused"  # fast NMS is the op's
    assert nms_graph("fused", True, 100, 100) == "fused"
    for graph, regular, message in (("batched", False, "does not go with"),
                                    ("batched_v5", True, "cannot cap"),
                                    ("soft", True, "unknown --nms")):
        with pytest.raises(ExportError, match=message):
            nms_graph(graph, regular, 10 if graph == "batched_v5" else 100, 100)
    with pytest.raises(ValueError, match="fused op"):
        NmsSettings(num_classes=2, use_regular_nms=False, graph="batched")
