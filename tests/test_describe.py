"""``python -m train describe``: parameters, FLOPs, feature maps and anchors of a config."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.helpers import tiny_config, tiny_two_stage_config
from train.__main__ import main
from train.config import save_config
from train.describe import describe, format_table, graph_flops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_profiler_flops_of_a_known_graph():
    """A 3x3 conv (3 -> 4 channels, SAME, 8x8) + bias, and a [1,5] x [5,7] matmul, by hand."""
    kernel = tf.Variable(tf.ones([3, 3, 3, 4]))
    bias = tf.Variable(tf.zeros([4]))
    weights = tf.Variable(tf.ones([5, 7]))

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3]), tf.TensorSpec([1, 5])])
    def f(x, v):
        with tf.name_scope("conv"):
            y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias)
        with tf.name_scope("dense"):
            z = tf.matmul(v, weights)
        return y, z

    out = graph_flops(f.get_concrete_function())
    conv = 2 * (8 * 8 * 4) * (3 * 3 * 3)  # a multiply-add = 2 FLOPs per output, per tap
    assert out["by_scope"] == {"conv": conv + 8 * 8 * 4, "dense": 2 * 5 * 7}
    assert out["total"] == conv + 8 * 8 * 4 + 70
    assert out["uncounted_ops"] == []


def test_ssd_parameters_maps_anchors_and_flops_by_resolution():
    small = describe(tiny_config(), 3)
    config = tiny_config()
    config.model.ssd.image_size = 256
    large = describe(config, 3)
    p = small["parameters"]
    assert set(p["by_model"]) == {"model"}
    assert p["total"] == sum(p["by_model"].values()) == p["backbone"] + p["heads"]
    assert 0 < p["backbone"] < p["total"] and p["trainable"] < p["total"]
    assert large["parameters"] == p  # weights do not depend on the input size
    assert small["input"]["shape"] == [1, 128, 128, 3] and small["num_proposals"] is None
    maps = small["feature_maps"]
    assert [m["shape"][:2] for m in maps] == [[8, 8], [4, 4], [2, 2], [1, 1]]
    assert all(m["shape"][2] > 0 for m in maps)
    assert small["anchors"]["total"] == sum(m["anchors"] for m in maps)
    f1, f2 = small["flops"], large["flops"]
    assert f1["total"] == sum(f1["by_stage"].values()) > 0
    assert set(f1["by_stage"]) <= {"preprocess", "model", "postprocess", "other"}
    assert f1["by_stage"]["model"] > 0.9 * f1["total"]
    assert 3.5 < f2["total"] / f1["total"] < 4.5  # 4x the pixels
    text = format_table(small)
    assert f"{p['total']:,}" in text and "multiply-add = 2 FLOPs" in text


def test_two_stage_flops_by_proposals_faster_rcnn_grows_rfcn_hardly():
    totals, classifier = {}, {}
    for arch in ("faster_rcnn", "rfcn"):
        for n in (8, 32):
            config = tiny_two_stage_config(arch)
            config.model.section.first_stage.max_proposals = n
            facts = describe(config, 3)
            f, p = facts["flops"], facts["parameters"]
            assert facts["num_proposals"] == n
            assert p["total"] == sum(p["by_model"].values()) == p["backbone"] + p["heads"]
            assert f["total"] == sum(f["by_stage"].values()) > 0
            totals[arch, n] = f["total"]
            classifier[arch, n] = f["by_stage"].get("box_classifier", 0) + f["by_stage"]["crops"]
        assert set(p["by_model"]) == ({"first_stage", "second_stage"} if arch == "faster_rcnn"
                                      else {"first_stage"})
        assert ("box_classifier" in f["by_stage"]) == (arch == "faster_rcnn")  # a network
        names = [m["name"] for m in facts["feature_maps"]]
        assert names[0] == "rpn_map" and facts["feature_maps"][0]["stride"] == 16
        assert ("class_maps" in names) == (arch == "rfcn")
    # per-proposal work is linear in the number of proposals...
    assert classifier["faster_rcnn", 32] == pytest.approx(4 * classifier["faster_rcnn", 8],
                                                          rel=0.05)
    # ... and dominates Faster R-CNN, while R-FCN's is a crop and a mean (paper Fig. 6)
    assert totals["faster_rcnn", 32] > 1.5 * totals["faster_rcnn", 8]
    assert totals["rfcn", 32] < 1.05 * totals["rfcn", 8]


def test_rpn_anchors_of_a_600x1024_input_at_stride_16():
    config = tiny_two_stage_config()
    section = config.model.faster_rcnn
    section.image_size, section.max_image_size = 600, 1024
    section.first_stage.anchors.scales = [0.25, 0.5, 1.0, 2.0]  # x 3 aspect ratios = 12
    facts = describe(config, 3, flops=False)
    a = facts["anchors"]
    assert a["rpn_in_largest_image"] == {"image": [600, 1024], "grid": [38, 64, 12],
                                         "anchors": 29_184}
    assert a["rpn"] == 64 * 64 * 12 and a["rpn_grid"] == [64, 64, 12]  # padded square input
    assert facts["feature_maps"][0]["shape"][:2] == [64, 64]
    assert "flops" not in facts and "29,184" in format_table(facts)


def test_cli_writes_the_json(tmp_path):
    config = tmp_path / "tiny_ssd.yaml"
    save_config(tiny_config(), str(config))
    out = tmp_path / "facts.json"
    run = subprocess.run(
        [sys.executable, "-m", "train", "describe", "--config", str(config), "--image-size",
         "96", "--num-classes", "4", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    facts = json.loads(out.read_text())
    assert facts["input"]["shape"] == [1, 96, 96, 3] and facts["num_classes"] == 4
    assert facts["flops"]["total"] > 0 and facts["flops"]["batch"] == 1
    assert f"{facts['parameters']['total']:,}" in run.stdout
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_image_size_override_scales_two_stage_cap(tmp_path):
    config = tmp_path / "tiny_frcnn.yaml"
    save_config(tiny_two_stage_config(), str(config))
    from train.describe import describe_config
    facts = describe_config(str(config), image_size=64, num_proposals=5, flops=False)
    assert facts["input"]["shape"] == [1, 80, 80, 3]  # 128/160 -> 64/80
    assert facts["input"]["max_image_size"] == 80 and facts["num_proposals"] == 5


@pytest.mark.parametrize("argv, message", [
    (["--config", "ssd_mobilenet_v2_shapes", "--num-proposals", "50"],
     "--num-proposals applies to two-stage models"),
    (["--config", "no_such_config"], "no_such_config: config file not found"),
    (["--config", "faster_rcnn_mobilenet_v2_shapes", "--num-proposals", "0"],
     "--num-proposals must be in 1..1000"),
])
def test_bad_input_one_line_error_status_2(argv, message, capsys, tmp_path):
    out = tmp_path / "facts.json"
    assert main(["describe", *argv, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()
