"""Where an export starts: a training run (checkpoint) or a SavedModel written by this package.

Either way the converter gets an :class:`ExportSource`: a predictor from normalised images to
box encodings and class scores, the anchors, the NMS settings and the labels.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

from convert.postprocess_op import GRAPHS, NmsSettings

SAVEDMODEL_ASSET = "frontier.json"  # inside a SavedModel: labels, anchors, NMS, config


class ExportError(Exception):
    """A problem with the converter's input or settings; the message says what to do."""


@dataclass
class ExportSource:
    """Everything an export needs.

    ``predict(x)``: normalised images float32 ``[B, M, M, 3]`` in [-1, 1] -> ``(box_encodings
    [B, A, 4], class_scores [B, A, K+1])`` (softmax/sigmoid applied, column 0 = background).
    ``detect(x)``: the TensorFlow reference, same input -> dict of ``boxes [B, N, 4]``,
    ``classes [B, N]`` (0-based), ``scores [B, N]``, ``num_detections [B]``.

    Two-stage models (``meta_architecture`` faster_rcnn / rfcn, convert/two_stage.py): the
    input is the padded ``input_shape`` (``resizer`` keeps the aspect ratio), ``predict``
    returns a third tensor, the op's anchors ``[R, 4]`` center-size (the proposals), and
    ``anchors`` holds the RPN's grid anchors (for the record only).
    """
    predict: object
    detect: object
    image_size: int
    anchors: np.ndarray  # [A, 4] (ymin, xmin, ymax, xmax), normalised
    nms: NmsSettings
    labels: dict  # {"category_ids": [...], "category_names": [...]}
    config: dict
    provenance: dict
    score_fn: str = "softmax"
    mean: float = 127.5  # normalised = (pixel - mean) / std
    std: float = 127.5
    model: object = None  # the train.meta_architectures SSD (runs only; QAT needs it)
    trackable: object = None  # owner of the variables ``predict`` uses (for the converter)
    train_config: object = None
    meta_architecture: str = "ssd"
    resizer: object = None  # train.core.image_resizer: image -> the input (+ its window)
    num_proposals: int | None = None
    stride: int | None = None
    float_ops: tuple = ()  # TFLite ops left in float by the integer modes

    def __post_init__(self):
        if self.resizer is None:
            from train.core.image_resizer import FixedShapeResizer
            self.resizer = FixedShapeResizer(self.image_size)

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.resizer.output_shape)

    @property
    def dynamic_anchors(self) -> bool:
        """True when ``predict`` returns the op's anchors (two-stage models)."""
        return self.meta_architecture != "ssd"

    def with_qat(self, qat) -> "ExportSource":
        """The same source predicting with ``qat`` (convert.qat.finetune's result: SSD, a QAT
        Keras model; two-stage, a copy of the detector holding QAT Keras parts)."""
        if self.dynamic_anchors:
            from convert import two_stage

            parts = two_stage.source_parts(qat, qat.export_spec(), self.nms)
            return replace(self, predict=parts["predict"], detect=parts["detect"],
                           model=qat, trackable=qat)
        return replace(self, predict=_predictor(qat, self.score_fn), trackable=qat)


def _predictor(keras_model, score_fn):
    from train.core.post_processing import convert_scores

    def predict(x):
        box_encodings, logits = keras_model(x, training=False)
        scores = convert_scores(logits, score_fn)  # [B, A, K] without background
        background = (tf.nn.softmax(logits)[..., :1] if score_fn == "softmax"
                      else tf.sigmoid(logits[..., :1]))
        return box_encodings, tf.concat([background, scores], axis=-1)
    return predict


