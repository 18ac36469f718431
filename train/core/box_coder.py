"""Faster R-CNN box coder: boxes <-> offsets relative to anchors (also used by SSD / R-FCN).

Codes are ``(ty, tx, th, tw) = (sy*(yc-yca)/ha, sx*(xc-xca)/wa, sh*log(h/ha), sw*log(w/wa))``
with scale factors ``(sy, sx, sh, sw) = (10, 10, 5, 5)`` as in the TF Object Detection API
(the paper's Eq. 1 lists the same terms in x-first order).
"""
from __future__ import annotations

import tensorflow as tf

EPSILON = 1e-8  # keeps log / division finite for degenerate boxes (TF OD API does the same)


def _center_size(boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymin + ymax) / 2.0, (xmin + xmax) / 2.0, ymax - ymin, xmax - xmin


class FasterRcnnBoxCoder:
    """Encode/decode normalised ``[ymin, xmin, ymax, xmax]`` boxes against anchors."""

    code_size = 4

    def __init__(self, scale_factors=(10.0, 10.0, 5.0, 5.0)):
        if scale_factors is not None and len(scale_factors) != 4:
            raise ValueError(f"box_coder.py: scale_factors must have 4 values, got {scale_factors}")
        self.scale_factors = tuple(float(s) for s in (scale_factors or (1.0, 1.0, 1.0, 1.0)))

    def encode(self, boxes, anchors):
        """Codes ``[N, 4]`` float32 of ``boxes [N, 4]`` relative to ``anchors [N, 4]``."""
        yc, xc, h, w = _center_size(tf.convert_to_tensor(boxes, tf.float32))
        yca, xca, ha, wa = _center_size(tf.convert_to_tensor(anchors, tf.float32))
        ha, wa, h, w = ha + EPSILON, wa + EPSILON, h + EPSILON, w + EPSILON
        sy, sx, sh, sw = self.scale_factors
        return tf.stack([sy * (yc - yca) / ha, sx * (xc - xca) / wa,
                         sh * tf.math.log(h / ha), sw * tf.math.log(w / wa)], axis=-1)

    def decode(self, rel_codes, anchors):
        """Boxes ``[..., N, 4]`` from codes ``[..., N, 4]`` and ``anchors [N, 4]`` (broadcast)."""
        codes = tf.convert_to_tensor(rel_codes, tf.float32)
        yca, xca, ha, wa = _center_size(tf.convert_to_tensor(anchors, tf.float32))
        ty, tx, th, tw = tf.unstack(codes, axis=-1)
        sy, sx, sh, sw = self.scale_factors
        yc, xc = ty / sy * ha + yca, tx / sx * wa + xca
        h, w = tf.exp(th / sh) * ha, tf.exp(tw / sw) * wa
        return tf.stack([yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0], axis=-1)
