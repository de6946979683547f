"""The fast recipe's augmentation (yolact/data/mosaic.py): masks, boxes and pixels stay aligned,
checked against brute force."""
import numpy as np
import pytest

from yolact.config import MEANS_BGR, get_config
from yolact.data.augment import Sample
from yolact.data.coco import CocoDataset
from yolact.data.mosaic import (ModernAugment, affine_crop, boxes_from_masks, copy_paste, fit_long_side, hflip,
                                mosaic4, mosaic_layout)
from yolact.data.synth import generate


def coloured_sample(rs, h, w, n, label0=0):
    """An image whose object k is painted in a unique colour (its mask), background noise."""
    img = rs.uniform(0, 40, (h, w, 3)).astype(np.float32)
    masks = np.zeros((n, h, w), np.uint8)
    for k in range(n):
        x1, y1 = rs.randint(0, w - 8), rs.randint(0, h - 8)
        x2, y2 = x1 + rs.randint(4, w - x1 + 1), y1 + rs.randint(4, h - y1 + 1)
        masks[k, y1:y2, x1:x2] = 1
        masks[k, y1, x1] = 0  # not a plain rectangle
        masks[:k, masks[k] > 0] = 0  # later objects are in front
        img[masks[k] > 0] = (100 + 20 * k + label0, 200 - 10 * k, 50 + 30 * k)
    s = Sample(img, masks, boxes_from_masks(masks), np.arange(label0, label0 + n, dtype=np.int64), 0)
    keep = masks.reshape(n, -1).sum(1) > 0
    return Sample(img, masks[keep], s.boxes[keep], s.labels[keep], 0)


def brute_extents(mask):
    ys, xs = [], []
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            if mask[y, x]:
                ys.append(y)
                xs.append(x)
    return [min(xs), min(ys), max(xs) + 1, max(ys) + 1]


def assert_boxes_are_mask_extents(s):
    for m, b in zip(s.masks, s.boxes):
        assert m.any()
        assert list(b) == brute_extents(m)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_moves_pixels_and_masks_exactly(seed):
    rs = np.random.RandomState(seed)
    size = 24
    tiles = [coloured_sample(rs, rs.randint(10, size + 1), rs.randint(10, size + 1), 2, label0=10 * t) for t in range(4)]
    xc, yc = (int(v) for v in rs.uniform(0.5 * size, 1.5 * size, 2))
    out = mosaic4(tiles, size, xc, yc)
    assert out.image.shape == (2 * size, 2 * size, 3) and out.masks.shape[1:] == (2 * size, 2 * size)
    # brute force: every canvas pixel either comes from exactly one tile's pixel (the tile touching
    # the centre in its quadrant) or is the mean
    expected = np.empty_like(out.image)
    expected[:] = MEANS_BGR
    expected_masks = {}
    for t, tile in enumerate(tiles):
        h, w = tile.image.shape[:2]
        ox = [xc - w, xc, xc - w, xc][t]  # tile's top-left corner on the canvas
        oy = [yc - h, yc - h, yc, yc][t]
        for y in range(2 * size):
            for x in range(2 * size):
                ty, tx = y - oy, x - ox
                if 0 <= ty < h and 0 <= tx < w:
                    expected[y, x] = tile.image[ty, tx]
                    for k in range(tile.masks.shape[0]):
                        expected_masks.setdefault((t, k), np.zeros((2 * size, 2 * size), np.uint8))[y, x] = tile.masks[k, ty, tx]
    assert np.array_equal(out.image, expected)
    wanted = [(tiles[t].labels[k], m) for (t, k), m in sorted(expected_masks.items()) if m.sum() >= 4]
    assert [int(lab) for lab, _ in wanted] == out.labels.tolist()
    for (_, m), got in zip(wanted, out.masks):
        assert np.array_equal(m, got)
    assert_boxes_are_mask_extents(out)


def test_mosaic_layout_rectangles_have_equal_sizes():
    for shapes, c in (([(10, 20), (20, 10), (5, 5), (20, 20)], (20, 20)), ([(20, 20)] * 4, (10, 30))):
        for (a, b) in mosaic_layout(shapes, 20, *c):
            assert a[2] - a[0] == b[2] - b[0] and a[3] - a[1] == b[3] - b[1]
            assert a[0] >= 0 and a[1] >= 0 and a[2] <= 40 and a[3] <= 40