def nms_graph(graph: str | None, use_regular_nms: bool, per_class: int, total: int) -> str:
    """The SSD export's NMS graph (postprocess_op.GRAPHS): ``graph`` if given, else "fused"
    for fast NMS (only the op has it), else "batched" -- or "per_class" when a class is capped
    below the total (one NMS over all classes cannot cap a class)."""
    if graph is None:
        return "fused" if not use_regular_nms else "batched" if per_class >= total else "per_class"
    if graph not in GRAPHS:
        raise ExportError(f"unknown --nms {graph!r}; choose from {', '.join(GRAPHS)}")
    if not use_regular_nms and graph != "fused":
        raise ExportError(f"--fast-nms is the fused op's; it does not go with --nms {graph}")
    if graph.startswith("batched") and per_class < total:
        raise ExportError(f"--nms {graph}: one NMS over all classes cannot cap a class at "
                          f"max_detections_per_class {per_class} < max_total_detections "
                          f"{total}; use --nms per_class")
    return graph


def nms_from_config(post, num_classes: int, scale_factors, use_regular_nms=True, graph=None):
    return NmsSettings(num_classes=num_classes, max_detections=post.max_total_detections,
                       detections_per_class=post.max_detections_per_class,
                       use_regular_nms=use_regular_nms, score_threshold=post.score_threshold,
                       iou_threshold=post.iou_threshold, scale_factors=tuple(scale_factors),
                       graph=nms_graph(graph, use_regular_nms, post.max_detections_per_class,
                                       post.max_total_detections))


