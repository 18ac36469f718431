"""load_image: every common pixel layout decodes to RGB uint8; bad files raise DataError."""
import cv2
import numpy as np
import pytest

from train.data import DataError, load_image


def _bgr_red(h=6, w=5):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 200  # red in OpenCV's BGR order
    return img


def test_colour_jpeg_and_png_are_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _bgr_red())
    img = load_image(str(tmp_path / "a.png"))
    assert img.dtype == np.uint8 and img.shape == (6, 5, 3)
    assert img[0, 0].tolist() == [200, 0, 0]
    ok, buf = cv2.imencode(".jpg", _bgr_red(16, 16), [cv2.IMWRITE_JPEG_QUALITY, 100])
    img = load_image(data=buf.tobytes())
    assert img.shape == (16, 16, 3) and img[8, 8, 0] > 190 and img[8, 8, 1:].max() < 10


def test_grey_rgba_and_16_bit(tmp_path):
    grey = np.arange(30, dtype=np.uint8).reshape(6, 5)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = load_image(str(tmp_path / "g.png"))
    assert img.shape == (6, 5, 3) and (img == grey[..., None]).all()

    bgra = np.dstack([_bgr_red(), np.full((6, 5), 7, np.uint8)])  # nearly transparent
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    img = load_image(str(tmp_path / "rgba.png"))
    assert img.shape == (6, 5, 3) and img[0, 0].tolist() == [200, 0, 0]  # alpha dropped

    deep = np.array([[0, 257 * 100, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    img = load_image(str(tmp_path / "deep.png"))
    assert img.dtype == np.uint8 and img[0, :, 0].tolist() == [0, 100, 255]

    deep_colour = np.zeros((2, 2, 3), np.uint16)
    deep_colour[..., 0] = 65535  # blue
    cv2.imwrite(str(tmp_path / "deep_colour.png"), deep_colour)
    assert load_image(str(tmp_path / "deep_colour.png"))[0, 0].tolist() == [0, 0, 255]


def test_grey_plus_alpha(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    la = np.dstack([np.full((4, 3), 90, np.uint8), np.full((4, 3), 255, np.uint8)])
    pil.fromarray(la, "LA").save(tmp_path / "la.png")
    img = load_image(str(tmp_path / "la.png"))
    assert img.shape == (4, 3, 3) and (img == 90).all()


def test_bad_files_raise_data_error_naming_them(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jpg: image file not found"):
        load_image(str(tmp_path / "nope.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jpg: image file is empty"):
        load_image(str(tmp_path / "empty.jpg"))
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3),
                                                                        dtype=np.uint8))
    (tmp_path / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode image"):
        load_image(str(tmp_path / "cut.jpg"))
    with pytest.raises(DataError, match="record 7: cannot decode image"):
        load_image(data=b"this is not an image", name="record 7")
    with pytest.raises(DataError, match="is a directory|cannot read"):
        load_image(str(tmp_path))
    assert issubclass(DataError, ValueError)


def test_float_images_scale_to_uint8(tmp_path):
    ramp = np.array([[0.0, 0.5, 1.0]], np.float32)  # 0..1 floats (IMREAD_COLOR cannot read them)
    assert cv2.imwrite(str(tmp_path / "f.tiff"), ramp)
    assert load_image(str(tmp_path / "f.tiff"))[0, :, 0].tolist() == [0, 128, 255]


def test_one_data_error_class_for_train_and_the_edge(tmp_path):
    from edge_runtime.coco import read_ground_truth
    from edge_runtime.images import DataError as EdgeDataError
    assert DataError is EdgeDataError  # `except DataError` in train catches the edge's errors
    with pytest.raises(DataError, match="annotation file not found"):
        read_ground_truth(str(tmp_path / "nope.json"))
