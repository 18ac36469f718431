"""train/core/spatial_transform: crop_and_resize and position_sensitive_crop.

Checked against tf.image.crop_and_resize (values and gradients), a NumPy reference with loops
for R-FCN's position-sensitive crop, and a TFLite conversion with built-in operators only.
"""
import numpy as np
import pytest
import tensorflow as tf

from train.core.spatial_transform import crop_and_resize, position_sensitive_crop


def tf_crops(features, boxes, crop_size, extrapolation_value=0.0):
    """tf.image.crop_and_resize of boxes [B, N, 4] from features [B, H, W, C] -> [B, N, h, w, C]."""
    b, n = boxes.shape[:2]
    crops = tf.image.crop_and_resize(features, tf.reshape(boxes, [-1, 4]),
                                     tf.repeat(tf.range(b), n), crop_size,
                                     extrapolation_value=extrapolation_value)
    return tf.reshape(crops, [b, n, crop_size[0], crop_size[1], features.shape[-1]])


def random_boxes(rng, b, n):
    """[b, n, 4] float32 (ymin, xmin, ymax, xmax), the last 4*5 of every image special:
    partly outside, wholly outside, flipped (y, x or both), zero height, zero width."""
    corners = rng.uniform(-0.1, 1.1, (b, n, 2, 2))
    boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1)
    special = boxes[:, -20:]                           # a view: edits change `boxes`
    special[:, 0:4] = rng.uniform(-0.6, 1.6, (b, 4, 4))          # partly outside, any order
    special[:, 4:8] += 1.5                                       # wholly outside (below/right)
    special[:, 8:10] -= 1.6                                      # wholly outside (above/left)
    special[:, 10:12] = special[:, 10:12][..., [2, 1, 0, 3]]     # flipped in y
    special[:, 12:14] = special[:, 12:14][..., [0, 3, 2, 1]]     # flipped in x
    special[:, 14:16] = special[:, 14:16][..., [2, 3, 0, 1]]     # flipped in both
    special[:, 16:18, 2] = special[:, 16:18, 0]                  # zero height
    special[:, 18:20, 3] = special[:, 18:20, 1]                  # zero width
    return boxes.astype(np.float32)


@pytest.mark.parametrize("height, width, crop_size, extrapolation_value", [
    (20, 20, (14, 14), 0.0),
    (17, 31, (7, 7), 0.0),
    (12, 9, (1, 1), -2.5),
    (20, 13, (14, 7), 3.0),
])
def test_crop_and_resize_equals_tf(height, width, crop_size, extrapolation_value):
    rng = np.random.default_rng(height * width)
    features = rng.normal(size=(3, height, width, 5)).astype(np.float32)
    boxes = random_boxes(rng, 3, 40)
    got = crop_and_resize(features, boxes, crop_size, extrapolation_value)
    want = tf_crops(features, boxes, crop_size, extrapolation_value).numpy()
    assert got.shape == (3, 40, *crop_size, 5)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)
    if crop_size != (1, 1):   # the boxes do reach outside the map
        assert (want == extrapolation_value).sum() > 100


def test_gradient_wrt_features_equals_tf():
    rng = np.random.default_rng(1)
    features = tf.constant(rng.normal(size=(2, 20, 20, 8)).astype(np.float32))
    boxes = tf.constant(random_boxes(rng, 2, 30))
    upstream = tf.constant(rng.normal(size=(2, 30, 7, 7, 8)).astype(np.float32))

    def gradients(fn):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([features, boxes])
            loss = tf.reduce_sum(fn(features, boxes, (7, 7)) * upstream)
        return tape.gradient(loss, features), tape.gradient(loss, boxes)

    def tf_one_box_at_a_time(f, b, size):
        # TF's CPU gradient of crop_and_resize w.r.t. the image accumulates the boxes from
        # several threads without ordering (nondeterministic: tensorflow/tensorflow#42033); one
        # box per call makes the reference exact and reproducible.
        return tf.stack([tf.concat([tf_crops(f[i:i + 1], b[i:i + 1, j:j + 1], size)
                                    for j in range(b.shape[1])], axis=1)
                         for i in range(b.shape[0])], axis=0)[:, 0]

    got, got_boxes = gradients(crop_and_resize)
    want, _ = gradients(tf_one_box_at_a_time)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-4)
    assert np.abs(want.numpy()).max() > 1.0
    assert got_boxes is None                      # boxes get no gradient (stopped)


