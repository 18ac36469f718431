import numpy as np
import tensorflow as tf

from train.data import augment

BOXES = np.array([[0.1, 0.2, 0.5, 0.4], [0.5, 0.5, 0.9, 1.0]], np.float32)


def _synthetic(h=60, w=80):
    """Channel 0: box i drawn as 50*(i+1) over its (pixel-aligned) pixels; channels 1, 2: the
    pixel's row and column, so a crop's offset can be read back from its top-left pixel."""
    img = np.zeros([h, w, 3], np.float32)
    for i, (y0, x0, y1, x1) in enumerate(BOXES):
        img[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w), 0] = 50.0 * (i + 1)
    img[..., 1], img[..., 2] = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return img


def test_flip_twice_is_identity_and_flip_is_mirror():
    img = _synthetic()
    flipped_once = False
    for seed in range(6):
        i1, b1 = augment.random_horizontal_flip(img, BOXES, seed=seed)
        if not np.array_equal(i1.numpy(), img):
            flipped_once = True
            np.testing.assert_array_equal(i1.numpy(), img[:, ::-1])
            np.testing.assert_allclose(b1.numpy()[0], [0.1, 0.6, 0.5, 0.8], atol=1e-6)
            i2, b2 = augment.random_horizontal_flip(i1, b1)
            while np.array_equal(i2.numpy(), i1.numpy()):  # flip until it flips back
                i2, b2 = augment.random_horizontal_flip(i1, b1)
            np.testing.assert_array_equal(i2.numpy(), img)
            np.testing.assert_allclose(b2.numpy(), BOXES, atol=1e-6)
    assert flipped_once


def _check_crop(image, boxes, labels, h=60, w=80):
    """Kept boxes = those whose centre is in the crop, each covering exactly its colour."""
    ch, cw = image.shape[:2]
    y0, x0 = image[0, 0, 1:]
    window = np.array([y0 / h, x0 / w, (y0 + ch) / h, (x0 + cw) / w])
    centres = (BOXES[:, :2] + BOXES[:, 2:]) / 2
    inside = np.all((centres >= window[:2]) & (centres <= window[2:]), axis=1)
    np.testing.assert_array_equal(labels, np.flatnonzero(inside) + 1)
    for b, lab in zip(boxes, labels):
        mask = np.zeros([ch, cw], bool)
        mask[round(b[0] * ch):round(b[2] * ch), round(b[1] * cw):round(b[3] * cw)] = True
        np.testing.assert_array_equal(image[..., 0] == 50.0 * lab, mask)


def test_crop_keeps_boxes_over_the_same_pixels():
    img, labels = _synthetic(), np.array([1, 2], np.int64)
    tf.random.set_seed(1)
    crop = tf.function(augment.ssd_random_crop)
    shapes, counts = set(), set()
    for _ in range(40):
        i, b, l = (t.numpy() for t in crop(img, BOXES, labels))
        shapes.add(i.shape)
        counts.add(len(l))
        assert len(b) == len(l) and np.all(b >= 0) and np.all(b <= 1)
        _check_crop(i, b, l)
    assert (60, 80, 3) in shapes and len(shapes) > 5  # "no crop" happens, crops vary
    assert len(counts) > 1  # some crops drop a box


def test_crop_in_tf_data_with_no_boxes():
    def gen():
        yield _synthetic(), np.zeros([0, 4], np.float32), np.zeros([0], np.int64)
        yield _synthetic(), BOXES, np.array([1, 2], np.int64)
    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None, 4], tf.float32),
        tf.TensorSpec([None], tf.int64)))

    def aug(image, boxes, labels):
        image, boxes = augment.random_horizontal_flip(image, boxes)
        image, boxes, labels = augment.ssd_random_crop(image, boxes, labels)
        return augment.random_color(image), boxes, labels
    for _ in range(5):
        (i0, b0, l0), (i1, b1, l1) = list(ds.map(aug))
        assert b0.shape == (0, 4) and l0.shape == (0,) and i0.shape[-1] == 3
        assert b1.shape[0] == l1.shape[0]


def test_random_color_range_and_identity():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, [16, 16, 3]).astype(np.float32)
    for seed in range(5):
        out = augment.random_color(img, seed=seed).numpy()
        assert out.shape == img.shape and out.min() >= 0.0 and out.max() <= 255.0
        assert not np.allclose(out, img)
    same = augment.random_color(img, brightness=0, contrast=None, saturation=None, hue=0)
    np.testing.assert_allclose(same.numpy(), img, atol=1e-3)
    gray = np.full([4, 4, 3], 100.0, np.float32)  # saturation / hue leave gray unchanged
    out = augment.random_color(gray, brightness=0, contrast=None).numpy()
    np.testing.assert_allclose(out, gray, atol=1e-2)
