"""Quantization-aware training with tensorflow-model-optimization, then int8 conversion.

Every layer tfmot's default 8-bit scheme supports is annotated (batch norm too: tfmot folds it
into the preceding convolution); any other layer is listed and left in float rather than
crashing the export. The quantized model is fine-tuned with the detector's own loss (Eq. 1)
on the training data for a few hundred steps, so its fake-quant ranges and weights settle.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras.src.saving.serialization_lib import SafeModeScope

log = logging.getLogger(__name__)


def quantize_annotate(keras_model, per_tensor: bool = False):
    """Returns ``(qat_model, skipped)``; ``skipped`` lists ``"name (Type)"`` left in float.
    ``per_tensor``: one weight scale per tensor (matches ``--granularity per-tensor``)."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry, default_8bit_quantize_scheme)

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    skipped = []

    def annotate(layer):
        if registry.supports(layer) or isinstance(layer, keras.layers.BatchNormalization):
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        skipped.append(f"{layer.name} ({type(layer).__name__})")
        return layer

    annotated = keras.models.clone_model(keras_model, clone_function=annotate)
    # quantize_apply rebuilds the model from its config: custom layer classes must be known and
    # Lambda layers allowed (the model is our own, in memory, not an untrusted file).
    custom = {type(layer).__name__: type(layer) for layer in keras_model.layers}
    with tfmot.quantization.keras.quantize_scope(custom), SafeModeScope(False):
        scheme = default_8bit_quantize_scheme.Default8BitQuantizeScheme(
            disable_per_axis=per_tensor)
        qat_model = tfmot.quantization.keras.quantize_apply(annotated, scheme=scheme)
    if skipped:
        log.warning("QAT: %d layer(s) tfmot cannot quantize stay float: %s", len(skipped),
                    ", ".join(skipped))
    return qat_model, skipped


def calibrate_ranges(run, batches) -> int:
    """Sets the activation ranges from data before fine-tuning.

    tfmot starts every activation range at [-6, 6] and moves it with a 0.999 moving average,
    which takes thousands of steps to forget; a few hundred fine-tuning steps then train with
    ranges that waste most of the 256 levels (AP 0.06 instead of 0.16 on the demo model). Here
    the first batch sets each range exactly (decay 0) and the next ones average in (0.9).
    ``run``: called eagerly on each of ``batches`` (runs the QAT model in training mode).
    Returns the number of batches used.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize
    decay = {"value": 0.0}

    def calibrating(*args, **kwargs):
        kwargs["ema_decay"] = decay["value"]
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = calibrating
    count = 0
    try:
        for images in batches:
            run(images)  # eager: each call runs the patched op
            decay["value"] = 0.9
            count += 1
    finally:
        quant_ops.MovingAvgQuantize = original
    return count


def _detached_copy(module):
    """A shallow copy of a tf.Module with its own checkpoint-tracking state: a plain
    ``copy.copy`` shares those lists, so attributes set on the copy would become the
    original's checkpoint dependencies too."""
    clone = copy.copy(module)
    state = vars(clone)
    for key in [k for k in state if k.startswith("_self_")]:  # re-created on first use
        del state[key]
    return clone


def two_stage_qat_model(model, per_tensor: bool = False):
    """A shallow copy of the Faster R-CNN / R-FCN ``model`` whose Keras parts (the first
    stage; Faster R-CNN's box classifier) are QAT-annotated; the proposals, crops and NMS
    between them are plain TensorFlow ops and stay float (as in the int8 export). Returns
    ``(qat_model, skipped)``."""
    qat = _detached_copy(model)
    qat.first_stage, skipped = quantize_annotate(model.first_stage, per_tensor)
    qat.keras_models = {"first_stage": qat.first_stage}
    if "second_stage" in model.keras_models:
        qat.box_classifier = copy.copy(model.box_classifier)
        qat.box_classifier.keras_model, more = quantize_annotate(
            model.box_classifier.keras_model, per_tensor)
        qat.keras_models["second_stage"] = qat.box_classifier.keras_model
        skipped += more
    qat.nms = dict(model.nms)
    return qat, skipped


def finetune(source, data: str, steps: int, *, batch_size: int = 32,
             learning_rate: float = 3e-4, per_tensor: bool = False, seed: int = 0,
             calibration_batches: int = 8, progress: bool = True):
    """QAT-annotates ``source.model`` and fine-tunes it for ``steps`` on ``data`` (train split).

    Returns ``(qat, info)``: SSD, the QAT Keras model; two-stage models, a copy of the
    detector holding QAT Keras parts (:func:`two_stage_qat_model`). ``info`` has the skipped
    layers, steps, losses and wall time.
    """
    from tqdm import tqdm

    from train.data import load_dataset
    from train.data.pipeline import cache_images, train_dataset

    model, tc = source.model, source.train_config
    if source.dynamic_anchors:  # two-stage: the detector's own contract, QAT parts inside
        qat, skipped = two_stage_qat_model(model, per_tensor)
        variables = qat.trainable_variables

        def forward(images, targets, sample):
            out = qat.predict(images, targets["windows"], targets if sample else None,
                              training=True)
            return out, (qat.loss(out, targets) if sample else None)
    else:
        qat, skipped = quantize_annotate(model.export_spec()["keras_model"], per_tensor)
        variables = qat.trainable_variables

        def forward(images, targets, sample):
            box_encodings, logits = qat(model.preprocess(images), training=True)
            return None, (model.loss({"box_encodings": box_encodings, "class_logits": logits},
                                     targets) if sample else None)
    info = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
            "skipped_layers": skipped, "data": data}
    dataset = load_dataset(data, "train")
    need = (max(steps, 0) + calibration_batches) * batch_size
    if len(dataset) > need:  # a short fine-tune sees at most `need` images: decode only those
        keep = np.sort(np.random.default_rng(seed).choice(len(dataset), need, replace=False))
        dataset = dataclasses.replace(dataset, examples=[dataset.examples[i] for i in keep])
    info["train_images"] = len(dataset)
    cache = cache_images(dataset, model.image_resizer, tc.max_cache_gb, progress=progress)
    ds = train_dataset(cache, model, batch_size=batch_size, augment_config=tc.augment,
                       seed=seed, start_step=0)
    info["calibration_batches"] = calibrate_ranges(
        lambda batch: forward(*batch, sample=False), ds.take(calibration_batches))
    if steps <= 0:
        return qat, info
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.1)
    optimizer = keras.optimizers.Adam(schedule)
    keras_parts = list(qat.keras_models.values()) if source.dynamic_anchors else [qat]

    @tf.function
    def step(images, targets):
        with tf.GradientTape() as tape:
            _, losses = forward(images, targets, sample=True)
            extra = [l for m in keras_parts for l in m.losses]  # weight decay
            total = losses["total"] + (tf.add_n(extra) if extra else 0.0)
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return total

    t0, history = time.time(), []
    bar = tqdm(total=steps, desc="QAT fine-tuning", unit="step", disable=not progress)
    for i, (images, targets) in enumerate(ds.take(steps)):
        loss = float(step(images, targets))
        bar.update(1)
        if (i + 1) % 25 == 0 or i + 1 == steps:
            bar.set_postfix(loss=f"{loss:.3f}")
            history.append({"step": i + 1, "loss": loss})
    bar.close()
    info.update(history=history, wall_seconds=time.time() - t0)
    return qat, info
