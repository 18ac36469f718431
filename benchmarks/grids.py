"""The sweep's grids: which cells ``python -m benchmarks sweep --grid`` measures.

A grid is a dict (or a YAML file of the same shape, ``--grid FILE.yaml``)::

    name: mobile
    settings: {tf_runs: 20, tf_warmup: 3, lite_runs: 20, lite_warmup: 3,   # all optional
               threads: [1, 2], quantize: [float32, int8], timeout_s: 900,
               ap_int8: true}         # trained cells: COCO AP of the int8 model too
    blocks:                       # each block: the product of its axes
      - meta_architectures: [faster_rcnn, rfcn]
        extractors: [mobilenet_v1, mobilenet_v2, inception_v2]
        resolutions: [300]
        proposals: [50, 300]      # two-stage only (SSD cells ignore it)
        strides: [null]           # null: the extractor's default; 16 / 8 where it applies
        family: coco              # which bundled configs to prefer (coco | shapes)
    cells:                        # and/or explicit cells
      - {meta_architecture: ssd, extractor: mobilenet_v2, resolution: 64,
         config: ssd_mobilenet_v2_shapes}

Each cell becomes a :class:`Cell` with the id the report expects (``ssd-mobilenet_v2-300``,
``faster_rcnn-resnet101-600-p300-s8``) and the bundled config it is built from: the config of
that meta-architecture, extractor and stride among the ``family``'s (``*_coco``: the paper's
models, 90 classes; ``*_shapes``: the bundled dataset's), else one of that extractor with the
stride set, else the family's template of that meta-architecture with the extractor swapped in
(``overrides``, recorded in the cell file). Nothing here imports
TensorFlow: the parent process stays light; each cell runs in its own process.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field

META_ARCHITECTURES = ("ssd", "faster_rcnn", "rfcn")
# The configs a missing (meta-architecture, extractor) pair is derived from.
TEMPLATES = {"coco": {"ssd": "ssd_mobilenet_v1_coco",
                      "faster_rcnn": "faster_rcnn_mobilenet_v1_coco",
                      "rfcn": "rfcn_mobilenet_v2_coco"},
             "shapes": {"ssd": "ssd_mobilenet_v2_shapes",
                        "faster_rcnn": "faster_rcnn_mobilenet_v2_shapes",
                        "rfcn": "rfcn_mobilenet_v2_shapes"}}
DEFAULT_SETTINGS = {"tf_runs": 50, "tf_warmup": 5, "lite_runs": 50, "lite_warmup": 5,
                    "threads": [1, 2], "quantize": ["float32", "int8"], "timeout_s": 1800,
                    "ap_int8": True}
SETTING_TYPES = {"tf_runs": int, "tf_warmup": int, "lite_runs": int, "lite_warmup": int,
                 "threads": list, "quantize": list, "timeout_s": int, "ap_int8": bool}


class GridError(ValueError):
    """A grid (name or file) is invalid; the message names the grid and the key."""


@dataclass
class Cell:
    meta_architecture: str
    extractor: str
    resolution: int
    num_proposals: int | None
    stride: int | None
    config: str                       # a bundled config name (or a YAML path)
    overrides: dict = field(default_factory=dict)  # {"feature_extractor.name": ...}

    @property
    def id(self) -> str:
        parts = [self.meta_architecture, self.extractor, str(self.resolution)]
        if self.num_proposals is not None:
            parts.append(f"p{self.num_proposals}")
        if self.stride is not None:
            parts.append(f"s{self.stride}")
        return "-".join(parts)

    def key(self) -> dict:
        """The schema's ``cell`` object (benchmarks/results_schema.py)."""
        return {"id": self.id, "meta_architecture": self.meta_architecture,
                "extractor": self.extractor, "resolution": self.resolution,
                "num_proposals": self.num_proposals, "stride": self.stride,
                "config": self.config}

    def to_dict(self) -> dict:
        return asdict(self)


# --- the built-in grids ---------------------------------------------------------------------
MOBILE_EXTRACTORS = ["mobilenet_v1", "mobilenet_v2", "inception_v2"]
PAPER_EXTRACTORS = ["vgg16", "resnet101", "inception_v2", "inception_v3", "inception_resnet_v2",
                    "mobilenet_v1"]
ATROUS = ["resnet101", "inception_resnet_v2"]  # output stride 16 or 8 (paper Sec. 3.1)

