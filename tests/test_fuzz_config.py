"""Fuzzing the config loader (train/config.py): bundled configs with a value at one key path
replaced by anything (or removed, or a key added), random YAML documents and byte-mutated
YAML files. Every file must load or give a one-line ConfigError naming it, and a value of the
wrong type must be named by its key path."""
import dataclasses
import os
import types
import typing

import pytest
import yaml
from hypothesis import given, strategies as st

from tests.fuzz import SCALES, Tally, fuzz_settings, mutated
from train.config import Config, ConfigError, bundled_configs, load_config

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train",
                       "configs")
BUNDLED = {name: load_config(name).to_dict() for name in sorted(bundled_configs())}

scalars = (st.none() | st.booleans() | st.integers(-3, 10**4) | st.sampled_from([2**70, -2**64])
           | st.floats() | st.text(max_size=8))
yaml_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    scalars.filter(lambda k: k == k), kids, max_size=3), max_leaves=6)  # NaN keys never match


def _key_paths(value, prefix=()):
    if prefix:
        yield prefix
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        yield from _key_paths(v, prefix + (k,))


def _type_at(path) -> tuple[type | None, bool]:
    """The declared type at a key path of Config and whether it may be None."""
    cls, optional = Config, False
    for key in path:
        if isinstance(key, int):
            args = typing.get_args(cls)
            cls, optional = (args[0] if args else None), False
            continue
        if not dataclasses.is_dataclass(cls):
            return None, False
        hint = typing.get_type_hints(cls).get(key)
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
        cls = [a for a in typing.get_args(hint) if a is not type(None)][0] if optional else hint
    return cls, optional


def _fits(cls, optional: bool, value) -> bool:
    if value is None and optional:
        return True
    if cls is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if cls is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, cls)


@st.composite
def edited_configs(draw):
    """(document, key path whose value now has the wrong type or None)."""
    doc = yaml.safe_load(yaml.safe_dump(BUNDLED[draw(st.sampled_from(sorted(BUNDLED)))]))
    path = draw(st.sampled_from(list(_key_paths(doc))))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
    if action == "remove" and isinstance(parent, dict):
        del parent[path[-1]]
        return doc, None
    if action == "add" and isinstance(parent, dict):
        parent[draw(scalars.filter(lambda k: k == k and k not in parent))] = draw(yaml_values)
        return doc, None
    value = draw(yaml_values)
    parent[path[-1]] = value
    cls, optional = _type_at(path)
    return doc, (path if cls in (int, float, str, bool) and not _fits(cls, optional, value)
                 else None)


def _check(path: str, tally: Tally, wrong=None) -> None:
    try:
        load_config(path)
        tally["loaded"] += 1
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        if wrong is not None:  # e.g. model.ssd.anchors.aspect_ratios[2]
            key = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in wrong)[1:]
            assert f"'{key}'" in message, (key, message)
            tally["wrong types named by key path"] += 1
        tally["errors"] += 1


@pytest.mark.parametrize("scale", SCALES)
def test_configs_load_or_give_an_error_naming_the_file_and_key(tmp_path, scale):
    path, tally = str(tmp_path / "config.yaml"), Tally()

    @fuzz_settings(300, scale)
    @given(edited_configs())
    def edited(case):
        doc, wrong = case
        with open(path, "w") as f:
            yaml.safe_dump(doc, f, allow_unicode=True)
        tally["configs"] += 1
        _check(path, tally, wrong)

    @fuzz_settings(200, scale)
    @given(yaml_values | st.text(max_size=40).map(str.encode)
           | st.sampled_from(sorted(BUNDLED)).flatmap(
               lambda name: mutated(open(os.path.join(CONFIGS, name + ".yaml"), "rb").read())))
    def random(doc):
        with open(path, "wb") as f:
            f.write(doc if isinstance(doc, bytes) else yaml.safe_dump(doc).encode())
        tally["configs"] += 1
        _check(path, tally)

    edited()
    random()
    tally.report(f"configs x{scale}")
    assert tally["configs"] >= 400 * scale and tally["wrong types named by key path"] > 0
