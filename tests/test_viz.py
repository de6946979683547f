"""Overlay drawing (yolact.viz): labels on tiny pictures."""
import numpy as np
import pytest

from yolact.viz import LABEL_AREA_MAX, class_color, draw_detections, fit_label


def _label_pixels(side, name="circle"):
    """Pixels the label (and only it: no box, no mask) paints on a black side x side picture
    with one object of a quarter of the side at its centre."""
    img = np.zeros((side, side, 3), np.uint8)
    q = side / 4
    boxes = np.array([[1.5 * q, 1.5 * q, 2.5 * q, 2.5 * q]], np.float32)
    out = draw_detections(img, boxes, None, np.array([0]), np.array([0.95]), (name,), draw_boxes=False)
    return np.any(out != 0, axis=-1)


@pytest.mark.parametrize("side", [32, 48, 64, 80, 96, 128])
def test_labels_cover_at_most_a_small_share_of_a_tiny_picture(side):
    """New-user report: on pictures under ~100 px the 'circle 0.95' label hid the object (19% of
    a 64 x 64 picture). Now a label covers at most LABEL_AREA_MAX of it, or is left out."""
    painted = _label_pixels(side)
    assert painted.mean() <= LABEL_AREA_MAX


def test_tiny_labels_lose_the_score_first_then_go():
    assert fit_label("circle 0.95", "circle", 480, 640) == "circle 0.95"  # ordinary pictures: unchanged
    assert fit_label("circle 0.95", "circle", 128, 128) == "circle 0.95"
    assert fit_label("circle 0.95", "circle", 96, 96) == "circle"
    assert fit_label("circle 0.95", "circle", 64, 64) is None
    assert not _label_pixels(64).any()  # nothing over the object
    assert _label_pixels(96).any()  # the name is still there


def test_ordinary_pictures_keep_their_labels():
    painted = _label_pixels(480)
    assert painted.any()
    out = draw_detections(np.zeros((480, 480, 3), np.uint8), np.array([[180, 180, 300, 300]], np.float32), None,
                          np.array([0]), np.array([0.95]), ("circle",), draw_boxes=False)
    assert (np.all(out == class_color(0), axis=-1)).sum() > 500  # the label's background
