"""The detector contract: what every meta-architecture (SSD, Faster R-CNN, R-FCN) provides.

The trainer, the evaluator, ``package``, the converter and the benchmarks talk to this
interface only, never to one model's internals (in the spirit of the TF Object Detection API's
``core/model.py`` and torchvision's ``GeneralizedRCNN``).

Shape shorthand: B images, H x W the fixed (padded) input, G padded ground-truth boxes,
K classes (labels 1..K, 0 = background), N detections.

Data flow::

    input pipeline:  image -> image_resizer -> images [B, H, W, 3] float32 0..255,
                     windows [B, 2] (true image height, width as fractions of H, W)
                     ground truth -> assign_targets(boxes, labels) per image -> targets
    training:        predict(images, windows, targets, training=True) -> predictions
                     loss(predictions, targets) -> {"total", ...}; + regularization_loss()
    inference:       detect(images, windows) = postprocess(predict(images, windows), windows)

Boxes are normalised ``(ymin, xmin, ymax, xmax)``: in the pipeline and in ``predict`` relative
to the padded input, in ``postprocess``'s output relative to the true image.
"""
from __future__ import annotations

import tensorflow as tf


class DetectionModel(tf.Module):
    """Base class of the meta-architectures. Subclasses set, in ``__init__``:

    * ``extractor`` -- the FeatureExtractor; ``num_classes`` -- K;
    * ``image_resizer`` -- a :mod:`train.core.image_resizer` resizer (its ``output_shape`` is
      ``(H, W)``);
    * ``keras_models`` -- ``{name: keras.Model}``: everything trainable. This is exactly what is
      checkpointed (``tf.train.Checkpoint(**keras_models)``; SSD's single entry is ``model``,
      which keeps old SSD checkpoints loading).
    """

    meta_architecture: str = ""
    extractor = None
    num_classes: int = 0
    image_resizer = None
    keras_models: dict = {}

    # --- the input -------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the images ``predict`` takes."""
        return self.image_resizer.output_shape

    def preprocess(self, images):
        """``images [B, H, W, 3]`` float32 0..255 -> the extractor's normalised input."""
        return self.extractor.preprocess(images)

    def assign_targets(self, boxes, labels) -> dict:
        """One image's ground truth (``boxes [g, 4]`` normalised to the padded input, ``labels
        [g]`` int32 in 1..K, g dynamic, possibly 0) -> a dict of fixed-shape tensors that the
        input pipeline batches and ``loss`` (and, for two-stage models, ``predict``) reads."""
        raise NotImplementedError

    # --- the model -------------------------------------------------------------------------
    def predict(self, images, windows=None, targets=None, training: bool = False) -> dict:
        """Raw predictions (a dict of tensors). ``targets`` (the batched ``assign_targets``
        output) is given during training: a two-stage model samples its second-stage
        proposals against the ground truth. ``windows [B, 2]``: None means the whole input."""
        raise NotImplementedError

    def loss(self, predictions: dict, targets: dict) -> dict:
        """Scalar losses: ``"total"`` (weighted sum, without regularisation) and its terms."""
        raise NotImplementedError

    def regularization_loss(self):
        """Sum of the weight-decay losses of every Keras model (scalar)."""
        losses = [l for m in self.keras_models.values() for l in m.losses]
        return tf.add_n(losses) if losses else tf.constant(0.0)

    def postprocess(self, predictions: dict, windows=None) -> dict:
        """Detections: ``boxes [B, N, 4]`` normalised to the TRUE image and clipped to it,
        ``scores [B, N]``, ``classes [B, N]`` int32 in 1..K, ``num_detections [B]`` int32;
        entries past ``num_detections`` are zero. Boxes of zero area after clipping are dropped."""
        raise NotImplementedError

    def detect(self, images, windows=None) -> dict:
        """``images [B, H, W, 3]`` float32 0..255 -> ``postprocess`` output."""
        return self.postprocess(self.predict(images, windows, training=False), windows)

    # --- what outlives the process ---------------------------------------------------------
    @property
    def trainable_variables(self):
        return [v for m in self.keras_models.values() for v in m.trainable_variables]

    def count_params(self) -> int:
        return int(sum(m.count_params() for m in self.keras_models.values()))

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """A ``tf.train.Checkpoint`` of the model's weights (plus ``extra``, e.g. optimizer)."""
        return tf.train.Checkpoint(**self.keras_models, **extra)

    def backbone_layer_names(self) -> set[str]:
        """Names of the Keras layers that belong to the feature extractor (``init_scope:
        backbone`` restores only these)."""
        raise NotImplementedError

    def export_spec(self) -> dict:
        """What the TFLite exporter (convert/sources.py) needs. SSD (ssd.py): its Keras model
        and anchors, exported with the fused ``TFLite_Detection_PostProcess`` op
        (convert/export_tflite.py); Faster R-CNN and R-FCN (two_stage.py): the preprocessed
        predict function, RPN anchors and NMS settings, exported with built-in ops only
        (convert/two_stage.py). A new meta-architecture must provide its own to be exported."""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.meta_architecture or 'no meta_architecture'}) has "
            "no export_spec: the converter exports ssd, faster_rcnn and rfcn models")

