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