def from_run(run_dir: str, checkpoint: str | None = None, use_regular_nms: bool = True,
             num_proposals: int | None = None, image_size: int | None = None,
             nms: str | None = None):
    """A ``python -m train fit`` run directory (latest checkpoint unless ``checkpoint``).
    ``num_proposals`` / ``image_size`` (two-stage: the shorter edge; the padded input scales
    with it): as ``train evaluate --num-proposals / --image-size``. ``nms``: SSD's NMS graph
    (see :func:`nms_graph`); two-stage models end in per-class built-in NMS."""
    import dataclasses

    from train.config import ConfigError
    from train.evaluate import load_run

    for name in ("config.yaml", "labels.json"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise ExportError(f"{run_dir}: no {name}; --run must be a `python -m train fit` "
                              "output directory")
    try:
        config, labels, model, ckpt = load_run(run_dir, checkpoint, num_proposals, image_size)
    except FileNotFoundError as e:
        raise ExportError(str(e)) from None
    except ConfigError as e:
        raise ExportError(f"{run_dir}/config.yaml: {e}") from None
    except ValueError as e:
        if image_size is not None and "rpn.py" in str(e):  # too small for the RPN's stride
            raise ExportError(f"--image-size {image_size}: {e}") from None
        raise ExportError(f"{checkpoint or run_dir}: the checkpoint does not match "
                          f"{run_dir}/config.yaml ({str(e).strip()[:300]})") from None
    except (AssertionError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise ExportError(f"{checkpoint or run_dir}: the checkpoint does not match "
                          f"{run_dir}/config.yaml ({first})") from None
    try:
        spec = model.export_spec()
    except NotImplementedError as e:
        raise ExportError(f"{run_dir}: {e}") from None
    provenance = {"run": os.path.abspath(run_dir), "checkpoint": os.path.abspath(ckpt),
                  "step": _step_of(ckpt)}
    if model.meta_architecture in ("faster_rcnn", "rfcn"):
        if nms not in (None, "per_class") or not use_regular_nms:
            flag = f"--nms {nms}" if use_regular_nms else "--fast-nms"
            raise ExportError(f"{flag}: {model.meta_architecture} exports end in per-class "
                              "built-in NMS (convert/two_stage.py)")
        return _two_stage_source(model, spec, labels, config, provenance)
    if model.meta_architecture != "ssd":
        raise ExportError(f"{run_dir}: the converter does not know meta-architecture "
                          f"{model.meta_architecture!r} (it exports ssd, faster_rcnn, rfcn)")
    keras_model, score_fn = spec["keras_model"], spec["score_fn"]
    settings = nms_from_config(spec["post_processing"], model.num_classes,
                               spec["box_coder_scales"], use_regular_nms, nms)

    def detect(x):
        box_encodings, logits = keras_model(x, training=False)
        out = model.postprocess({"box_encodings": box_encodings, "class_logits": logits})
        return {"boxes": out["boxes"], "classes": out["classes"] - 1, "scores": out["scores"],
                "num_detections": out["num_detections"]}

    return ExportSource(
        predict=_predictor(keras_model, score_fn), detect=detect,
        image_size=spec["image_size"], anchors=spec["anchors"], nms=settings, labels=labels,
        config=dataclasses.asdict(config.model), score_fn=score_fn,
        provenance=provenance, model=model, trackable=keras_model, train_config=config.train,
        float_ops=_float_ops(settings))


def _float_ops(nms: NmsSettings) -> tuple:
    """SSD: built-in NMS keeps its geometry float in the integer modes (the fused op takes
    the quantized inputs itself)."""
    from convert.builtin_nms import FLOAT_OPS

    return () if nms.graph == "fused" else FLOAT_OPS


def _two_stage_source(model, spec, labels, config, provenance) -> ExportSource:
    import dataclasses

    from convert import two_stage

    resizer = spec["image_resizer"]
    height, width = resizer.output_shape
    if height % spec["stride"] or width % spec["stride"]:
        raise ExportError(f"the padded input {height}x{width} is not divisible by the RPN's "
                          f"stride {spec['stride']}; choose an --image-size whose padded size "
                          f"(max_image_size scales with it) is a multiple of {spec['stride']}")
    nms = two_stage.nms_settings(spec, model.num_classes)
    parts = two_stage.source_parts(model, spec, nms)
    return ExportSource(
        predict=parts["predict"], detect=parts["detect"], image_size=resizer.min_dimension,
        anchors=spec["rpn_anchors"], nms=nms, labels=labels,
        config=dataclasses.asdict(config.model), score_fn="softmax", provenance=provenance,
        model=model, trackable=model, train_config=config.train,
        meta_architecture=model.meta_architecture, resizer=resizer,
        num_proposals=spec["num_proposals"], stride=spec["stride"],
        float_ops=two_stage.FLOAT_OPS)


def _step_of(ckpt: str):
    tail = os.path.basename(ckpt).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def from_saved_model(path: str, use_regular_nms: bool | None = None,
                     nms: str | None = None) -> ExportSource:
    """A SavedModel written by ``export_tflite.py --format saved_model`` (``nms``: as
    :func:`from_run`'s)."""
    asset = os.path.join(path, "assets", SAVEDMODEL_ASSET)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ExportError(f"{path}: no saved_model.pb; not a SavedModel directory")
    if not os.path.isfile(asset):
        raise ExportError(f"{path}: no assets/{SAVEDMODEL_ASSET}; only SavedModels written by "
                          "convert/export_tflite.py --format saved_model can be converted")
    with open(asset) as f:
        info = json.load(f)
    loaded = tf.saved_model.load(path)
    raw, serve = loaded.signatures["raw_predictions"], loaded.signatures["serving_default"]

    def predict(x):
        out = raw(image=x)
        return out["box_encodings"], out["class_predictions"]

    def detect(x):
        out = serve(image=x)
        return {"boxes": out["detection_boxes"], "classes": out["detection_classes"],
                "scores": out["detection_scores"], "num_detections": out["num_detections"]}

    settings = dict(info["nms"], scale_factors=tuple(info["nms"]["scale_factors"]))
    if use_regular_nms is not None:
        settings["use_regular_nms"] = use_regular_nms
    # the asset's graph (if any) is how an earlier export was made; this one takes ``nms``
    settings["graph"] = nms_graph(nms, settings["use_regular_nms"],
                                  settings["detections_per_class"], settings["max_detections"])
    settings = NmsSettings(**settings)
    return ExportSource(
        predict=predict, detect=detect, image_size=int(info["image_size"]),
        anchors=np.asarray(info["anchors_yxyx"], np.float32), nms=settings,
        float_ops=_float_ops(settings),
        labels=info["labels"], config=info["config"], score_fn=info["score_fn"],
        provenance={"saved_model": os.path.abspath(path), **info.get("provenance", {})},
        trackable=loaded)