@pytest.mark.parametrize("seed", range(4))
def test_copy_paste_against_brute_force(seed):
    rs = np.random.RandomState(seed)
    target = coloured_sample(rs, 20, 24, 3)
    donor = coloured_sample(rs, 20, 24, 3, label0=5)
    chosen = rs.rand(donor.labels.shape[0]) < 0.7
    chosen[0] = True
    out = copy_paste(target, donor, chosen)
    img = target.image.copy()
    union = np.zeros((20, 24), bool)
    for y in range(20):
        for x in range(24):
            for k in np.nonzero(chosen)[0]:
                if donor.masks[k, y, x]:
                    img[y, x] = donor.image[y, x]
                    union[y, x] = True
    assert np.array_equal(out.image, img)
    kept = [(lab, m * ~union) for lab, m in zip(target.labels, target.masks) if (m * ~union).sum() >= 4]
    pasted = [(lab, m) for lab, m, c in zip(donor.labels, donor.masks, chosen) if c and m.sum() >= 4]
    assert out.labels.tolist() == [int(lab) for lab, _ in kept + pasted]
    for (_, m), got in zip(kept + pasted, out.masks):
        assert np.array_equal(m.astype(np.uint8), got)
    assert_boxes_are_mask_extents(out)
    # what each object covers in the image is its own colour
    for lab, m in zip(out.labels, out.masks):
        colours = np.unique(out.image[m > 0].reshape(-1, 3), axis=0)
        assert len(colours) == 1


def test_affine_crop_identity_and_shift_move_content_exactly():
    rs = np.random.RandomState(0)
    s = coloured_sample(rs, 32, 32, 3)
    same = affine_crop(s, 32, 1.0, 16, 16)
    assert np.array_equal(same.image, s.image) and np.array_equal(same.masks, s.masks)
    # scale 1 around (20, 13): pixel (x, y) lands at (x - 4, y + 3); outside: the mean, no mask
    moved = affine_crop(s, 32, 1.0, 20, 13)
    assert np.array_equal(moved.image[3:, :28], s.image[:29, 4:])
    assert np.allclose(moved.image[:3], MEANS_BGR) and np.allclose(moved.image[:, 28:], MEANS_BGR)
    for m, got in zip(s.masks, moved.masks):
        shifted = np.zeros_like(m)
        shifted[3:, :28] = m[:29, 4:]
        assert np.array_equal(shifted, got)
    assert_boxes_are_mask_extents(moved)


def test_zoom_keeps_masks_on_their_colour():
    rs = np.random.RandomState(1)
    s = coloured_sample(rs, 40, 40, 3)
    for zoom in (0.6, 1.7):
        out = affine_crop(s, 40, zoom, 22.5, 17.5)
        assert_boxes_are_mask_extents(out)
        for k, m in enumerate(out.masks):
            lab = out.labels[k]
            colour = s.image[s.masks[list(s.labels).index(lab)] > 0][0]
            inner = m.astype(bool)
            # away from mask edges, bilinear pixels equal the object's colour
            core = inner.copy()
            core[1:] &= inner[:-1]; core[:-1] &= inner[1:]; core[:, 1:] &= inner[:, :-1]; core[:, :-1] &= inner[:, 1:]
            if core.any():
                assert np.allclose(out.image[core], colour, atol=1e-3)


def test_flip_and_fit_keep_alignment():
    rs = np.random.RandomState(2)
    s = coloured_sample(rs, 18, 30, 2)
    f = hflip(s)
    assert np.array_equal(f.image, s.image[:, ::-1]) and np.array_equal(f.masks, s.masks[:, :, ::-1])
    assert_boxes_are_mask_extents(f)
    g = fit_long_side(s, 60)
    assert g.image.shape[:2] == (36, 60)
    assert_boxes_are_mask_extents(g)


@pytest.mark.parametrize("side", [24, 29, 50, 67])
def test_fit_long_side_samples_masks_where_it_samples_the_image(side):
    """Masks and image take each output pixel from the same source point: where the bilinear
    image is unambiguous (its neighbourhood all object or all background), the mask agrees.
    OpenCV's INTER_NEAREST (floor(x * scale)) failed this by up to half an output pixel."""
    rs = np.random.RandomState(side)
    m = np.kron(rs.rand(10, 10) < 0.5, np.ones((4, 4))).astype(np.uint8)  # 4-pixel cells, 40 x 40
    s = Sample(np.repeat(m[:, :, None] * 255.0, 3, axis=2).astype(np.float32), m[None], np.array([[0, 0, 40, 40.0]]),
               np.array([0]), 0)
    out = fit_long_side(s, side)
    value = out.image[:, :, 0]
    sure = (value == 0) | (value == 255)
    assert sure.sum() > 0.2 * sure.size
    assert np.array_equal(out.masks[0][sure] > 0, value[sure] == 255)


