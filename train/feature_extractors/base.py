"""The feature-extractor interface shared by SSD, Faster R-CNN and R-FCN.

A ``FeatureExtractor`` builds Keras models (``tf_keras``, weights=None) from its hyperparameters:

* ``backbone(input_shape)``: preprocessed image ``float32 [B, H, W, 3]`` -> dict of named feature maps
  ``{endpoint: float32 [B, ceil(H / s), ceil(W / s), C]}`` with ``s = stride(endpoint)`` (all
  convolutions use TF "SAME" padding, like TF-slim and the TF Object Detection API, so a 300x300
  input gives 19x19 at stride 16 and 10x10 at stride 32).
* ``output_stride`` (a constructor argument, one of ``output_strides``): no map is coarser than
  that; the layers that would pass it are made atrous (dilated) instead (paper Sec. 3.1).
* ``box_classifier(input_shape)``: the part of the network after ``rpn_endpoint``, applied to every
  ``crop_and_resize``d proposal ``float32 [N, h, w, C]`` -> ``float32 [N, h', w', C']`` (two-stage;
  VGG-16's fc6 / fc7 give ``[N, 4096]``).
* ``classifier(input_shape, classes)``: the published ImageNet classifier (for parameter counts).

Also the helpers that subclasses share: the L2 regulariser with TF-slim's scaling and the rewrite that
turns a ``keras.applications`` model into one with SAME padding, our batch-norm momentum and weight
decay, any input size, and optionally only a slice of its layers.
"""
from __future__ import annotations

import copy

import tensorflow as tf
import tf_keras as keras


def kernel_regularizer(weight_decay: float):
    """L2 weight decay as TF-slim / the TF OD API define it: ``weight_decay * sum(w**2) / 2``.

    Keras' ``L2(l)`` is ``l * sum(w**2)``, hence the factor 0.5 (the OD API's Keras port does the
    same). Returns None when ``weight_decay`` is 0 so no zero losses are added.
    """
    return keras.regularizers.L2(0.5 * weight_decay) if weight_decay > 0 else None


