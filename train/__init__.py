"""Frontier training: models, data, training and COCO evaluation (needs TensorFlow).

Legacy Keras (``tf_keras``) is used throughout: Keras 3 models exported through
``tf.saved_model`` to TFLite give NaN silently and tfmot's QAT refuses them. The
environment variable must be set before TensorFlow is first imported.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
