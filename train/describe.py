"""``python -m train describe``: the per-config facts a speed/accuracy report plots.

For one config (with the evaluation-time knobs ``--image-size`` and ``--num-proposals`` applied
the way ``train evaluate`` applies them), builds the detector and reports, without training:

* **parameters** -- the total (``DetectionModel.count_params``: every weight of every Keras model
  in ``keras_models``, batch-norm statistics included), per Keras model (SSD: ``model``; two-stage:
  ``first_stage``, ``second_stage``) and split into the feature extractor's layers
  (``backbone_layer_names``) and the rest (heads, added layers);
* **FLOPs** -- TensorFlow's profiler (``tf.compat.v1.profiler``, ``ProfileOptionBuilder.
  float_operation()``) on the frozen graph of the whole detect path (``model.detect`` at batch
  1: preprocessing -> network -> proposals -> crops -> box classifier -> post-processing), split
  by stage. It counts what TensorFlow registers FLOP statistics for: a multiply-add is 2 FLOPs
  (Conv2D, DepthwiseConv2dNative, MatMul, BatchMatMul), element-wise ops (Add, Mul, BiasAdd,
  RealDiv, ...), pools, Mean, Softmax one per output element; batch norm (foldable into the
  convolutions), activations, gathers, top-k and NMS count 0. Loop bodies (the per-image
  ``map_fn`` of the proposals) count once, which at batch 1 is exact;
* **feature maps** -- SSD: each prediction map ``HxWxC`` with its anchors; two-stage: the RPN map,
  the box classifier's input and output; R-FCN: the position-sensitive score maps;
* **anchors** -- SSD: the total; RPN: ``h x w x anchors per cell`` over the padded input, and
  inside the largest image the resizer makes (shorter edge M, longer edge ``max_image_size``);
  e.g. 600x1024 at stride 16: 38 x 64 x 12 = 29,184;
* the input size and the number of proposals.

The facts are a dict (:func:`describe`), a table (:func:`format_table`) and, with ``--json``, a
JSON file written atomically. Nothing here is measured on a dataset: the weights are fresh.
"""
from __future__ import annotations

import contextlib
import io
import math
import os

import tensorflow as tf
import tf_keras as keras

FLOPS_COUNTED = ("TensorFlow profiler float_operation() on the frozen detect graph, batch 1, "
                 "preprocessing through post-processing; a multiply-add = 2 FLOPs; element-wise "
                 "ops, pools, Mean and Softmax 1 per output element; batch norm, activations, "
                 "gathers, top-k and NMS 0; crops are matmuls here (TF's CropAndResize op would "
                 "count 0)")


# --- the number of classes ----------------------------------------------------------------
def default_num_classes(config, source: str) -> tuple[int, str]:
    """``(K, where K came from)``: the config's ``model.num_classes``, else the bundled shapes
    dataset's 8 categories for a config named ``*shapes*``, else 90 (the TF1 zoo's COCO label
    map, which the zoo's published parameter counts use)."""
    if config.model.num_classes:
        return config.model.num_classes, "model.num_classes"
    if "shapes" in os.path.basename(str(source)):
        from train.data.shapes import CATEGORIES
        return len(CATEGORIES), "the bundled shapes dataset's categories"
    return 90, "COCO as in the TF1 zoo (the config leaves it to the dataset)"


