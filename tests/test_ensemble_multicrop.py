import numpy as np
import pytest

from train.ensemble import multicrop


def test_windows_cover_the_image_whole_first():
    w = multicrop.windows("2x2:0.6")
    np.testing.assert_allclose(w, [[0, 0, 1, 1], [0, 0, .6, .6], [0, .4, .6, 1],
                                   [.4, 0, 1, .6], [.4, .4, 1, 1]], atol=1e-12)
    assert multicrop.evaluations("3x3:0.5") == 10 and multicrop.evaluations("none") == 1
    np.testing.assert_allclose(multicrop.windows("3x3:0.5")[1:4, 1], [0, .25, .5])


@pytest.mark.parametrize("spec", ["2x3:0.5", "2x2", "0x0:0.5", "2x2:1.5", "2x2:0.4", "abc"])
def test_bad_specs_are_named(spec):
    with pytest.raises(multicrop.MulticropError, match="multicrop spec"):
        multicrop.parse_spec(spec)


def test_box_mapping_is_exact_on_a_synthetic_case():
    """A 300 x 400 image with a box at pixels (y 150..210, x 200..280); cropped by the 2x2:0.6
    grid's last window (pixels y 120..300, x 160..400) the box is (30..90, 40..120) of 180 x
    240; mapped back it is the image box again."""
    image = np.zeros((300, 400, 3), np.uint8)
    image[150:210, 200:280] = 255
    piece, window = multicrop.crop(image, multicrop.windows("2x2:0.6")[4])
    assert piece.shape == (180, 240, 3)
    np.testing.assert_allclose(window, [120 / 300, 160 / 400, 1, 1])
    ys, xs = np.nonzero(piece[..., 0])
    in_crop = np.array([[ys.min() / 180, xs.min() / 240, (ys.max() + 1) / 180,
                         (xs.max() + 1) / 240]])
    np.testing.assert_allclose(in_crop, [[30 / 180, 40 / 240, 90 / 180, 120 / 240]])
    np.testing.assert_allclose(multicrop.to_image(in_crop, window),
                               [[150 / 300, 200 / 400, 210 / 300, 280 / 400]], atol=1e-15)


def test_boxes_cut_by_an_inner_crop_edge_are_flagged():
    window = [0.4, 0.0, 1.0, 0.6]  # top and right edges inside the image
    boxes = [[0.0, 0.2, 0.3, 0.4],   # touches the top (inner): cut
             [0.5, 0.0, 0.7, 0.2],   # touches the left, the image's own edge: kept
             [0.5, 0.5, 0.7, 1.0],   # touches the right (inner): cut
             [0.8, 0.3, 1.0, 0.5]]   # touches the bottom, the image's edge: kept
    assert multicrop.cut_by_crop(boxes, window).tolist() == [True, False, True, False]
    assert not multicrop.cut_by_crop(boxes, [0, 0, 1, 1]).any()