GRIDS = {
    # a few minutes: the zoo's shapes models (pass --zoo for their AP)
    "quick": {"name": "quick",
              "settings": {"tf_runs": 10, "tf_warmup": 2, "lite_runs": 10, "lite_warmup": 2,
                           "threads": [1]},
              "blocks": [{"meta_architectures": ["ssd"], "extractors": ["mobilenet_v2"],
                          "resolutions": [256], "family": "shapes"},
                         {"meta_architectures": ["faster_rcnn"], "extractors": ["mobilenet_v2"],
                          "resolutions": [256], "proposals": [50], "family": "shapes"}]},
    # the paper's mobile extractors at 300 on a 2-core machine (budget: 60 min; see sweep.py),
    # plus the pairs its findings need: 50 vs 300 proposals, half resolution, stride 16 vs 8
    "mobile": {"name": "mobile",
               "settings": {"tf_runs": 10, "tf_warmup": 2, "lite_runs": 10, "lite_warmup": 2,
                            "threads": [1, 2], "timeout_s": 900},
               "blocks": [{"meta_architectures": ["ssd"], "extractors": MOBILE_EXTRACTORS,
                           "resolutions": [300]},
                          {"meta_architectures": ["faster_rcnn"],
                           "extractors": MOBILE_EXTRACTORS, "resolutions": [300],
                           "proposals": [50, 300]},
                          # R-FCN needs output stride 16; inception_v2 has no atrous Mixed_5
                          {"meta_architectures": ["rfcn"],
                           "extractors": ["mobilenet_v1", "mobilenet_v2"], "resolutions": [300],
                           "proposals": [50, 300]},
                          # halving the resolution: SSD-MobileNet-v1 300 -> 150, and the zoo's
                          # SSD at the 256 it was trained at -> 128 (its AP too)
                          {"meta_architectures": ["ssd"], "extractors": ["mobilenet_v1"],
                           "resolutions": [150]},
                          {"meta_architectures": ["ssd"], "extractors": ["mobilenet_v2"],
                           "resolutions": [256, 128], "family": "shapes"},
                          # output stride 16 vs 8 (atrous ResNet-101), small input to fit 2 cores
                          {"meta_architectures": ["faster_rcnn"], "extractors": ["resnet101"],
                           "resolutions": [150], "proposals": [50], "strides": [16, 8]}]},
    # the paper's whole grid (hours; meant for a bigger machine or a GPU)
    "paper": {"name": "paper",
              "blocks": [{"meta_architectures": ["ssd"], "extractors": PAPER_EXTRACTORS,
                          "resolutions": [300, 600]},
                         {"meta_architectures": ["faster_rcnn", "rfcn"],
                          "extractors": [e for e in PAPER_EXTRACTORS if e not in ATROUS],
                          "resolutions": [300, 600], "proposals": [10, 20, 50, 100, 300]},
                         {"meta_architectures": ["faster_rcnn", "rfcn"], "extractors": ATROUS,
                          "resolutions": [300, 600], "proposals": [10, 20, 50, 100, 300],
                          "strides": [16, 8]}]},
}


# --- configs --------------------------------------------------------------------------------
_INDEX: dict | None = None


def config_index() -> dict:
    """{(meta_architecture, extractor, output_stride): [bundled config names]} (no TensorFlow:
    train.config reads YAML only)."""
    global _INDEX
    if _INDEX is None:
        from train.config import bundled_configs, load_config
        _INDEX = {}
        for name in sorted(bundled_configs()):
            m = load_config(name).model
            fe = m.feature_extractor
            key = (m.meta_architecture, fe.name, fe.output_stride)
            _INDEX.setdefault(key, []).append(name)
    return _INDEX


def _family(names: list[str], family: str) -> list[str]:
    """The family's configs (``*_<family>``), short runs before ``*_long``."""
    return sorted((n for n in names if f"_{family}" in n), key=lambda n: (n.endswith("_long"), n))


def resolve_config(meta: str, extractor: str, stride: int | None, family: str = "coco"
                   ) -> tuple[str, dict]:
    """-> (bundled config name, overrides) for a cell, within ``family``: that architecture's
    config; else one of that extractor with the stride set; else the family's template with
    the extractor swapped in (so a grid's cells stay comparable: same classes, input rule)."""
    index = config_index()
    exact = _family(index.get((meta, extractor, stride), []), family)
    if exact:
        return exact[0], {}
    same = _family([n for (m, e, _), names in index.items() if (m, e) == (meta, extractor)
                    for n in names], family)
    if same:
        return same[0], {"feature_extractor.output_stride": stride}
    overrides = {"feature_extractor.name": extractor}
    if stride is not None:
        overrides["feature_extractor.output_stride"] = stride
    return TEMPLATES[family][meta], overrides


# --- parsing ---------------------------------------------------------------------------------
def _list(block: dict, key: str, where: str, default):
    v = block.get(key, default)
    if not isinstance(v, list) or not v:
        raise GridError(f"{where}.{key} must be a non-empty list, got {v!r}")
    return v