# --- FLOPs --------------------------------------------------------------------------------
def graph_flops(concrete_function, scope_depth: int = 1) -> dict:
    """FLOPs of a concrete function by TensorFlow's profiler: its variables frozen into
    constants (control flow lowered, so loop bodies count once), the graph re-imported (shape
    inference) and profiled with ``ProfileOptionBuilder.float_operation()``.

    -> ``{"total": int, "by_scope": {the first ``scope_depth`` components of the op names
    ("a/b"): int}, "uncounted_ops":
    [names of ops with a FLOP statistic whose shapes TensorFlow could not infer]}``."""
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    from tensorflow.python.util import deprecation

    frozen = convert_variables_to_constants_v2(concrete_function)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    uncounted = []
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    # quiet: the TF1-API deprecation notes and the profiler's "N ops no flops stats" line
    # (those ops are listed here instead)
    with deprecation.silence(), contextlib.redirect_stderr(io.StringIO()):
        for op in graph.get_operations():
            try:
                tf_ops.get_stats_for_node_def(graph, op.node_def, "flops")
            except ValueError:  # a registered statistic, but a shape is unknown (as the profiler)
                uncounted.append(op.name)
        profile = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options)
    by_scope: dict[str, int] = {}
    stack = list(profile.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.float_ops:
            scope = "/".join(node.name.split("/")[:scope_depth])
            by_scope[scope] = by_scope.get(scope, 0) + int(node.float_ops)
    total = int(profile.total_float_ops)
    if sum(by_scope.values()) != total:
        raise RuntimeError(f"describe.py: the profiler's per-op FLOPs ({sum(by_scope.values())})"
                           f" do not add up to its total ({total})")
    return {"total": total, "by_scope": by_scope, "uncounted_ops": sorted(uncounted)}


def _scoped(name: str, fn):
    def call(*args, **kwargs):
        with tf.name_scope(name):
            return fn(*args, **kwargs)
    return call


# The stages of the detect path, in order (name scopes of the traced graph; the Keras models
# name their own: SSD's ``<name>_predictor``, two-stage ``first_stage``).
# ``crops``: the box classifier's crops of the shared maps (Faster R-CNN: crop_and_resize and
# max-pool; R-FCN: position-sensitive crop and vote), ``box_classifier``: its network per crop.
STAGES = ("preprocess", "model", "first_stage", "proposals", "crops", "box_classifier",
          "postprocess")


def detect_flops(model) -> dict:
    """FLOPs of ``model.detect`` at batch 1 (images ``[1, H, W, 3]``, windows ``[1, 2]``, as
    ``benchmarks/tf_latency.py`` traces it), by stage. The stages are told apart by name
    scopes put around the model's own methods on this instance (preprocess, proposals, box
    classifier, postprocess); what runs is ``model.detect`` itself. The box classifier's crops
    are matmuls here (TFLite has no CropAndResize built-in), so they count, unlike TF's
    CropAndResize op, which has no FLOP statistic: ``crops`` shows them apart."""
    model.preprocess = _scoped("preprocess", model.preprocess)
    model.postprocess = _scoped("postprocess", model.postprocess)
    rpn = getattr(model, "rpn", None)
    if rpn is not None:
        rpn.proposals = _scoped("proposals", rpn.proposals)
        model.box_classifier = _scoped("box_classifier", model.box_classifier)
    keras_scopes = {m.name: name for name, m in model.keras_models.items()}
    h, w = model.input_shape
    detect = tf.function(model.detect, input_signature=[
        tf.TensorSpec([1, h, w, 3], tf.float32), tf.TensorSpec([1, 2], tf.float32)])
    result = graph_flops(detect.get_concrete_function(), scope_depth=2)
    stages: dict[str, int] = {}
    for scope, flops in result["by_scope"].items():
        first, _, second = scope.partition("/")
        stage = keras_scopes.get(first, first)
        if stage == "box_classifier" and keras_scopes.get(second) != "second_stage":
            stage = "crops"
        stage = stage if stage in STAGES else "other"
        stages[stage] = stages.get(stage, 0) + flops
    order = {s: i for i, s in enumerate(STAGES + ("other",))}
    result["by_stage"] = dict(sorted(stages.items(), key=lambda kv: order[kv[0]]))
    del result["by_scope"]
    return result


# --- parameters and maps ------------------------------------------------------------------
def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def parameters(model) -> dict:
    """Total, per Keras model, and extractor ("backbone") vs the rest ("heads")."""
    by_model = {name: int(m.count_params()) for name, m in model.keras_models.items()}
    try:
        backbone_names = model.backbone_layer_names()
    except NotImplementedError:
        backbone_names = None
    out = {"total": model.count_params(), "by_model": by_model,
           "trainable": int(sum(int(tf.size(v)) for v in model.trainable_variables))}
    if backbone_names is not None:
        seen, backbone, heads = set(), 0, 0
        for m in model.keras_models.values():
            for layer in _leaf_layers(m):
                if id(layer) in seen:
                    continue
                seen.add(id(layer))
                if layer.name in backbone_names:
                    backbone += layer.count_params()
                else:
                    heads += layer.count_params()
        out.update(backbone=int(backbone), heads=int(heads))
    return out


def _shape(tensor) -> list[int | None]:
    return [None if d is None else int(d) for d in tensor.shape[1:]]


def _layer_input(keras_model, name: str):
    try:
        return keras_model.get_layer(name).input
    except ValueError:
        return None


def _ssd_maps(model) -> tuple[list[dict], dict]:
    km = model.keras_model
    maps = []
    for i, (h, w) in enumerate(model.feature_map_sizes):
        head = [l for l in km.layers if l.name.startswith(f"BoxPredictor_{i}/BoxEncoding/")]
        channels = int(head[0].input.shape[-1]) if head else None
        k = int(head[-1].output.shape[-1]) // 4 if head else None
        maps.append({"name": f"BoxPredictor_{i}", "shape": [h, w, channels],
                     "anchors_per_location": k, "anchors": h * w * k if k else None})
    return maps, {"total": model.num_anchors}


def _two_stage_maps(model) -> tuple[list[dict], dict]:
    rpn, fs = model.rpn, model.first_stage
    h, w = rpn.feature_map_size
    k = rpn.anchors_per_location
    rpn_in = _layer_input(fs, "FirstStageBoxPredictor/conv")
    channels = int(rpn_in.shape[-1]) if rpn_in is not None else None
    n = model.max_proposals
    maps = [{"name": "rpn_map", "endpoint": model.extractor.rpn_endpoint,
             "shape": [h, w, channels], "stride": rpn.stride, "anchors_per_location": k,
             "anchors": h * w * k}]
    if model.meta_architecture == "faster_rcnn":
        bc = model.box_classifier
        net = model.keras_models["second_stage"]
        pooled = _layer_input(net, "SecondStageBoxPredictor/pool")
        maps.append({"name": "box_classifier_input", "per_proposal": True, "proposals": n,
                     "crop": [bc.crop_size, bc.crop_size], "maxpool": bc.pool,
                     "shape": _shape(net.input)})
        maps.append({"name": "box_classifier_output", "per_proposal": True, "proposals": n,
                     "shape": _shape(pooled) if pooled is not None else None,
                     "outputs": {"class_logits": model.num_classes + 1,
                                 "box_encodings": [model.num_classes, 4]}})
    else:  # R-FCN: the score maps, shared by every proposal
        last = _layer_input(fs, "RfcnBoxPredictor/conv")
        if last is not None:
            maps.append({"name": "last_map", "shape": _shape(last)})
        for key in ("class_maps", "box_maps"):
            maps.append({"name": key, "shape": _shape(fs.output[key]),
                         "bins": [model.box_classifier.num_bins] * 2})
        maps.append({"name": "box_classifier_output", "per_proposal": True, "proposals": n,
                     "crop": [model.box_classifier.crop_size] * 2,
                     "outputs": {"class_logits": model.num_classes + 1, "box_encodings": [1, 4]}})
    resizer = model.image_resizer
    ih, iw = resizer.min_dimension, resizer.max_dimension  # the largest image it makes
    gh, gw = math.ceil(ih / rpn.stride), math.ceil(iw / rpn.stride)
    anchors = {"rpn": rpn.num_anchors, "rpn_grid": [h, w, k],
               "rpn_in_largest_image": {"image": [ih, iw], "grid": [gh, gw, k],
                                        "anchors": gh * gw * k}}
    return maps, anchors


# --- the facts ------------------------------------------------------------------------------
def describe(config, num_classes: int | None = None, *, source: str = "<config>",
             flops: bool = True) -> dict:
    """The facts of ``config`` (a :class:`train.config.Config`, knobs already applied)."""
    from train.builder import build_model

    classes_from = "--num-classes"
    if not num_classes:
        num_classes, classes_from = default_num_classes(config, source)
    model = build_model(config.model, num_classes)
    m, fe = config.model, config.model.feature_extractor
    section = m.section
    h, w = model.input_shape
    facts = {"config": source, "meta_architecture": m.meta_architecture,
             "feature_extractor": {"name": fe.name, "depth_multiplier": fe.depth_multiplier,
                                   "output_stride": fe.output_stride},
             "num_classes": num_classes, "num_classes_from": classes_from,
             "input": {"shape": [1, h, w, 3], "image_size": section.image_size}}
    if m.meta_architecture == "ssd":
        facts["input"]["resize"] = f"stretched to {h}x{w}"
        facts["feature_maps"], facts["anchors"] = _ssd_maps(model)
        facts["num_proposals"] = None
    else:
        facts["input"].update(max_image_size=section.max_image_size,
                              resize=f"shorter edge {section.image_size}, longer edge at most "
                                     f"{section.max_image_size}, padded to {h}x{w}")
        facts["feature_maps"], facts["anchors"] = _two_stage_maps(model)
        facts["num_proposals"] = model.max_proposals
    facts["parameters"] = parameters(model)
    if flops:
        facts["flops"] = {**detect_flops(model), "batch": 1, "counted": FLOPS_COUNTED,
                          "tensorflow": tf.__version__}
    return facts


def describe_config(config: str, image_size: int | None = None,
                    num_proposals: int | None = None, num_classes: int | None = None,
                    flops: bool = True) -> dict:
    """Loads ``config`` (a bundled name or a path), applies ``--image-size`` /
    ``--num-proposals`` as ``train evaluate`` does, and returns :func:`describe`'s facts."""
    from train.config import ConfigError, load_config
    from train.evaluate import apply_overrides

    cfg = load_config(config)
    if num_proposals is not None and cfg.model.meta_architecture == "ssd":
        raise ConfigError(f"{config}: --num-proposals applies to two-stage models "
                          "(faster_rcnn, rfcn); this config is an SSD")
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {num_classes}")
    apply_overrides(cfg, num_proposals=num_proposals, image_size=image_size)
    return describe(cfg, num_classes, source=config, flops=flops)


# --- the table --------------------------------------------------------------------------------
def _g(flops: int) -> str:
    return f"{flops / 1e9:,.3f} G" if flops >= 1e7 else f"{flops / 1e6:,.3f} M"


def _hwc(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def format_table(facts: dict) -> str:
    fe = facts["feature_extractor"]
    extractor = f"{fe['name']} x{fe['depth_multiplier']:g}"
    if fe["output_stride"]:
        extractor += f", output stride {fe['output_stride']}"
    _, h, w, _ = facts["input"]["shape"]
    rows = [f"{facts['config']}: {facts['meta_architecture']}, {extractor}, "
            f"{facts['num_classes']} classes ({facts['num_classes_from']})",
            f"  input            {h}x{w}x3 ({facts['input']['resize']})"]
    if facts["num_proposals"] is not None:
        rows.append(f"  proposals        {facts['num_proposals']}")
    p = facts["parameters"]
    rows.append(f"  parameters       {p['total']:,} ({p['trainable']:,} trainable)")
    for name, n in p["by_model"].items():
        rows.append(f"    {name:<15}{n:,}")
    if "backbone" in p:
        rows.append(f"    {'backbone':<15}{p['backbone']:,} (feature extractor layers)")
        rows.append(f"    {'heads':<15}{p['heads']:,} (everything else)")
    if "flops" in facts:
        f = facts["flops"]
        rows.append(f"  FLOPs            {_g(f['total'])} (batch 1, whole detect path)")
        for stage, n in f["by_stage"].items():
            share = 100.0 * n / f["total"] if f["total"] else 0.0
            rows.append(f"    {stage:<15}{_g(n):>12}  {share:5.1f}%")
        if f["uncounted_ops"]:
            scopes = sorted({name.split("/")[0] for name in f["uncounted_ops"]})
            rows.append(f"    ({len(f['uncounted_ops'])} ops whose shapes TensorFlow cannot infer "
                        f"are not counted, in: {', '.join(scopes)}; listed in the JSON)")
        rows.append(f"    counted: {f['counted']}")
    rows.append("  feature maps")
    for fm in facts["feature_maps"]:
        parts = ["per proposal"] if fm.get("per_proposal") else []
        if fm.get("shape") is not None:
            parts[-1:] = [" ".join(parts[-1:] + [_hwc(fm["shape"])])]
        if fm.get("stride"):
            parts.append(f"stride {fm['stride']:g}")
        if fm.get("anchors"):
            parts.append(f"anchors {fm['shape'][0]}x{fm['shape'][1]}x"
                         f"{fm['anchors_per_location']} = {fm['anchors']:,}")
        if "crop" in fm:
            pool = f", {fm['maxpool']}x{fm['maxpool']} max-pool" if fm.get("maxpool") else ""
            parts.append(f"({fm['crop'][0]}x{fm['crop'][1]} crop{pool})")
        if "bins" in fm:
            parts.append(f"({fm['bins'][0]}x{fm['bins'][1]} position-sensitive bins)")
        if "outputs" in fm:
            o = fm["outputs"]
            parts.append(f"-> {o['class_logits']} class logits, {_hwc(o['box_encodings'])} box "
                         "encodings")
        rows.append(f"    {fm['name']:<22}" + "  ".join(parts))
    a = facts["anchors"]
    if "total" in a:
        rows.append(f"  anchors          {a['total']:,}")
    else:
        g, big = a["rpn_grid"], a["rpn_in_largest_image"]
        rows.append(f"  anchors (RPN)    {a['rpn']:,} = {_hwc(g)} over the padded {h}x{w} input;"
                    f" {big['anchors']:,} = {_hwc(big['grid'])} inside a "
                    f"{big['image'][0]}x{big['image'][1]} image")
    return "\n".join(rows)


def main(args) -> None:
    """The ``describe`` subcommand (arguments parsed by ``train/__main__.py``)."""
    if args.json:  # before the work, not after it
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--json {args.json}: no directory {folder}")
    facts = describe_config(args.config, image_size=args.image_size,
                            num_proposals=args.num_proposals, num_classes=args.num_classes,
                            flops=not args.no_flops)
    print(format_table(facts))
    if args.json:
        from edge_runtime.files import write_json
        write_json(args.json, facts)
        print(f"-> {args.json}")
