"""What Faster R-CNN and R-FCN share: RPN -> fixed number of proposals -> per-proposal box
classifier -> per-class NMS (paper Sec. 2.1, Fig. 1b/c). The two differ only in the second
stage's features and box classifier, which they pass in.

Shape shorthand: B images, H x W the padded input, A anchors, N proposals (``max_proposals``;
S sampled ones when training), K classes, K' = K (per-class boxes) or 1 (class-agnostic).

    images -> first_stage (Keras): rpn_box_encodings [B, A, 4], rpn_objectness_logits [B, A, 2]
                                   + the second stage's feature maps
           -> rpn.proposals: boxes [B, N, 4] (sorted, NMS'd, padded), num_proposals [B]
    train:    proposal_sampler: S of them per image, with class and box targets
           -> box_classifier(features, boxes): class_logits [B, N|S, K+1],
              refined_box_encodings [B, N|S, K', 4] (against the proposal)
    loss:     rpn (2 x localization + 1 x objectness) + box classifier (2 x loc + 1 x class);
              loc = Smooth L1 of the codes (+ 1 - IoU of the decoded boxes: smooth_l1+iou)
    infer:    decode per class, scores softmax -> class-aware NMS (IoU 0.6), clipped
"""
from __future__ import annotations

import tensorflow as tf

from train.config import LOCALIZATION_LOSSES
from train.core import losses, post_processing
from train.core.box_coder import FasterRcnnBoxCoder
from train.meta_architectures.base import DetectionModel


