"""SSD meta-architecture (Liu et al. 2016 as configured by Huang et al. 2017, Sec. 2.1, 3).

A short composition of interchangeable pieces::

    images -> extractor.preprocess -> backbone endpoints (stride 16, 32)
           -> ssd_feature_maps (+ extra layers halving resolution, batch norm in each)
           -> convolutional box predictor (box encodings, class logits per anchor)
    training:  anchors + argmax matcher + Faster R-CNN box coder -> targets;
               loss = alpha * smooth-L1 (positives) + beta * classification (hard-mined 3:1)
    inference: decode with anchors -> scores -> class-aware NMS (IoU 0.6), boxes clipped
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from train.config import LossConfig, PostProcessConfig
from train.core import anchors as anchor_lib
from train.core import losses, post_processing, target_assigner
from train.core.box_coder import FasterRcnnBoxCoder
from train.core.box_predictor import convolutional_box_predictor
from train.core.image_resizer import FixedShapeResizer
from train.core.matcher import ArgMaxMatcher
from train.core.sampler import hard_negative_mining
from train.feature_extractors.ssd_layers import ssd_feature_maps
from train.meta_architectures.base import DetectionModel


class SSD(DetectionModel):
    """Single Shot Detector (the contract is in base.py).

      * input images: float32 ``[B, M, M, 3]`` RGB in 0..255 (stretched to M x M: windows are
        the whole input and ignored);
      * :meth:`predict` -> ``box_encodings [B, A, 4]`` (ty, tx, th, tw w.r.t. the anchors),
        ``class_logits [B, A, K+1]`` (column 0 = background);
      * :meth:`assign_targets` -> per-anchor ``cls_targets [A]``, ``reg_targets [A, 4]``,
        ``reg_weights [A]``, ``cls_weights [A]`` (run in the input pipeline).
    """

    meta_architecture = "ssd"

    def __init__(self, *, extractor, num_classes: int, image_size: int = 300,
                 extra_depths=(512, 256, 256, 128), use_depthwise: bool = False,
                 head_kernel_size: int = 3, anchor_kwargs: dict | None = None,
                 matcher: ArgMaxMatcher | None = None, box_coder: FasterRcnnBoxCoder | None = None,
                 loss_config=None, post_config=None, name: str = "ssd"):
        super().__init__(name=name)
        self.extractor = extractor
        self.num_classes = num_classes
        self.image_size = image_size
        self.image_resizer = FixedShapeResizer(image_size)
        self.matcher = matcher or ArgMaxMatcher(0.5, 0.5)
        self.box_coder = box_coder or FasterRcnnBoxCoder()
        self.loss_config = loss_config or LossConfig()
        self.post_config = post_config or PostProcessConfig()
        anchor_kwargs = dict(anchor_kwargs or {})

        backbone = extractor.backbone((image_size, image_size, 3))
        self._backbone_layers = frozenset(l.name for l in backbone.layers)
        features = backbone.output  # dict {endpoint: tensor}; used directly keeps the model flat
        fmaps = ssd_feature_maps(features, extractor, extra_depths=tuple(extra_depths),
                                 batchnorm_momentum=extractor.batchnorm_momentum,
                                 weight_decay=extractor.weight_decay, use_depthwise=use_depthwise)
        self.feature_map_sizes = tuple((int(f.shape[1]), int(f.shape[2])) for f in fmaps)
        per_location = anchor_lib.ssd_num_anchors_per_location(
            len(fmaps), **{k: v for k, v in anchor_kwargs.items()
                           if k in ("aspect_ratios", "interpolated_scale_aspect_ratio",
                                    "reduce_boxes_in_lowest_layer")})
        box_enc, logits = convolutional_box_predictor(
            fmaps, per_location, num_classes, loss=self.loss_config.classification,
            kernel_size=head_kernel_size, use_depthwise=use_depthwise,
            weight_decay=extractor.weight_decay, batchnorm_momentum=extractor.batchnorm_momentum)
        # One flat Keras model (no nested models), so tfmot can annotate every layer for QAT.
        self.keras_model = keras.Model(backbone.inputs, [box_enc, logits], name=f"{name}_predictor")
        self.keras_models = {"model": self.keras_model}
        anchors = anchor_lib.ssd_anchors(self.feature_map_sizes, **anchor_kwargs)
        self.anchors_np = anchors
        self.anchors = tf.constant(anchors, tf.float32)
        if anchors.shape[0] != int(box_enc.shape[1]):
            raise ValueError(f"{anchors.shape[0]} anchors but the heads predict {box_enc.shape[1]}")

    @property
    def num_anchors(self) -> int:
        return int(self.anchors_np.shape[0])

    def predict(self, images, windows=None, targets=None, training: bool = False) -> dict:
        """images float32 [B, M, M, 3] in 0..255 -> raw predictions (see class docstring)."""
        box_enc, logits = self.keras_model(self.preprocess(images), training=training)
        return {"box_encodings": box_enc, "class_logits": logits}

    def assign_targets(self, boxes, labels) -> dict:
        """One image: boxes [G, 4] normalised, labels [G] int32 1..K -> per-anchor targets [A, ...]."""
        return target_assigner.assign_targets(self.anchors, boxes, labels, self.matcher,
                                              self.box_coder)

    def loss(self, predictions: dict, targets: dict) -> dict:
        """Eq. 1: alpha * localization + beta * classification, normalised by #positives.

        targets: cls_targets [B, A] int32, reg_targets [B, A, 4], reg_weights [B, A],
        cls_weights [B, A] (0 = ignored anchor). Returns scalar losses.
        """
        cfg = self.loss_config
        reg_w = tf.cast(targets["reg_weights"], tf.float32)
        cls_w = tf.cast(targets["cls_weights"], tf.float32)
        cls_t = targets["cls_targets"]
        num_pos = tf.maximum(tf.reduce_sum(reg_w), 1.0)

        loc = losses.smooth_l1(predictions["box_encodings"], targets["reg_targets"]) * reg_w
        logits = predictions["class_logits"]
        if cfg.classification == "softmax":
            cls = losses.softmax_cross_entropy(logits, cls_t)
        elif cfg.classification == "sigmoid":
            cls = losses.sigmoid_cross_entropy(logits, cls_t)
        elif cfg.classification == "focal":
            cls = losses.sigmoid_focal_loss(logits, cls_t, cfg.focal_alpha, cfg.focal_gamma)
        else:
            raise ValueError(f"unknown classification loss {cfg.classification!r}")
        cls = cls * cls_w
        if cfg.hard_negative_ratio > 0 and cfg.classification != "focal":
            negatives = tf.logical_and(tf.equal(cls_t, 0), cls_w > 0)
            selected = hard_negative_mining(tf.stop_gradient(cls), reg_w > 0, negatives,
                                            cfg.hard_negative_ratio, cfg.min_negatives)
            cls = cls * tf.cast(selected, cls.dtype)
        localization = tf.reduce_sum(loc) / num_pos
        classification = tf.reduce_sum(cls) / num_pos
        return {"localization": localization, "classification": classification,
                "total": cfg.localization_weight * localization
                + cfg.classification_weight * classification}

    def score_fn(self) -> str:
        return "softmax" if self.loss_config.classification == "softmax" else "sigmoid"

    def postprocess(self, predictions: dict, windows=None) -> dict:
        """Decodes boxes, converts scores and runs class-aware NMS (see class docstring)."""
        boxes = self.box_coder.decode(predictions["box_encodings"], self.anchors)
        scores = post_processing.convert_scores(predictions["class_logits"], self.score_fn())
        p = self.post_config
        return post_processing.batch_multiclass_nms(
            boxes, scores, iou_threshold=p.iou_threshold, score_threshold=p.score_threshold,
            max_detections_per_class=p.max_detections_per_class,
            max_total_detections=p.max_total_detections)

    def backbone_layer_names(self) -> set[str]:
        return set(self._backbone_layers)

    def export_spec(self) -> dict:
        """For the TFLite exporter: ``keras_model`` (normalised images -> box encodings, class
        logits), ``anchors [A, 4]``, ``box_coder_scales``, ``score_fn``, ``post_processing``
        (a PostProcessConfig) and ``image_size`` M."""
        return {"keras_model": self.keras_model, "anchors": self.anchors_np,
                "box_coder_scales": self.box_coder.scale_factors, "score_fn": self.score_fn(),
                "post_processing": self.post_config, "image_size": self.image_size}
