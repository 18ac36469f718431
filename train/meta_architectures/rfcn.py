"""R-FCN (Dai et al. 2016) as configured by Huang et al. 2017 (Sec. 2.1, Fig. 1c).

    images -> the WHOLE extractor at the RPN's stride (atrous after it, so no map is coarser
              than 16) -> RPN on ``rpn_endpoint`` -> N proposals
           -> from the last map: 1x1 conv, then k*k*(K+1) position-sensitive score maps and
              k*k*4 box maps
           -> position-sensitive crop of each proposal (bin (i, j) from its own maps), average
              vote -> class logits [K+1] and one class-agnostic box

Per-region work is a crop and a mean: all the computation is shared across proposals, which is
why R-FCN's time hardly depends on the number of proposals (paper Fig. 6).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from train.core.spatial_transform import position_sensitive_crop
from train.feature_extractors.base import kernel_regularizer
from train.meta_architectures.two_stage import TwoStageDetector


class PositionSensitiveBoxClassifier:
    """Second stage without weights: position-sensitive crops of the first stage's maps."""

    keras_model = None

    def __init__(self, *, num_bins: int = 3, crop_size: int = 9):
        if crop_size % num_bins:
            raise ValueError(f"rfcn.py: crop_size {crop_size} is not a multiple of num_bins "
                             f"{num_bins}")
        self.num_bins, self.crop_size = num_bins, crop_size

    def __call__(self, first_stage_outputs, boxes, training=False):
        """-> ``class_logits [B, n, K+1]``, ``box_encodings [B, n, 1, 4]``."""
        bins, crop = (self.num_bins,) * 2, (self.crop_size,) * 2
        logits = position_sensitive_crop(first_stage_outputs["class_maps"], boxes, bins, crop)
        encodings = position_sensitive_crop(first_stage_outputs["box_maps"], boxes, bins, crop)
        return logits, encodings[:, :, None, :]


class RFCN(TwoStageDetector):
    meta_architecture = "rfcn"

    def __init__(self, *, extractor, num_classes: int, image_resizer, rpn, depth: int = 1024,
                 num_bins: int = 3, crop_size: int = 9, **two_stage):
        """``rpn``: a RegionProposalNetwork for ``image_resizer.output_shape``; ``two_stage``:
        the TwoStageDetector keyword arguments (proposal_sampler, loss weights, NMS)."""
        height, width = image_resizer.output_shape
        rpn_map = extractor.rpn_endpoint
        last = max(extractor.endpoints, key=extractor.endpoints.get)  # the topmost map
        backbone = extractor.backbone((height, width, 3), endpoints=[rpn_map, last],
                                      output_stride=extractor.stride(rpn_map))
        box_encodings, objectness = rpn.head(backbone.output[rpn_map], extractor.weight_decay)
        reg = kernel_regularizer(extractor.weight_decay)
        x = layers.Conv2D(depth, 1, activation="relu", kernel_regularizer=reg,
                          name="RfcnBoxPredictor/conv")(backbone.output[last])
        k2 = num_bins * num_bins
        init = lambda: keras.initializers.RandomNormal(stddev=0.01)  # noqa: E731
        class_maps = layers.Conv2D(k2 * (num_classes + 1), 1, kernel_regularizer=reg,
                                   kernel_initializer=init(), name="RfcnBoxPredictor/ClassMaps")(x)
        box_maps = layers.Conv2D(k2 * 4, 1, kernel_regularizer=reg, kernel_initializer=init(),
                                 name="RfcnBoxPredictor/BoxMaps")(x)
        first_stage = keras.Model(backbone.inputs, {
            "rpn_box_encodings": box_encodings, "rpn_objectness_logits": objectness,
            "class_maps": class_maps, "box_maps": box_maps}, name="first_stage")
        super().__init__(extractor=extractor, num_classes=num_classes,
                         image_resizer=image_resizer, first_stage=first_stage, rpn=rpn,
                         box_classifier=PositionSensitiveBoxClassifier(num_bins=num_bins,
                                                                       crop_size=crop_size),
                         backbone_layers={l.name for l in backbone.layers}, **two_stage)
