"""Frontier's edge runtime: runs exported ``.tflite`` detectors without TensorFlow.

Only LiteRT (ai-edge-litert; tflite-runtime as a fallback), numpy, OpenCV and pycocotools are
needed, so this package is what goes onto a Raspberry Pi or a phone-class board. No module here
imports TensorFlow at import time (``tf.lite`` is only the last-resort interpreter).
"""
from edge_runtime.detector import Detections, Detector
from edge_runtime.interpreter import make_interpreter

__all__ = ["Detections", "Detector", "make_interpreter"]
