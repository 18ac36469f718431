"""Runs an exported detector: image in, boxes/classes/scores out (numpy + OpenCV only).

The model's four outputs are read by their signature names (``detection_boxes``,
``detection_classes``, ``detection_scores``, ``num_detections``): after ``allocate_tensors`` the
positional order of the outputs is shuffled. Models without a signature (older TF OD API
exports) fall back to the ``TFLite_Detection_PostProcess:{0..3}`` tensor names.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from edge_runtime.images import keep_aspect_size
from edge_runtime.interpreter import make_interpreter, one_line
from edge_runtime.metadata import read_metadata
from edge_runtime.resize import RESIZERS

OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
RAW_OUTPUTS = ("box_encodings", "class_predictions")


@dataclass
class Detections:
    """One image's detections: ``boxes [N, 4]`` float32 normalised (ymin, xmin, ymax, xmax)
    clipped to [0, 1], none of zero area; ``classes [N]`` int32 0-based (label ``labels[c]``);
    ``scores [N]``."""
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def pixel_boxes(self, height: int, width: int) -> np.ndarray:
        """``[N, 4]`` (xmin, ymin, xmax, ymax) in pixels of an image of the given size."""
        y0, x0, y1, x1 = self.boxes.T
        return np.stack([x0 * width, y0 * height, x1 * width, y1 * height], axis=1)


def parse_outputs(outputs: dict, score_threshold: float = 0.0, window=(1.0, 1.0)) -> Detections:
    """The four outputs of ``TFLite_Detection_PostProcess`` for one image -> :class:`Detections`.

    Only the first ``num_detections`` rows are read; those scoring ``>= score_threshold`` are
    kept, their boxes divided by ``window`` (the image's height and width as fractions of the
    input: below 1 when the image was padded, two-stage models) and clipped to [0, 1] (the op
    never clips), and then those whose clipped box has zero area (height <= 0 or width <= 0:
    decoded wholly outside the image) are dropped, as
    ``train.core.post_processing.batch_multiclass_nms`` does in TensorFlow. The order (by
    score) is kept. android_demo/app/detector.js applies the same rule.
    """
    n = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
    scores = np.asarray(outputs["detection_scores"], np.float32).reshape(-1)[:n]
    boxes = np.asarray(outputs["detection_boxes"], np.float32).reshape(-1, 4)[:n]
    classes = np.asarray(outputs["detection_classes"]).reshape(-1)[:n]
    if tuple(window) != (1.0, 1.0):
        wy, wx = (np.float32(v) for v in window)
        boxes = boxes / np.array([wy, wx, wy, wx], np.float32)
    else:
        boxes = boxes.copy()  # clipped in place below; never the caller's array
    np.clip(boxes, 0.0, 1.0, out=boxes)
    # few numpy calls: this runs per frame, right after the interpreter left the caches cold
    keep = (scores >= score_threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[keep], classes[keep].astype(np.int32), scores[keep])


class Detector:
    """A ``.tflite`` detector with its sidecar metadata.

    ``detect(image)`` takes an RGB uint8 ``[H, W, 3]`` image of any size; it is resized to the
    model's input -- stretched (SSD), or, when the metadata says ``"resize":
    "keep_aspect_ratio"`` (Faster R-CNN, R-FCN), scaled as in training and padded at the
    bottom/right, the boxes then mapped back -- and converted to the input's dtype (uint8 raw
    pixels, or float32 ``(pixel - mean) / std``). ``interpolation`` names a resizer of
    edge_runtime/resize.py: "linear" (default: bilinear in fixed point, the same pixels on x86
    and ARM, so a Pi gives the desktop's detections), "linear_exact" (the same pixels, the old
    slower way), "nearest", "linear_fast" (not the same on every CPU) or "area" (what training
    and ``train evaluate`` use: COCO scores then match TensorFlow's exactly; slowest). Costs:
    benchmarks/resize_cost.py.
    """

    INTERPOLATIONS = RESIZERS  # {name: (RGB image, (width, height)) -> resized image}

    def __init__(self, model_path: str, num_threads: int | None = None, use_xnnpack: bool = True,
                 delegate: str | None = None, runtime: str | None = None,
                 interpolation: str = "linear"):
        if interpolation not in self.INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(self.INTERPOLATIONS)}, "
                             f"got {interpolation!r}")
        self.interpolation = interpolation
        self.model_path = str(model_path)
        self.metadata = read_metadata(self.model_path) or {}
        self.interpreter, self.runtime = make_interpreter(
            self.model_path, num_threads, use_xnnpack, delegate, runtime)
        self._signature = self._find_signature()
        self._input = self._input_details()
        _, self.height, self.width, _ = (int(d) for d in self._input["shape"])
        self.input_dtype = np.dtype(self._input["dtype"])
        if self.height < 1 or self.width < 1:
            raise ValueError(f"{self.model_path}: input shape {list(self._input['shape'])} has "
                             "no pixels (a corrupt model?)")
        meta_in = self.metadata.get("input") or {}
        # a number, or one per channel (standard metadata of models made elsewhere)
        self.mean = np.asarray(meta_in.get("mean", 127.5), np.float32)
        self.std = np.asarray(meta_in.get("std", 127.5), np.float32)
        self.labels = list(self.metadata.get("labels") or [])
        self.keep_aspect_ratio = meta_in.get("resize") == "keep_aspect_ratio"
        if self.keep_aspect_ratio:
            self.min_dimension = int(meta_in["min_dimension"])
            self.max_dimension = int(meta_in["max_dimension"])
        self.window = (1.0, 1.0)  # of the last preprocessed image (see parse)
        self.raw = self._signature is not None and set(RAW_OUTPUTS) <= set(self._out_names)
        if not self.raw:
            self._outputs = self._output_indices()
        post = self.metadata.get("postprocess") or {}
        if (num_threads and num_threads > 1 and post.get("fused") and post.get("use_regular_nms")
                and int(post.get("num_classes", 0)) > num_threads):
            # LiteRT's kernel of the fused op's per-class NMS skips class index T at T threads
            # (tensorflow/tensorflow#56058, still in ai-edge-litert 2.3.0)
            warnings.warn(f"{self.model_path}: with {num_threads} threads LiteRT's "
                          f"TFLite_Detection_PostProcess drops every detection of class index "
                          f"{num_threads} ({self._label(num_threads)}); use 1 thread, or "
                          "re-export it with the default built-in NMS (not affected)",
                          stacklevel=2)

    def _label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"class {index}"

    def _find_signature(self):
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            self._out_names = []
            return None
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        self._in_names = signatures[key]["inputs"]
        self._out_names = signatures[key]["outputs"]
        return key

    def _input_details(self) -> dict:
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][3] != 3:
            raise ValueError(f"{self.model_path}: expected one [1, H, W, 3] image input, got "
                             f"{[list(d['shape']) for d in inputs]}")
        return inputs[0]

    def _output_indices(self) -> dict:
        """{output name: tensor index} for the four detection outputs."""
        details = self.interpreter.get_output_details()
        if self._signature is not None and set(OUTPUTS) <= set(self._out_names):
            runner_outputs = self.interpreter._get_full_signature_list()[self._signature]["outputs"]
            return {name: runner_outputs[name] for name in OUTPUTS}
        by_name = {d["name"]: d["index"] for d in details}
        legacy = ["TFLite_Detection_PostProcess"] + [
            f"TFLite_Detection_PostProcess:{i}" for i in (1, 2, 3)]
        if all(n in by_name for n in legacy):
            return dict(zip(OUTPUTS, (by_name[n] for n in legacy)))
        raise ValueError(
            f"{self.model_path}: outputs {sorted(self._out_names or by_name)} are not the "
            f"four-output detection layout ({', '.join(OUTPUTS)}); export it with "
            "convert/export_tflite.py (without --no-postprocess)")

    @property
    def input_size(self) -> tuple[int, int]:
        return self.height, self.width

    def label(self, c: int) -> str:
        return self.labels[c] if 0 <= c < len(self.labels) else f"class {c}"

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of ``height x width`` gets inside the input (the training
        resizer's rule, train/core/image_resizer.py)."""
        if not self.keep_aspect_ratio:
            return self.height, self.width
        h, w = keep_aspect_size(height, width, self.min_dimension, self.max_dimension)
        return min(h, self.height), min(w, self.width)

    def preprocess(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]`` -> the model input ``[1, h, w, 3]`` (its dtype), written into
        ``out`` when given; sets :attr:`window`, which :meth:`parse` maps the boxes back with."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
        h, w = self.scaled_size(*image.shape[:2])
        self.window = (h / self.height, w / self.width)
        if (h, w) != (self.height, self.width):  # padded below and to the right (two-stage)
            canvas = np.zeros((self.height, self.width, 3), np.uint8)
            canvas[:h, :w] = self._resize(image, (w, h))
            return self.to_input(canvas, out)
        if self.input_dtype == np.uint8 and image.shape[:2] != (h, w):
            if out is None:
                return self._resize(image, (w, h))[None]
            resized = self._resize(image, (w, h), out[0])  # straight into ``out``: no copy
            if not np.shares_memory(resized, out):  # OpenCV made a new array instead
                out[0] = resized
            return out
        return self.to_input(self._resize(image, (w, h)), out)

    def _resize(self, image: np.ndarray, size: tuple[int, int], dst=None) -> np.ndarray:
        if image.shape[:2] == size[::-1]:
            if dst is None:
                return image
            dst[...] = image
            return dst
        return self.INTERPOLATIONS[self.interpolation](image, size, dst)

    def to_input(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """An RGB uint8 image already of the input size -> ``[1, h, w, 3]`` of the input dtype,
        written into ``out`` when given."""
        if self.input_dtype == np.uint8:
            if out is None:
                return image[None]
            out[0] = image
            return out
        if self.input_dtype == np.float32:  # in place: one pass instead of numpy's temporaries
            x = np.empty((1, self.height, self.width, 3), np.float32) if out is None else out
            np.multiply(image, np.float32(1.0) / self.std, out=x[0], casting="unsafe")
            x -= self.mean / self.std
            return x
        raise ValueError(f"{self.model_path}: unsupported input dtype {self.input_dtype}")

    def load(self, image: np.ndarray) -> None:
        """:meth:`preprocess` straight into the interpreter's input tensor (no copy through
        ``set_tensor``); then :meth:`invoke` with no argument runs it."""
        view = self.interpreter.tensor(self._input["index"])()
        try:
            self.preprocess(image, view)
        finally:
            del view  # the interpreter refuses to invoke while a view of its memory is held

    def invoke(self, tensor: np.ndarray | None = None) -> None:
        """Runs the model on ``tensor`` (``[1, h, w, 3]``), or, without one, on the input
        :meth:`load` wrote."""
        try:
            if tensor is not None:
                self.interpreter.set_tensor(self._input["index"], tensor)
            self.interpreter.invoke()
        except (RuntimeError, ValueError, TypeError) as e:  # e.g. "tensor lacks data"
            raise ValueError(f"{self.model_path}: the interpreter failed running the model "
                             f"({one_line(e)})") from None

    def raw_outputs(self) -> dict:
        """After :meth:`invoke`: {output name: array} (raw models: encodings and scores)."""
        try:
            if self.raw:
                runner = self.interpreter._get_full_signature_list()[self._signature]["outputs"]
                return {n: self.interpreter.get_tensor(runner[n]) for n in RAW_OUTPUTS}
            return {n: self.interpreter.get_tensor(i) for n, i in self._outputs.items()}
        except (ValueError, RuntimeError, KeyError, TypeError) as e:  # corrupt tensor indices
            raise ValueError(f"{self.model_path}: cannot read the model's outputs "
                             f"({one_line(e)})") from None

    def parse(self, outputs: dict, score_threshold: float = 0.0, window=None) -> Detections:
        """The four outputs of one image -> :class:`Detections` (see :func:`parse_outputs`);
        ``window`` defaults to the last :meth:`preprocess`'s."""
        try:
            return parse_outputs(outputs, score_threshold,
                                 self.window if window is None else window)
        except (ValueError, IndexError) as e:  # outputs of a corrupt model that disagree
            raise ValueError(f"{self.model_path}: cannot read the detection outputs "
                             f"({one_line(e)})") from None

    def detect(self, image: np.ndarray, score_threshold: float = 0.0) -> Detections:
        if self.raw:
            raise ValueError(f"{self.model_path} was exported with --no-postprocess (raw box "
                             "encodings); decode it with its anchors, or export it with the "
                             "fused post-processing op")
        self.load(image)
        self.invoke()
        return self.parse(self.raw_outputs(), score_threshold)