class TwoStageDetector(DetectionModel):
    """A two-stage detector composed of the pieces above (see the module docstring).

    ``first_stage``: Keras model, preprocessed images -> dict with ``rpn_box_encodings``,
    ``rpn_objectness_logits`` and whatever ``box_classifier`` reads. ``box_classifier``:
    callable ``(first_stage outputs, boxes [B, n, 4], training) -> (class_logits [B, n, K+1],
    box_encodings [B, n, K', 4])`` with a ``keras_model`` attribute (None if it has no weights).
    """

    def __init__(self, *, extractor, num_classes: int, image_resizer, first_stage, rpn,
                 box_classifier, proposal_sampler, backbone_layers=(),
                 box_coder: FasterRcnnBoxCoder | None = None, localization_weight: float = 2.0,
                 classification_weight: float = 1.0, localization_loss: str = "smooth_l1",
                 iou_threshold: float = 0.6,
                 score_threshold: float = 0.0, max_detections_per_class: int = 100,
                 max_total_detections: int = 100, name: str | None = None):
        super().__init__(name=name or self.meta_architecture)
        self.extractor, self.num_classes = extractor, num_classes
        self.image_resizer = image_resizer
        self.first_stage, self.rpn, self.box_classifier = first_stage, rpn, box_classifier
        self.proposal_sampler = proposal_sampler
        self.box_coder = box_coder or FasterRcnnBoxCoder()
        self.localization_weight = localization_weight
        self.classification_weight = classification_weight
        if localization_loss not in LOCALIZATION_LOSSES:
            raise ValueError(f"localization_loss must be one of {LOCALIZATION_LOSSES}, got "
                             f"{localization_loss!r}")
        self.localization_loss = localization_loss
        self.nms = {"iou_threshold": iou_threshold, "score_threshold": score_threshold,
                    "max_detections_per_class": max_detections_per_class,
                    "max_total_detections": max_total_detections}
        self._backbone_layers = frozenset(backbone_layers)
        self.keras_models = {"first_stage": first_stage}
        if getattr(box_classifier, "keras_model", None) is not None:
            self.keras_models["second_stage"] = box_classifier.keras_model

    @property
    def max_proposals(self) -> int:
        return self.rpn.max_proposals

    def assign_targets(self, boxes, labels) -> dict:
        return self.rpn.assign_targets(boxes, labels)

    def predict(self, images, windows=None, targets=None, training=False) -> dict:
        return self.predict_preprocessed(self.preprocess(images), windows, targets, training)

    def predict_preprocessed(self, x, windows=None, targets=None, training=False) -> dict:
        """``predict`` of images already through ``preprocess`` (what an exporter feeds)."""
        out = self.first_stage(x, training=training)
        proposals = self.rpn.proposals(out["rpn_box_encodings"], out["rpn_objectness_logits"],
                                       windows)
        predictions = {"rpn_box_encodings": out["rpn_box_encodings"],
                       "rpn_objectness_logits": out["rpn_objectness_logits"],
                       "proposals": proposals["boxes"], "proposal_scores": proposals["scores"],
                       "num_proposals": proposals["num_proposals"]}
        boxes = proposals["boxes"]
        if targets is not None:
            sampled = self.proposal_sampler.sample(
                boxes, proposals["num_proposals"], targets["gt_boxes"], targets["gt_labels"],
                targets["num_gt"])
            predictions["sampled"] = sampled
            boxes = sampled["boxes"]
        class_logits, box_encodings = self.box_classifier(out, boxes, training)
        predictions.update(box_classifier_boxes=boxes, class_logits=class_logits,
                           refined_box_encodings=box_encodings)
        return predictions

    def propose(self, images, windows=None) -> dict:
        """The first stage alone (what an ensemble unions, paper Sec. 4.2): ``images [B, H, W,
        3]`` 0..255 -> ``state`` (what :meth:`classify` reads), ``proposals [B, N, 4]``
        normalised to the padded input, ``num_proposals [B]``."""
        out = self.first_stage(self.preprocess(images), training=False)
        p = self.rpn.proposals(out["rpn_box_encodings"], out["rpn_objectness_logits"], windows)
        return {"state": out, "proposals": p["boxes"], "num_proposals": p["num_proposals"]}

    def classify(self, state, boxes) -> dict:
        """The second stage on any boxes: ``state`` of :meth:`propose`, ``boxes [B, n, 4]``
        (padded input) -> ``scores [B, n, K]`` (softmax, background dropped) and ``boxes
        [B, n, K, 4]`` refined per class (a class-agnostic refinement repeated K times)."""
        logits, encodings = self.box_classifier(state, boxes, False)
        decoded = self.box_coder.decode(encodings, tf.convert_to_tensor(boxes)[:, :, None, :])
        if decoded.shape[2] == 1:
            decoded = tf.repeat(decoded, self.num_classes, axis=2)
        return {"scores": tf.nn.softmax(logits)[..., 1:], "boxes": decoded}

    def loss(self, predictions, targets) -> dict:
        out = self.rpn.loss(predictions["rpn_box_encodings"],
                            predictions["rpn_objectness_logits"], targets)
        s = predictions["sampled"]
        weight, cls_t = s["weights"], s["cls_targets"]
        norm = tf.maximum(tf.reduce_sum(weight), 1.0)
        classification = losses.softmax_cross_entropy(predictions["class_logits"], cls_t)
        enc = predictions["refined_box_encodings"]  # [B, S, K', 4]: the target class's box
        index = tf.maximum(cls_t - 1, 0) if enc.shape[2] > 1 else tf.zeros_like(cls_t)
        enc = tf.gather(enc, index[..., None], batch_dims=2)[:, :, 0]
        positive = weight * tf.cast(cls_t > 0, tf.float32)
        localization = self.box_localization_loss(enc, s["reg_targets"], s["boxes"]) * positive
        out["box_classifier_localization"] = tf.reduce_sum(localization) / norm
        out["box_classifier_classification"] = tf.reduce_sum(classification * weight) / norm
        out["total"] = (self.rpn.localization_weight * out["rpn_localization"]
                        + self.rpn.objectness_weight * out["rpn_objectness"]
                        + self.localization_weight * out["box_classifier_localization"]
                        + self.classification_weight * out["box_classifier_classification"])
        return out

    def box_localization_loss(self, encodings, targets, proposals):
        """Per proposal: ``encodings [B, S, 4]`` of the target class against ``proposals
        [B, S, 4]``, ``targets [B, S, 4]`` codes -> ``[B, S]``: Smooth L1 of the codes, plus
        ``1 - IoU`` of the two decoded boxes with ``smooth_l1+iou``."""
        loss = losses.smooth_l1(encodings, targets)
        if self.localization_loss == "smooth_l1+iou":
            loss += losses.iou_loss(self.box_coder.decode(encodings, proposals),
                                    self.box_coder.decode(targets, proposals))
        return loss

    def postprocess(self, predictions, windows=None) -> dict:
        proposals = predictions["box_classifier_boxes"]
        n = int(proposals.shape[1])
        valid = tf.range(n)[None, :] < predictions["num_proposals"][:, None]
        scores = tf.nn.softmax(predictions["class_logits"])[..., 1:]
        scores = scores * tf.cast(valid, tf.float32)[..., None]  # padding proposals find nothing
        boxes = self.box_coder.decode(predictions["refined_box_encodings"],
                                      proposals[:, :, None, :])  # [B, N, K', 4]
        if windows is not None:  # IoU is unchanged by the per-axis scaling
            scale = tf.tile(tf.convert_to_tensor(windows, tf.float32), [1, 2])
            boxes = boxes / scale[:, None, None, :]
        if boxes.shape[2] == 1:
            boxes = boxes[:, :, 0]
        return post_processing.batch_multiclass_nms(boxes, scores, **self.nms)

    def backbone_layer_names(self) -> set[str]:
        return set(self._backbone_layers)

    def export_spec(self) -> dict:
        """For the TFLite exporter (convert/two_stage.py): ``predict_preprocessed``, the
        ``image_resizer``, ``box_coder_scales``, ``score_fn``, the second stage's NMS settings
        (``nms``), ``num_proposals`` and the RPN's ``stride`` and ``rpn_anchors [A, 4]``."""
        return {"predict_preprocessed": self.predict_preprocessed,
                "image_resizer": self.image_resizer,
                "box_coder_scales": tuple(self.box_coder.scale_factors), "score_fn": "softmax",
                "nms": dict(self.nms), "num_proposals": self.max_proposals,
                "stride": self.rpn.stride, "rpn_anchors": self.rpn.anchors_np}
