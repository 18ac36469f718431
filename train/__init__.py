"""Frontier training: models, data, training and COCO evaluation (needs TensorFlow).

Legacy Keras (``tf_keras``) is used throughout: Keras 3 models exported through
``tf.saved_model`` to TFLite give NaN silently and tfmot's QAT refuses them. The
environment variable must be set before TensorFlow is first imported: train/tf_env.py sets it,
with the log-level defaults that keep TensorFlow's start-up notices off the console.
"""
from train.tf_env import set_defaults

set_defaults()