def test_inside_tf_function_static_and_dynamic_batch():
    rng = np.random.default_rng(2)
    # Features in [0, 1): graph rewrites round the sample points differently (~1e-6 px), so
    # the values agree to ~1e-6 times the step between neighbouring pixels.
    features = rng.uniform(size=(8, 20, 20, 16)).astype(np.float32)
    boxes = random_boxes(rng, 8, 64)
    want = tf_crops(features, boxes, (14, 14), 0.5).numpy()

    static = tf.function(lambda f, b: crop_and_resize(f, b, (14, 14), 0.5), input_signature=[
        tf.TensorSpec([8, 20, 20, 16], tf.float32), tf.TensorSpec([8, 64, 4], tf.float32)])
    assert static.get_concrete_function().structured_outputs.shape == (8, 64, 14, 14, 16)
    np.testing.assert_allclose(static(features, boxes).numpy(), want, rtol=0, atol=1e-5)

    dynamic = tf.function(lambda f, b: crop_and_resize(f, b, (14, 14), 0.5), input_signature=[
        tf.TensorSpec([None, 20, 20, 16], tf.float32), tf.TensorSpec([None, 64, 4], tf.float32)])
    assert dynamic.get_concrete_function().structured_outputs.shape.as_list() == [
        None, 64, 14, 14, 16]
    np.testing.assert_allclose(dynamic(features[:3], boxes[:3]).numpy(), want[:3],
                               rtol=0, atol=1e-5)


def test_samples_on_the_border_are_never_extrapolated():
    """Boxes clipped to end exactly at 1.0: the last sample row/column is on the border.

    TF's kernel puts it a few ulps outside for some boxes (and extrapolates that whole row);
    ours keeps it inside, the same eagerly and in tf.function, and equals TF everywhere else.
    """
    rng = np.random.default_rng(3)
    features = rng.uniform(size=(1, 38, 38, 4)).astype(np.float32)
    starts = rng.uniform(0.0, 0.9, (1, 200, 2)).astype(np.float32)
    boxes = np.concatenate([starts, np.ones_like(starts)], axis=-1)
    boxes[0, 0] = [0.0, 0.0, 1.0, 1.0]
    want = tf_crops(features, boxes, (14, 14), -1.0).numpy()
    graph = tf.function(lambda f, b: crop_and_resize(f, b, (14, 14), -1.0))
    for got in [crop_and_resize(features, boxes, (14, 14), -1.0).numpy(),
                graph(features, boxes).numpy()]:
        assert (got == -1.0).sum() == 0
        tf_inside = want != -1.0
        np.testing.assert_allclose(got[tf_inside], want[tf_inside], rtol=0, atol=1e-5)
        corner = np.broadcast_to(features[:, None, -1, -1], got[:, :, -1, -1].shape)
        np.testing.assert_allclose(got[:, :, -1, -1], corner, rtol=0, atol=1e-5)
    assert (want == -1.0).any()          # TF's rounding did push some border rows outside


# --- position-sensitive crop -------------------------------------------------------------

def bilinear_sample(image, y, x, extrapolation_value=0.0):
    """image [H, W, C] at pixel (y, x), tf.image.crop_and_resize style -> [C]."""
    height, width = image.shape[:2]
    if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
        return np.full(image.shape[2], extrapolation_value)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    dy, dx = y - y0, x - x0
    top = image[y0, x0] * (1 - dx) + image[y0, x1] * dx
    bottom = image[y1, x0] * (1 - dx) + image[y1, x1] * dx
    return top * (1 - dy) + bottom * dy


def sample_coords(lo, hi, size, count):
    """The `count` sample coordinates (pixels) of the interval [lo, hi] (normalised)."""
    if count == 1:
        return [0.5 * (lo + hi) * (size - 1)]
    return [lo * (size - 1) + i * (hi - lo) * (size - 1) / (count - 1) for i in range(count)]


def ps_crop_reference(features, boxes, num_bins, crop_size, global_pool):
    """R-FCN position-sensitive crop with loops: [B, N, k_h, k_w, C] or [B, N, C]."""
    batch, height, width, depth = features.shape
    k_h, k_w = num_bins
    channels = depth // (k_h * k_w)
    per_bin_h, per_bin_w = crop_size[0] // k_h, crop_size[1] // k_w
    out = np.zeros((batch, boxes.shape[1], k_h, k_w, channels))
    for b in range(batch):
        for n, (ymin, xmin, ymax, xmax) in enumerate(boxes[b].astype(np.float64)):
            bin_h, bin_w = (ymax - ymin) / k_h, (xmax - xmin) / k_w
            for i in range(k_h):
                for j in range(k_w):
                    group = i * k_w + j
                    maps = features[b, :, :, group * channels:(group + 1) * channels]
                    ys = sample_coords(ymin + i * bin_h, ymin + (i + 1) * bin_h, height, per_bin_h)
                    xs = sample_coords(xmin + j * bin_w, xmin + (j + 1) * bin_w, width, per_bin_w)
                    out[b, n, i, j] = np.mean(
                        [bilinear_sample(maps, y, x) for y in ys for x in xs], axis=0)
    return out.mean(axis=(2, 3)) if global_pool else out