class FeatureExtractor:
    """Backbone producing named feature maps. Subclasses set the class attributes below.

    Attributes:
      name: registry name, e.g. "mobilenet_v1".
      endpoints: endpoint name -> output stride, e.g. {"C4": 16, "C5": 32}.
      endpoint_layers: endpoint name -> name of the Keras layer that produces it.
      ssd_endpoints: (higher-resolution lower map, topmost map) used by SSD.
      rpn_endpoint: map feeding Faster R-CNN's RPN and cropped by crop_and_resize; the
        ``box_classifier`` is the rest of the network after it.
      output_strides: the ``output_stride`` values this extractor can do (atrous); () for none.
      default_output_stride: ``output_stride`` when none is given (None: the native strides).
      has_depth_multiplier: False where the network has no width multiplier (must be 1.0).

    Endpoints are listed from the finest to the topmost map (R-FCN reads the last one).
    """

    name: str = ""
    endpoints: dict[str, int] = {}
    endpoint_layers: dict[str, str] = {}
    ssd_endpoints: tuple[str, str] = ("C4", "C5")
    rpn_endpoint: str = "C4"
    output_strides: tuple[int, ...] = ()
    default_output_stride: int | None = None
    has_depth_multiplier: bool = True

    def __init__(self, depth_multiplier: float = 1.0, batchnorm_momentum: float = 0.997,
                 weight_decay: float = 4e-5, output_stride: int | None = None):
        where = f"train/feature_extractors ({self.name})"
        if not depth_multiplier > 0:
            raise ValueError(f"{where}: depth_multiplier must be > 0, got {depth_multiplier}")
        if not self.has_depth_multiplier and depth_multiplier != 1:
            raise ValueError(f"{where}: feature_extractor.depth_multiplier must be 1.0 (the "
                             f"network has no width multiplier), got {depth_multiplier}")
        if not 0.0 <= batchnorm_momentum < 1.0:
            raise ValueError(f"{where}: batchnorm_momentum must be in [0, 1), got {batchnorm_momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"{where}: weight_decay must be >= 0, got {weight_decay}")
        self.depth_multiplier = float(depth_multiplier)
        self.batchnorm_momentum = float(batchnorm_momentum)
        self.weight_decay = float(weight_decay)
        self.output_stride = (self.default_output_stride if output_stride is None
                              else self._check_output_stride(output_stride))

    def __repr__(self):
        return (f"{type(self).__name__}(depth_multiplier={self.depth_multiplier}, "
                f"batchnorm_momentum={self.batchnorm_momentum}, weight_decay={self.weight_decay}, "
                f"output_stride={self.output_stride})")

    def stride(self, endpoint: str) -> int:
        """The stride of ``endpoint`` in this extractor's backbone: its native stride, capped at
        ``output_stride`` (e.g. ResNet-101's C5: 32 natively, 16 by default, 8 at stride 8)."""
        native = self.endpoints[self._check_endpoints((endpoint,))[0]]
        return native if self.output_stride is None else min(native, self.output_stride)

    def _check_output_stride(self, output_stride) -> int:
        if output_stride not in self.output_strides or isinstance(output_stride, bool):
            valid = ", ".join(map(str, self.output_strides)) or "none (leave it unset)"
            raise ValueError(f"train/feature_extractors ({self.name}): feature_extractor."
                             f"output_stride {output_stride!r} is not supported; valid: {valid}")
        return int(output_stride)

    def preprocess(self, images):
        """float32 [B, H, W, 3] in 0..255 -> float32 in [-1, 1] (all of our networks use this)."""
        return images * (2.0 / 255.0) - 1.0

    def backbone(self, input_shape: tuple, endpoints: tuple | None = None,
                 output_stride: int | None = None) -> keras.Model:
        """Preprocessed image [B, *input_shape] -> {endpoint: [B, h, w, c]}.

        ``input_shape`` is (H, W, 3); H and W may be None (any size). ``endpoints`` selects a subset
        of ``self.endpoints`` (default: all); the model contains only the layers they need.
        ``output_stride`` (e.g. 16; default ``self.output_stride``): no map coarser than that, by
        atrous convolution (R-FCN, SSD and the RPN of stride-8 models).
        """
        raise NotImplementedError

    def box_classifier(self, input_shape: tuple, input_stride: int | None = None) -> keras.Model:
        """Crops of ``rpn_endpoint`` [N, *input_shape] -> [N, h', w', c'] (Faster R-CNN's second
        stage). ``input_stride``: applied to the whole ``rpn_endpoint`` map of that stride
        instead, keeping it (atrous; R-FCN) -> [B, h, w, c']."""
        raise NotImplementedError

    def classifier(self, input_shape: tuple = (224, 224, 3), classes: int = 1000) -> keras.Model:
        """The published ImageNet classifier: image [B, *input_shape] -> softmax [B, classes]."""
        raise NotImplementedError

    def _check_endpoints(self, endpoints) -> tuple:
        endpoints = tuple(self.endpoints) if endpoints is None else tuple(endpoints)
        unknown = [e for e in endpoints if e not in self.endpoints]
        if unknown or not endpoints:
            raise ValueError(f"train/feature_extractors ({self.name}): unknown endpoint(s) {unknown}; "
                             f"valid: {', '.join(self.endpoints)}")
        return endpoints

    def _check_input_shape(self, input_shape) -> tuple:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[2] != 3:
            raise ValueError(f"train/feature_extractors ({self.name}): input_shape must be "
                             f"(H, W, 3), got {input_shape}")
        return input_shape


# --- rewriting keras.applications models ------------------------------------------------------------

def _inbound(layer_cfg) -> list:
    """The inbound tensor references [[name, node, index, kwargs], ...] of a layer's first call."""
    nodes = layer_cfg["inbound_nodes"]
    return nodes[0] if nodes else []


def rebuild_application(model, input_shape: tuple, *, name: str,
                        batchnorm_momentum: float, weight_decay: float,
                        outputs: dict[str, str] | str | None = None,
                        start_after: str | None = None, output_stride: int | None = None,
                        input_stride: int = 1, input_rate: int = 1,
                        align_feature_maps: bool = False, unstrided: tuple = ()) -> keras.Model:
    """Rebuilds a ``keras.applications`` functional model (or its ``get_config()``) from its
    config, changed so that:

    * every ``ZeroPadding2D`` + "valid" strided conv becomes a conv with TF "SAME" padding (Keras'
      fixed ((0, 1), (0, 1)) padding shrinks a 75x75 map to 37x37 where SAME, as in TF-slim and
      the OD API, gives 38x38 -- and 19x19 / 10x10 maps for a 300x300 SSD input); a
      ``ZeroPadding2D`` + max pool after a ReLU (ResNet's ``pool1_pad``) becomes a SAME max pool;
    * with ``align_feature_maps`` (the OD API's name): every other "valid" conv or pool with a
      kernel or stride > 1 becomes SAME too (Inception v3, Inception-ResNet-v2, VGG-16), so every
      map is ``ceil(input / stride)``;
    * every BatchNormalization has ``momentum=batchnorm_momentum``;
    * Conv2D and Dense kernels get ``kernel_regularizer(weight_decay)`` (depthwise kernels get none:
      they hold very few parameters, MobileNet paper Sec. 3.2);
    * the input is ``input_shape`` (None for any size);
    * with ``start_after``: the layers before and including that layer are dropped and a new input
      of ``input_shape`` feeds its consumers (a two-stage box classifier);
    * with ``outputs`` ({key: layer name}): the model outputs that dict and holds only the layers
      needed for it; a layer name: that one output; otherwise the original outputs;
    * the layers named in ``unstrided`` get stride 1, without dilation (the OD API's ResNet box
      classifier keeps the 7x7 crops at 7x7);
    * with ``output_stride``: atrous (dilated) convolution keeps the output at that stride
      (TF-slim / DeepLab): a strided layer that would pass it gets stride 1 and every later
      convolution is dilated by the strides removed, so the receptive field is kept (paper
      Sec. 3.1). ``input_stride`` / ``input_rate`` are the stride and dilation of the model's
      input (a box classifier applied to a whole stride-8 map of ResNet-101: 8 and 2).

    Layer names are kept (so ImageNet weights can be loaded by name). Layers that tf_keras
    registers (Inception-ResNet-v2's ``Custom>CustomScaleLayer``) need no custom objects. Weights
    are freshly initialised.
    """
    cfg = copy.deepcopy(model if isinstance(model, dict) else model.get_config())
    model_name = cfg["name"]
    layers = {l["name"]: l for l in cfg["layers"]}
    order = [l["name"] for l in cfg["layers"]]

    def consumers(src):
        return [n for n in order if any(t[0] == src for t in _inbound(layers[n]))]

    # 1. ZeroPadding2D + valid conv (or max pool) -> SAME conv (max pool).
    for pad in [n for n in order if layers[n]["class_name"] == "ZeroPadding2D"]:
        (src,) = _inbound(layers[pad])
        for c in consumers(pad):
            kind = layers[c]["class_name"]
            # A max pool's zero padding equals SAME's (which ignores the padded cells) only for
            # inputs >= 0: fold it only after a ReLU. (Average pools would count the zeros.)
            if kind not in ("Conv2D", "DepthwiseConv2D", "MaxPooling2D") or (
                    kind == "MaxPooling2D" and not _is_relu(layers[src[0]])):
                raise ValueError(f"train/feature_extractors/base.py: cannot fold padding layer "
                                 f"{pad} into {c} ({kind} after {src[0]})")
            layers[c]["config"]["padding"] = "same"
            layers[c]["inbound_nodes"] = [[list(src) if t[0] == pad else t for t in _inbound(layers[c])]]
        order.remove(pad)
    if align_feature_maps:
        for n in order:
            c = layers[n]["config"]
            window = c.get("kernel_size", c.get("pool_size", [1]))
            if layers[n]["class_name"] in _STRIDED and c.get("padding") == "valid" and \
                    max(*window, *c.get("strides", [1])) > 1:
                c["padding"] = "same"
    for n in unstrided:
        if n not in layers or "strides" not in layers[n]["config"]:
            raise ValueError(f"train/feature_extractors/base.py: {model_name} has no strided "
                             f"layer {n}")
        layers[n]["config"]["strides"] = [1, 1]

    # 2. Input: either the original one with a new shape, or a new one after `start_after`.
    (input_name,) = [n for n in order if layers[n]["class_name"] == "InputLayer"]
    if start_after is not None:
        if start_after not in layers:
            raise ValueError(f"train/feature_extractors/base.py: {model_name} has no layer {start_after}")
        new_input = f"{start_after}_input"
        for c in consumers(start_after):
            layers[c]["inbound_nodes"] = [[[new_input, 0, 0, {}] if t[0] == start_after else t
                                           for t in _inbound(layers[c])]]
        layers[new_input] = {"class_name": "InputLayer", "name": new_input, "inbound_nodes": [],
                             "config": {"batch_input_shape": [None, *input_shape],
                                        "dtype": "float32", "sparse": False, "ragged": False,
                                        "name": new_input}}
        order.insert(0, new_input)
        input_name = new_input
    else:
        layers[input_name]["config"]["batch_input_shape"] = [None, *input_shape]

    # 3. Keep the layers between the input and the outputs.
    if isinstance(outputs, str):
        out_names = [outputs]
    else:
        out_names = list(outputs.values()) if outputs else [o[0] for o in cfg["output_layers"]]
    missing = [n for n in out_names if n not in layers]
    if missing:
        raise ValueError(f"train/feature_extractors/base.py: {model_name} has no layer(s) {missing}")
    needed, stack = set(), list(out_names)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(t[0] for t in _inbound(layers[n]))
    if input_name not in needed:
        raise ValueError(f"train/feature_extractors/base.py: outputs {out_names} of {model_name} "
                         f"do not depend on its input {input_name}")
    orphans = [n for n in needed if n != input_name and not _inbound(layers[n])]
    if orphans:  # e.g. a skip connection from before `start_after`
        raise ValueError(f"train/feature_extractors/base.py: slice of {model_name} after "
                         f"{start_after} needs layers before it: {orphans}")

    if output_stride is not None:
        _make_atrous(layers, [n for n in order if n in needed], input_name, output_stride,
                     input_stride, input_rate)

    # 4. Hyperparameters.
    reg = kernel_regularizer(weight_decay)
    for n in needed:
        layer = layers[n]
        layer.pop("build_config", None)
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["momentum"] = batchnorm_momentum
        elif layer["class_name"] in ("Conv2D", "Dense") and reg is not None:
            layer["config"]["kernel_regularizer"] = keras.regularizers.serialize(reg)

    cfg["name"] = name
    cfg["layers"] = [layers[n] for n in order if n in needed]
    cfg["input_layers"] = [[input_name, 0, 0]]
    cfg["output_layers"] = [[n, 0, 0] for n in out_names]
    rebuilt = keras.Model.from_config(cfg)
    if not isinstance(outputs, dict):
        return rebuilt
    return keras.Model(rebuilt.input, {k: rebuilt.get_layer(v).output for k, v in outputs.items()},
                       name=name)


def _is_relu(layer_cfg) -> bool:
    return layer_cfg["class_name"] == "ReLU" or (
        layer_cfg["class_name"] == "Activation" and layer_cfg["config"]["activation"] == "relu")


_STRIDED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")


def _make_atrous(layers: dict, order: list, input_name: str, output_stride: int,
                 input_stride: int, input_rate: int) -> None:
    """Rewrites layer configs in place so no tensor's stride exceeds ``output_stride``."""
    stride, rate = {input_name: input_stride}, {input_name: input_rate}
    for n in order:
        if n == input_name:
            continue
        cfg, kind = layers[n]["config"], layers[n]["class_name"]
        sources = [t[0] for t in _inbound(layers[n])]
        s_in = max(stride[t] for t in sources)
        r_in = max(rate[t] for t in sources)
        s = int(cfg.get("strides", [1])[0]) if kind in _STRIDED else 1
        if s > 1 and s_in * s > output_stride:
            cfg["strides"] = [1, 1]
            cfg["padding"] = "same"  # a VALID window at stride 1 would shrink the map
            r_out, s_out = r_in * s, s_in
        else:
            r_out, s_out = r_in, s_in * s
        kernel = cfg.get("kernel_size", [1])
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D") and max(kernel) > 1:
            cfg["dilation_rate"] = [r_in, r_in]  # this layer samples its (un-strided) input
        stride[n], rate[n] = s_out, r_out


_CONFIGS: dict = {}  # (extractor class, its arguments) -> keras.applications model config


class ApplicationExtractor(FeatureExtractor):
    """A FeatureExtractor made from a ``keras.applications`` model (subclasses define
    ``_application``); every model is rebuilt by ``rebuild_application``.

    Attributes (besides FeatureExtractor's):
      align_feature_maps: turn the network's VALID convs and pools into SAME ones (OD API).
      box_classifier_align: the same for the box classifier on crops (default: as the backbone).
      box_classifier_output: the box classifier's last layer (VGG-16's ``fc2``); None: the
        topmost endpoint's layer (the network without its classifier).
      box_classifier_unstrided: layers of the box classifier that get stride 1 (no dilation).
    """

    align_feature_maps: bool = False
    box_classifier_align: bool | None = None
    box_classifier_output: str | None = None
    box_classifier_unstrided: tuple[str, ...] = ()

    def _application(self, classes: int) -> keras.Model:
        """The keras.applications ImageNet classifier (include_top=True) at 224x224, weights=None
        (alpha=self.depth_multiplier where the network has one)."""
        raise NotImplementedError

    def _application_config(self, classes: int = 1000) -> dict:
        # Built once per process (backbones and box classifiers are slices of the classifier), at
        # 224x224 only to read its config (rebuild_application sets the real input shape), in a
        # graph of its own so that Keras' automatic names (Inception's "conv2d_12") are those of
        # a fresh session whatever was built before.
        key = (type(self), classes, self.depth_multiplier)
        if key not in _CONFIGS:
            with tf.Graph().as_default():
                _CONFIGS[key] = self._application(classes).get_config()
        return _CONFIGS[key]

    def _rebuild(self, input_shape, name, classes=1000, align=None, **kwargs):
        return rebuild_application(
            self._application_config(classes), tuple(input_shape), name=name,
            batchnorm_momentum=self.batchnorm_momentum, weight_decay=self.weight_decay,
            align_feature_maps=self.align_feature_maps if align is None else align, **kwargs)

    def backbone(self, input_shape, endpoints=None, output_stride=None):
        input_shape = self._check_input_shape(input_shape)
        outputs = {e: self.endpoint_layers[e] for e in self._check_endpoints(endpoints)}
        output_stride = (self.output_stride if output_stride is None
                         else self._check_output_stride(output_stride))
        return self._rebuild(input_shape, f"{self.name}_backbone", outputs=outputs,
                             output_stride=output_stride)

    def box_classifier(self, input_shape, input_stride=None):
        """``input_stride``: the whole ``rpn_endpoint`` map at that stride (atrous, SAME)."""
        top = list(self.endpoint_layers.values())[-1]  # the network without its classifier
        kwargs = dict(start_after=self.endpoint_layers[self.rpn_endpoint],
                      outputs=self.box_classifier_output or top)
        if input_stride is None:
            align = self.box_classifier_align
            kwargs["unstrided"] = self.box_classifier_unstrided
        else:  # the map's dilation so far: the strides removed before it
            align = True
            kwargs.update(output_stride=input_stride, input_stride=input_stride,
                          input_rate=max(self.endpoints[self.rpn_endpoint] // input_stride, 1))
        return self._rebuild(tuple(input_shape), f"{self.name}_box_classifier", align=align,
                             **kwargs)

    def classifier(self, input_shape=(224, 224, 3), classes=1000):
        return self._rebuild(self._check_input_shape(input_shape), f"{self.name}_classifier",
                             classes=classes)
