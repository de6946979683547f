"""predict takes PIL images (#27 item 8): PIL holds RGB, every array source is BGR."""
import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="Pillow (comes with matplotlib)")

import yolact  # noqa: E402
from yolact.prediction.sources import pil_to_bgr, resolve_sources  # noqa: E402


def test_pil_images_are_read_as_bgr_by_pixel():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[1, 2] = (200, 100, 10)  # R, G, B
    img = Image.fromarray(rgb)
    bgr = pil_to_bgr(img)
    assert bgr.shape == (4, 5, 3) and bgr.dtype == np.uint8
    assert tuple(bgr[1, 2]) == (10, 100, 200)
    assert tuple(pil_to_bgr(img.convert("RGBA"))[1, 2]) == (10, 100, 200)
    grey = pil_to_bgr(Image.fromarray(np.full((3, 3), 77, np.uint8)))
    assert grey.shape == (3, 3, 3) and (grey == 77).all()
    [(kind, arr)] = resolve_sources(img)
    assert kind == "array" and np.array_equal(arr, bgr)


def test_predict_on_a_pil_image_equals_predict_on_its_bgr_array():
    from yolact.data.synth import make_image

    model = yolact.load("demo")
    bgr = make_image(np.random.default_rng(3), 128, 160)[0]
    pil = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    a, b = model.predict(pil, score_threshold=0.3), model.predict(bgr, score_threshold=0.3)
    assert np.array_equal(a.image, bgr)
    assert len(b) > 0
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
    # the same pixels in the wrong channel order give other detections: the conversion matters
    c = model.predict(np.ascontiguousarray(bgr[:, :, ::-1]), score_threshold=0.3)
    assert len(c) != len(b) or not np.array_equal(c.scores, b.scores)


def test_high_depth_pil_modes_are_scaled_like_their_arrays():
    # New-user finding: I;16, I and F images gave 0 detections (PIL's convert('RGB') clips to 255).
    from PIL import Image

    from yolact.data.images import to_bgr_uint8
    from yolact.prediction.sources import pil_to_bgr

    g = (np.arange(64 * 48) % 256).reshape(48, 64).astype(np.uint8)
    want = to_bgr_uint8(g)
    assert np.array_equal(pil_to_bgr(Image.fromarray(g.astype(np.uint16) * 257)), want)      # I;16
    assert np.array_equal(pil_to_bgr(Image.fromarray(g.astype(np.int32) * 257, mode="I")), want)
    assert np.array_equal(pil_to_bgr(Image.fromarray(g.astype(np.int32), mode="I")), want)  # 8-bit values in I
    assert np.array_equal(pil_to_bgr(Image.fromarray(g.astype(np.float32) / 255, mode="F")), want)
