"""Frontier: object detectors on the speed/accuracy frontier, from training to the edge."""
from setuptools import find_packages, setup

EDGE = [
    "ai-edge-litert==2.3.0",
    "flatbuffers>=24.3.25,<26",  # edge_runtime/tflite_metadata.py reads the embedded metadata
    "numpy>=1.26,<3",
    "opencv-python-headless>=4.9,<6",
    "pycocotools==2.0.11",
    "tqdm>=4.66,<5",
]
TRAIN = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorboard==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "pycocotools==2.0.11",
    "opencv-python-headless>=4.9,<6",
    "scikit-image==0.26.0",
    "pyyaml>=6.0,<7",
    "h5py>=3.10,<4",  # train.init_from reads Keras .h5 weights files
    "matplotlib>=3.8,<4",
    "tqdm>=4.66,<5",
]
# MediaPipe Tasks: writes the standard TFLite metadata at export (convert/tflite_metadata.py) and
# is the peer the exports are tested against. Its pins (absl-py ~= 2.3, opencv-contrib-python)
# clash with tensorflow-model-optimization's absl-py ~= 1.2 and our opencv-python-headless, so
# beside TensorFlow the Makefile installs it with --no-deps (the writer and ObjectDetector import
# neither); without TensorFlow, `pip install ".[edge,mediapipe]"` is fine.
MEDIAPIPE = "mediapipe==1.2.3"
DEV = ["pytest>=8,<10", "selenium==4.38.0",  # selenium: the android_demo browser test
       "hypothesis==6.155.2"]  # the fuzz tests (tests/test_fuzz_*.py)

setup(
    name="frontier-detect",
    version="0.1.0",
    description="SSD / Faster R-CNN / R-FCN detectors on the speed/accuracy frontier, "
    "trained in TensorFlow and shipped as TFLite to phones and Raspberry Pis.",
    python_requires=">=3.10",
    packages=find_packages(include=["train*", "convert*", "edge_runtime*", "benchmarks*"]),
    package_data={"train": ["configs/*.yaml"]},
    install_requires=[],
    extras_require={"edge": EDGE, "train": TRAIN, "dev": DEV, "mediapipe": [MEDIAPIPE]},
)