def _block_cells(block: dict, where: str) -> list[Cell]:
    unknown = set(block) - {"meta_architectures", "extractors", "resolutions", "proposals",
                            "strides", "family"}
    if unknown:
        raise GridError(f"{where}: unknown key(s) {sorted(unknown)}")
    family = block.get("family", "coco")
    if family not in TEMPLATES:
        raise GridError(f"{where}.family must be one of {sorted(TEMPLATES)}, got {family!r}")
    cells = []
    for meta, ext, res, stride in itertools.product(
            _list(block, "meta_architectures", where, None),
            _list(block, "extractors", where, None),
            _list(block, "resolutions", where, None), _list(block, "strides", where, [None])):
        proposals = [None] if meta == "ssd" else _list(block, "proposals", where, None)
        for n in proposals:
            cells.append(_cell({"meta_architecture": meta, "extractor": ext, "resolution": res,
                                "num_proposals": n, "stride": stride, "family": family}, where))
    return cells


def _cell(d: dict, where: str) -> Cell:
    if not isinstance(d, dict):
        raise GridError(f"{where}: a cell must be a mapping, got {d!r}")
    unknown = set(d) - {"meta_architecture", "extractor", "resolution", "num_proposals",
                        "stride", "config", "family"}
    if unknown:
        raise GridError(f"{where}: unknown key(s) {sorted(unknown)}")
    meta = d.get("meta_architecture")
    if meta not in META_ARCHITECTURES:
        raise GridError(f"{where}: meta_architecture must be one of {META_ARCHITECTURES}, "
                        f"got {meta!r}")
    if not isinstance(d.get("extractor"), str):
        raise GridError(f"{where}: extractor must be a name (train/feature_extractors)")
    for key, optional in (("resolution", False), ("num_proposals", True), ("stride", True)):
        v = d.get(key)
        if not (v is None and optional) and (isinstance(v, bool) or not isinstance(v, int)
                                             or v < 1):
            raise GridError(f"{where}: {key} must be a positive integer, got {v!r}")
    proposals = d.get("num_proposals") if meta != "ssd" else None
    if meta != "ssd" and proposals is None:
        raise GridError(f"{where}: a {meta} cell needs num_proposals")
    if d.get("config"):
        config, overrides = str(d["config"]), {}
    else:
        config, overrides = resolve_config(meta, d["extractor"], d.get("stride"),
                                           d.get("family", "coco"))
    return Cell(meta, d["extractor"], d["resolution"], proposals, d.get("stride"), config,
                overrides)


def parse_grid(grid: dict, source: str) -> tuple[list[Cell], dict]:
    """-> (cells in order, settings with defaults); duplicate ids are an error."""
    if not isinstance(grid, dict):
        raise GridError(f"{source}: a grid must be a mapping with 'blocks' and/or 'cells'")
    unknown = set(grid) - {"name", "settings", "blocks", "cells"}
    if unknown:
        raise GridError(f"{source}: unknown key(s) {sorted(unknown)}")
    settings = dict(DEFAULT_SETTINGS)
    for key, value in (grid.get("settings") or {}).items():
        if key not in SETTING_TYPES:
            raise GridError(f"{source}: settings.{key}: unknown (known: {sorted(SETTING_TYPES)})")
        if not isinstance(value, SETTING_TYPES[key]) or (
                isinstance(value, bool) and SETTING_TYPES[key] is not bool):
            raise GridError(f"{source}: settings.{key} must be a {SETTING_TYPES[key].__name__}")
        settings[key] = value
    cells = []
    for i, block in enumerate(grid.get("blocks") or []):
        cells += _block_cells(block, f"{source}: blocks[{i}]")
    for i, c in enumerate(grid.get("cells") or []):
        cells.append(_cell(c, f"{source}: cells[{i}]"))
    if not cells:
        raise GridError(f"{source}: the grid has no cells")
    seen = set()
    for c in cells:
        if c.id in seen:
            raise GridError(f"{source}: cell {c.id} appears twice")
        seen.add(c.id)
    return cells, settings


def load_grid(name_or_path: str) -> tuple[list[Cell], dict]:
    """A built-in grid (``quick``, ``mobile``, ``paper``) or a YAML file."""
    grid, source = _read(name_or_path)
    return parse_grid(grid, source)


def grid_name(name_or_path: str) -> str:
    """The name a grid's cell files record (``"grid"``): a built-in's, else the YAML's
    ``name``, else the file's stem."""
    grid, _ = _read(name_or_path)
    name = grid.get("name") if isinstance(grid, dict) else None
    return str(name) if name else os.path.splitext(os.path.basename(name_or_path))[0]


def _read(name_or_path: str) -> tuple:
    if name_or_path in GRIDS:
        return GRIDS[name_or_path], f"grid {name_or_path}"
    if not os.path.isfile(name_or_path):
        raise GridError(f"--grid {name_or_path}: neither a built-in grid "
                        f"({', '.join(GRIDS)}) nor a YAML file")
    import yaml
    try:
        with open(name_or_path) as f:
            return yaml.safe_load(f), name_or_path
    except (OSError, yaml.YAMLError) as e:
        raise GridError(f"{name_or_path}: unreadable grid file ({e})") from None