def test_modern_augment_on_a_dataset_is_deterministic_and_aligned(tmp_path):
    generate(tmp_path, 6, 1, size=64, seed=3, max_objects=3)
    ds = CocoDataset(tmp_path / "train.json", tmp_path / "train", train=True, verbose=False)
    ds.cfg = get_config("yolact_resnet18_slim", class_names=ds.class_names).replace(max_size=48)
    aug = ModernAugment(mosaic=1.0, copy_paste=0.5, mosaic_until=1)
    ds.augment = aug
    a, b = aug(ds, 2), aug(ds, 2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert a.image.shape == (48, 48, 3) and a.masks.shape[1:] == (48, 48)
    assert_boxes_are_mask_extents(a._replace(boxes=a.boxes * 48))
    image, target = ds[2]
    assert image.shape == (3, 48, 48) and target["masks"].shape[1:] == (48, 48)
    ds.set_epoch(1)  # mosaic off from epoch 1: one image, scaled and shifted
    c = aug(ds, 2)
    assert_boxes_are_mask_extents(c._replace(boxes=c.boxes * 48))
    # the same draws as a recipe without mosaic, and not what mosaic would have made
    no_mosaic = ModernAugment(mosaic=0.0, copy_paste=0.5)(ds, 2)
    assert np.array_equal(c.image, no_mosaic.image) and np.array_equal(c.masks, no_mosaic.masks)
    assert not np.array_equal(c.image, ModernAugment(mosaic=1.0, copy_paste=0.5)(ds, 2).image)


def test_boxes_from_masks_against_brute_force():
    rs = np.random.RandomState(0)
    masks = np.zeros((6, 17, 23), np.uint8)
    masks[0, 3, 4] = 1  # one pixel
    masks[1, :, :] = 1  # the whole image
    masks[2, 16, 22] = 1  # the last pixel
    masks[3] = rs.rand(17, 23) < 0.05
    masks[4, 5:9, 0] = 1  # a column at the left edge
    # masks[5] empty: zeros
    boxes = boxes_from_masks(masks)
    assert boxes.dtype == np.float64 and boxes.shape == (6, 4)
    for m, b in zip(masks[:5], boxes[:5]):
        assert list(b) == brute_extents(m)
    assert list(boxes[5]) == [0, 0, 0, 0]
    assert boxes_from_masks(np.zeros((0, 5, 5), np.uint8)).shape == (0, 4)


def test_items_read_once_are_kept_and_change_nothing(tmp_path, monkeypatch):
    """The fitted items ModernAugment keeps (``cache_mb``) give the same samples as reading each
    time, are read-only, and the budget is kept."""
    generate(tmp_path, 8, 1, size=64, seed=5, max_objects=3)
    ds = CocoDataset(tmp_path / "train.json", tmp_path / "train", train=True, verbose=False)
    ds.cfg = get_config("yolact_resnet18_slim", class_names=ds.class_names).replace(max_size=48)
    reads = []
    real = CocoDataset.load_sample
    monkeypatch.setattr(CocoDataset, "load_sample", lambda self, i: reads.append(i) or real(self, i))
    kept, uncached = ModernAugment(mosaic_until=2), ModernAugment(mosaic_until=2, cache_mb=0)
    for epoch in (0, 1, 2):  # mosaic, then off
        ds.set_epoch(epoch)
        for i in range(8):
            a, b = kept(ds, i), uncached(ds, i)
            for x, y in zip(a, b):
                assert np.array_equal(x, y)
    n_uncached = len(reads)
    reads.clear()
    for i in range(8):
        kept(ds, i)
    assert reads == []  # every item was read before: none read again
    assert n_uncached > 8 and len(kept._tiles) == 8 and uncached._tiles == {}
    tile = kept._single(ds, 0, 48)
    assert tile is kept._single(ds, 0, 48)
    with pytest.raises(ValueError, match="read-only"):
        tile.masks[0, 0, 0] = 1
    # kept only when the whole set fits the budget: a set twice as large as it keeps none
    half = ModernAugment(cache_mb=kept._cached_bytes / 2 / 2 ** 20)
    for i in range(8):
        half._single(ds, i, 48)
    assert half._tiles == {} and half._cached_bytes == 0
    enough = ModernAugment(cache_mb=1.5 * kept._cached_bytes / 2 ** 20)
    for i in range(8):
        enough._single(ds, i, 48)
    assert len(enough._tiles) == 8


def test_finish_against_a_plain_reference():
    """``_finish`` drops masks under MIN_MASK_PIXELS and puts crowds last (stable), as the
    numpy sum and fancy indexing it replaced; boxes are the kept masks' extents."""
    from yolact.data.mosaic import MIN_MASK_PIXELS, _finish

    rs = np.random.RandomState(4)
    for _ in range(30):
        n = rs.randint(0, 7)
        masks = np.zeros((n, 12, 14), np.uint8)
        for k in range(n):
            size = rs.choice([0, 1, 3, 4, 5, 40])  # around the threshold, and empty
            flat = rs.choice(12 * 14, size, replace=False)
            masks[k].flat[flat] = 1
        labels = rs.randint(0, 5, n)
        crowd = rs.rand(n) < 0.4
        got = _finish(np.zeros((12, 14, 3), np.float32), masks, labels, crowd)
        keep = masks.sum(axis=(1, 2)) >= MIN_MASK_PIXELS
        order = np.argsort(crowd[keep].astype(np.int8), kind="stable")
        assert np.array_equal(got.masks, masks[keep][order]) and got.masks.dtype == np.uint8
        assert np.array_equal(got.labels, labels[keep][order]) and got.labels.dtype == np.int64
        assert got.num_crowds == int(crowd[keep].sum())
        for m, b in zip(got.masks, got.boxes):
            assert list(b) == brute_extents(m)
