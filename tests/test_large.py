"""Large images: masks held cropped to each object (MaskCrops) and sliced inference."""
import numpy as np
import pytest
import torch

import yolact
from yolact.model.transform import YolactTransform
from yolact.ops.masks import crop, upsample_masks
from yolact.results import MaskCrops, Results, mask_outlines, single_polygon

from conftest import make_tiny_model


def _random_soft_masks(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    b = torch.rand(n, 4, generator=g) * 1.2 - 0.1  # some boxes reach past the image
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    soft = crop(torch.rand(h, w, n, generator=g), boxes).permute(2, 0, 1).contiguous()
    return soft, boxes


@pytest.mark.parametrize("shape", [(97, 131), (480, 640), (1080, 1920), (23, 17)])
def test_crops_equal_full_upsampling(shape):
    h, w = shape
    soft, boxes = _random_soft_masks(20, 40, 50, seed=h)
    full = upsample_masks(soft, h, w).numpy()
    crops = YolactTransform.masks_to_image(soft, boxes, h, w, crops=True)
    assert isinstance(crops, MaskCrops) and crops.shape == full.shape
    assert np.array_equal(crops.full(), full)
    # each crop is the tight bounding box of its mask, inside the image
    for i, (x0, y0, x1, y1) in enumerate(crops.windows()):
        ys, xs = np.nonzero(full[i])
        if len(ys):
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    # the mask can reach beyond the integer pixel box (the crop's 1 px padding on the grid)
    assert crops.nbytes < full.nbytes


def test_crops_at_the_threshold_are_exact():
    g = torch.Generator().manual_seed(11)
    n = 8
    b = torch.rand(n, 4, generator=g)
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    noise = (torch.randint(-3, 4, (45, 60, n), generator=g) * 2.0 ** -24).float()
    soft = crop(0.5 + noise, boxes).permute(2, 0, 1).contiguous()
    for h, w in [(480, 640), (331, 257)]:
        crops = YolactTransform.masks_to_image(soft, boxes, h, w, crops=True)
        assert np.array_equal(crops.full(), upsample_masks(soft, h, w).numpy())


def _old_full_masks(model, img):
    """Today's reference: the detections' soft masks upsampled over the whole image."""
    x = model.transform().resize([img], model.device)
    det = model._detect(x, [model.options(score_threshold=0.15)])[0]
    return upsample_masks(det.masks, *img.shape[:2]).numpy()


@pytest.mark.parametrize("which", ["tiny", "demo"])
def test_predict_masks_bit_identical(which):
    from yolact.data.synth import make_image

    model = make_tiny_model() if which == "tiny" else yolact.load(yolact.demo_weights_path())
    rng = np.random.default_rng(3)
    for h, w in [(96, 128), (720, 1280)]:
        if which == "tiny":
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        else:  # shapes the demo model finds
            img, _ = make_image(rng, h, w, max_objects=5, style="simple")
        res = model.predict(img)
        ref = _old_full_masks(model, img)
        assert len(res) == len(ref) and len(res) > 0
        assert isinstance(res.mask_crops, MaskCrops)
        assert np.array_equal(res.masks, ref)


def _results_with(masks, image_shape):
    n = len(masks)
    return Results(boxes=np.zeros((n, 4), np.float32), scores=np.linspace(0.9, 0.5, n).astype(np.float32),
                   labels=np.zeros(n, np.int64), masks=masks, class_names=("a",),
                   box_scores=np.linspace(0.9, 0.5, n).astype(np.float32), image_shape=image_shape)


def _some_masks(h=60, w=80):
    m = np.zeros((5, h, w), bool)
    m[0, 10:30, 5:40] = True
    m[0, 15:20, 10:20] = False       # a hole
    m[1, 0:10, 70:80] = True         # at the image corner
    m[1, 50:60, 0:3] = True          # a second part at another border
    m[2, 59, 79] = True              # one pixel
    # m[3]: empty
    m[4, 20:50, 30:70] = np.random.default_rng(0).random((30, 40)) > 0.4
    return m


def test_outputs_from_crops_equal_outputs_from_full_masks():
    from pycocotools import mask as mask_utils

    full = _some_masks()
    res = _results_with(MaskCrops.from_full(full), full.shape[1:])
    for i, m in enumerate(full):
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert res.rle()[i] == {"size": list(full.shape[1:]), "counts": ref["counts"].decode("ascii")}
        outer, holes = mask_outlines(m)
        o2, h2 = res.mask_crops.outlines(i)
        assert all(np.array_equal(a, b) for a, b in zip(outer, o2)) and len(outer) == len(o2)
        assert all(np.array_equal(a, b) for a, b in zip(holes, h2)) and len(holes) == len(h2)
        p = single_polygon(m)
        assert (p is None) == (i == 3)
    import cv2
    for i, polys in enumerate(res.polygons()):
        ref, _ = cv2.findContours(full[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        ref = [c.reshape(-1, 2).astype(np.float32) for c in ref if len(c) >= 3]
        assert len(ref) == len(polys) and all(np.array_equal(a, b) for a, b in zip(ref, polys))
    # the same outputs as Results holding the full array
    old = _results_with(full, full.shape[1:])
    assert old.to_json() == res.to_json() and old.yolo_lines() == res.yolo_lines()
    assert old.to_labelme() == res.to_labelme()
    img = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    from yolact.viz import draw_detections
    ref_plot = draw_detections(img, res.boxes, full, res.labels, res.scores, res.class_names)
    assert np.array_equal(res.plot(img), ref_plot)
    assert np.array_equal(res.mask_crops.strided(4), full[:, ::4, ::4].astype(np.uint8))
    assert np.array_equal(res.mask_crops.strided(3), full[:, ::3, ::3].astype(np.uint8))
    sub = res.subset([4, 0])
    assert isinstance(sub.mask_crops, MaskCrops) and np.array_equal(sub.masks, full[[4, 0]])
    assert np.array_equal(res.subset(np.array([True, False, True, False, False])).masks, full[[0, 2]])


def test_results_accepts_full_arrays_and_crops():
    full = _some_masks()
    a = _results_with(full, full.shape[1:])
    assert a.masks is not None and np.array_equal(a.masks, full)
    assert np.array_equal(a.mask_crops.full(), full)
    empty = _results_with(np.zeros((0, 60, 80), bool), (60, 80))
    assert empty.masks.shape == (0, 60, 80) and empty.rle() == []
    moved = MaskCrops.from_full(full).shifted(10, 5, (80, 100))
    big = np.zeros((5, 80, 100), bool)
    big[:, 5:65, 10:90] = full
    assert np.array_equal(moved.full(), big)
    cut = MaskCrops.from_full(big).shifted(-10, -5, (60, 80))  # back, cut to the smaller image
    assert np.array_equal(cut.full(), full)
