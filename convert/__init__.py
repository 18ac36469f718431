"""Frontier's converter: trained detectors -> TFLite (float32, float16, dynamic, int8, QAT) ending
in built-in NMS (or the fused ``TFLite_Detection_PostProcess`` op), or a SavedModel; every
model checked against TensorFlow. Entry point: ``python convert/export_tflite.py`` (also ``python -m convert``)."""
