import pytest

from train.config import ConfigError, bundled_configs, config_from_dict, load_config


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  anchors:\n    min_scal: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'model.anchors.min_scal'"):
        load_config(path)


def test_wrong_type_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"'train.batch_size' must be int"):
        config_from_dict({"train": {"batch_size": "big"}})
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(path)


def test_missing_config_lists_bundled():
    with pytest.raises(ConfigError, match="ssd_mobilenet_v2_shapes"):
        load_config("no_such_config.yaml")


@pytest.mark.parametrize("name", sorted(bundled_configs()))
def test_bundled_configs_load(name):
    config = load_config(name)
    arch = next((a for a in ("faster_rcnn", "rfcn") if name.startswith(a)), "ssd")
    assert config.model.meta_architecture == arch
    assert config.model.section is not None
    assert config.train.steps > 0


# found by tests/test_fuzz_config.py: each gave a traceback, a multi-line or unnamed error, or
# silently the default config
@pytest.mark.parametrize("content, match", [
    (b"\xff\xfe\x00model: 1", "not valid YAML"),                      # UnicodeDecodeError
    (b'" unclosed\nmodel:\n', "not valid YAML: while scanning a quoted scalar"),  # 3 lines
    (b"[]", "the config must be a mapping, got \\[\\]"),                # defaults, silently
    (b"0", "the config must be a mapping, got 0"),
    (b"1: a\nb: c\n", "unknown key '1'"),                             # sorted(1, 'b'): TypeError
    (b"model: {meta_architecture: [ssd]}", "unknown 'model.meta_architecture' \\['ssd'\\]"),
    (b"model: {ssd: {anchors: {min_scale: [" + b"1, " * 500 + b"1]}}}",
     "'model.ssd.anchors.min_scale' must be float, got \\[1, 1, 1, 1, 1, 1, \\.\\.\\.\\]$"),
])
def test_bad_files_give_one_line_naming_file(tmp_path, content, match):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_a_folder_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)


def test_an_unknown_key_with_a_newline_stays_on_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('"a\\nb": 1\n')  # found by tests/test_fuzz_config.py
    with pytest.raises(ConfigError, match=r"unknown key ''a\\nb''") as e:
        load_config(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("yaml_text, match", [
    ("train: {optimizer: {learning_rate: .nan}}", r"'train.optimizer.learning_rate' must be a "
                                                  r"finite number, got nan"),
    ("train: {optimizer: {learning_rate: -.inf}}", r"'train.optimizer.learning_rate' must be a "
                                                   r"finite number, got -inf"),
    ("train: {optimizer: {learning_rate: 0}}", r"'train.optimizer.learning_rate' must be > 0"),
    ("train: {batch_size: 0}", r"'train.batch_size' must be >= 1, got 0"),
    ("train: {steps: -5}", r"'train.steps' must be >= 0, got -5"),
    ("train: {max_boxes_per_image: 0}", r"'train.max_boxes_per_image' must be >= 1"),
    ("model: {ssd: {matcher: {matched_threshold: 1.5}}}",
     r"'model.ssd.matcher.matched_threshold' must be in \[0, 1\], got 1.5"),
    ("model: {ssd: {anchors: {aspect_ratios: [1.0, -2.0]}}}",
     r"'model.ssd.anchors.aspect_ratios' must be > 0, got -2.0"),
    ("model: {meta_architecture: faster_rcnn, faster_rcnn: {first_stage: {positive_fraction: 2}}}",
     r"'model.faster_rcnn.first_stage.positive_fraction' must be in \[0, 1\]"),
])
def test_out_of_range_values_name_the_key(tmp_path, yaml_text, match):
    path = tmp_path / "range.yaml"
    path.write_text(yaml_text + "\n")
    with pytest.raises(ConfigError, match="range.yaml: " + match):
        load_config(str(path))


def test_localization_loss_is_checked_by_key():
    ok = config_from_dict({"model": {"meta_architecture": "faster_rcnn", "faster_rcnn": {
        "second_stage": {"localization_loss": "smooth_l1+iou"}}}})
    assert ok.model.faster_rcnn.second_stage.localization_loss == "smooth_l1+iou"
    with pytest.raises(ConfigError, match=r"'model.rfcn.second_stage.localization_loss' must "
                                          r"be one of smooth_l1, smooth_l1\+iou, got 'giou'"):
        config_from_dict({"model": {"meta_architecture": "rfcn", "rfcn": {
            "second_stage": {"localization_loss": "giou"}}}})