@pytest.mark.parametrize("num_bins, crop_size", [((3, 3), (6, 6)), ((2, 3), (2, 9))])
@pytest.mark.parametrize("global_pool", [True, False])
def test_position_sensitive_crop_equals_numpy_reference(num_bins, crop_size, global_pool):
    rng = np.random.default_rng(4)
    channels = 4
    features = rng.normal(size=(2, 15, 11, num_bins[0] * num_bins[1] * channels))
    features = features.astype(np.float32)
    boxes = random_boxes(rng, 2, 24)
    got = position_sensitive_crop(features, boxes, num_bins, crop_size, global_pool).numpy()
    want = ps_crop_reference(features, boxes, num_bins, crop_size, global_pool)
    assert got.shape == ((2, 24, channels) if global_pool else (2, 24, *num_bins, channels))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_position_sensitive_crop_rejects_bad_sizes():
    features = np.zeros((1, 10, 10, 18), np.float32)
    boxes = np.zeros((1, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"crop_size \(7, 7\) must be divisible by num_bins"):
        position_sensitive_crop(features, boxes, (3, 3), (7, 7))
    with pytest.raises(ValueError, match="depth 18 must be divisible by k_h\\*k_w = 4"):
        position_sensitive_crop(features, boxes, (2, 2), (4, 4))
    with pytest.raises(ValueError, match="crop_size must be two positive python ints"):
        crop_and_resize(features, boxes, (0, 7))


# --- TFLite ------------------------------------------------------------------------------

def run_tflite(fn, inputs):
    """Converts fn (built-ins only, no Flex) and runs it; returns (op names, outputs per run)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    specs = [tf.TensorSpec(x.shape, tf.float32, name=name) for name, x in inputs.items()]
    concrete = tf.function(fn, input_signature=specs).get_concrete_function()
    model = tf.lite.TFLiteConverter.from_concrete_functions([concrete], None).convert()
    outputs = []
    # Reference kernels first (their op list is the model's), then the default XNNPACK delegate.
    for resolver in [OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, OpResolverType.AUTO]:
        interpreter = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        if resolver == OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES:
            ops = [op["op_name"] for op in interpreter._get_ops_details()]
        for detail in interpreter.get_input_details():
            name = next(n for n in inputs if n in detail["name"])
            interpreter.set_tensor(detail["index"], inputs[name])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    return ops, outputs


def assert_builtin_only(ops):
    assert ops, "no operators listed"
    flex = [op for op in ops if op.startswith("Flex") or "CropAndResize" in op
            or op.upper() == "CUSTOM"]
    assert not flex, f"non-built-in operators {flex} in {ops}"


def test_crop_and_resize_lowers_to_tflite_builtins():
    rng = np.random.default_rng(5)
    inputs = {"features": rng.uniform(size=(1, 20, 20, 32)).astype(np.float32),
              "boxes": np.ascontiguousarray(random_boxes(rng, 1, 20)[:, ::2])}  # all kinds
    ops, outputs = run_tflite(lambda features, boxes: crop_and_resize(
        features, boxes, (14, 14), extrapolation_value=0.25), inputs)
    print("crop_and_resize TFLite ops:", ops)
    assert_builtin_only(ops)
    assert "BATCH_MATMUL" in ops
    want = tf_crops(inputs["features"], inputs["boxes"], (14, 14), 0.25).numpy()
    for got in outputs:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_position_sensitive_crop_lowers_to_tflite_builtins():
    rng = np.random.default_rng(6)
    inputs = {"features": rng.uniform(size=(1, 20, 20, 9 * 8)).astype(np.float32),
              "boxes": np.ascontiguousarray(random_boxes(rng, 1, 20)[:, ::2])}
    ops, outputs = run_tflite(lambda features, boxes: position_sensitive_crop(
        features, boxes, (3, 3), (6, 6), global_pool=False), inputs)
    print("position_sensitive_crop TFLite ops:", ops)
    assert_builtin_only(ops)
    want = position_sensitive_crop(inputs["features"], inputs["boxes"], (3, 3), (6, 6),
                                   global_pool=False).numpy()
    for got in outputs:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
