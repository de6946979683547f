import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from conftest import hole_pixels
from yolact.config import get_config
from yolact.data import augment
from yolact.data.augment import Sample
from yolact.data.coco import CocoDataset, ann_to_mask
from yolact.data.synth import SHAPE_CLASSES, generate
from yolact.data.yolo import coco_to_yolo, yolo_to_coco
from yolact.errors import YolactError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root, 6, 3, size=96, seed=0)
    return root


def test_synth_is_valid_coco_and_deterministic(synth, tmp_path):
    data = json.loads((synth / "train.json").read_text())
    assert [c["name"] for c in data["categories"]] == list(SHAPE_CLASSES)
    assert len(data["images"]) == 6 and data["annotations"]
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and a["area"] == mask_utils.area(a["segmentation"])
    generate(tmp_path, 6, 0, size=96, seed=0)
    assert json.loads((tmp_path / "train.json").read_text()) == data


def write_coco(tmp_path, anns, categories=None, images=None):
    img = np.full((40, 50, 3), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), img)
    data = {"images": images or [{"id": 1, "file_name": "a.png", "height": 40, "width": 50},
                                 {"id": 2, "file_name": "b.png", "height": 40, "width": 50}],
            "annotations": anns,
            "categories": categories or [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}]}
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(data))
    return p


def test_formats_category_mapping_and_validation(tmp_path, capsys):
    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((10, 10), np.uint8), ((5, 25), (5, 35)))))
    rle["counts"] = rle["counts"].decode()
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 10, 10], "iscrowd": 0,
         "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15], [20, 20, 30, 20, 30, 30]]},  # two parts
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [5, 5, 10, 10], "iscrowd": 0, "segmentation": rle},
        {"id": 3, "image_id": 1, "category_id": 7, "bbox": [0, 0, 50, 40], "iscrowd": 1,
         "segmentation": {"size": [40, 50], "counts": [0, 2000]}},  # uncompressed RLE crowd
        {"id": 4, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5], "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        {"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 1, 0, 5], "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        {"id": 6, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5], "iscrowd": 0, "segmentation": [[1, 1, 5, 1]]},
    ]
    p = write_coco(tmp_path, anns)
    ds = CocoDataset(p, tmp_path, train=False)
    assert "warning: " + str(p) + ": skipped 2" in capsys.readouterr().err
    assert ds.class_names == ("seven", "three") and ds.category_ids == [7, 3]
    joined = "\n".join(ds.problems)
    assert "annotation 4: unknown category 99" in joined
    assert "annotation 6: degenerate polygon" in joined
    # annotation 5's zero-size box next to a valid mask: the box is the mask's (pycocotools toBbox)
    assert "1 annotation(s) have no usable box" in "\n".join(ds.read_notes)
    assert len(ds) == 2  # image 2 has no annotations but is kept for evaluation
    _, s = ds.load_sample(0)
    assert s.labels.tolist() == [1, 0, 0, 0] and s.num_crowds == 1  # crowd last
    assert s.masks[0].sum() > 100 + 40  # both polygon parts
    assert s.masks[3].sum() == 2000 // 2 or s.masks[3].sum() > 0
    # training keeps image 2 (no annotations) as a background image, unless skip_empty
    assert len(CocoDataset(p, tmp_path, train=True)) == 2
    assert len(CocoDataset(p, tmp_path, train=True, skip_empty=True)) == 1


def test_broken_files_stop_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(YolactError, match="bad.json: not valid JSON"):
        CocoDataset(bad, tmp_path)
    with pytest.raises(YolactError, match="no such annotation file"):
        CocoDataset(tmp_path / "nope.json", tmp_path)
    p = write_coco(tmp_path, [], images=[{"id": 1, "file_name": "missing.png", "height": 4, "width": 4}])
    with pytest.raises(YolactError, match=r"no usable images .*1 image file\(s\) missing, e.g. .*missing.png"):
        CocoDataset(p, tmp_path, train=False)
    many = [{"id": i, "file_name": f"gone{i}.png", "height": 4, "width": 4} for i in range(5)]
    p = write_coco(tmp_path, [], images=many)
    with pytest.raises(YolactError, match=r"5 image file\(s\) missing, e.g. .*gone0.png, .*gone1.png, .*gone2.png "
                                          r"\(and 2 more\)$"):
        CocoDataset(p, tmp_path, train=False)


def _sample():
    img = np.zeros((60, 80, 3), np.float32)
    masks = np.zeros((2, 60, 80), np.uint8)
    masks[0, 10:30, 20:50] = 1
    masks[1, 35:55, 5:25] = 1
    img[masks[0] > 0] = 200
    boxes = np.array([[20, 10, 50, 30], [5, 35, 25, 55]], np.float64)
    return Sample(img, masks, boxes, np.array([0, 1]), 0)


def _coordinate_sample(w=200, h=150, crowd=(150, 100, 190, 140)):
    """Pixel (x, y) holds (x, y, 0), so a crop's rectangle can be read off its output; a few
    objects and, last, one crowd region."""
    img = np.zeros((h, w, 3), np.float32)
    img[:, :, 0] = np.arange(w)[None, :]
    img[:, :, 1] = np.arange(h)[:, None]
    boxes = np.array([[10, 10, 60, 50], [80, 20, 120, 120], [20, 90, 70, 140], crowd], np.float64)
    masks = np.zeros((4, h, w), np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        m[y1:y2, x1:x2] = 1
    return Sample(img, masks, boxes, np.array([0, 1, 2, -1]), 1)


class ScriptedRandom:
    """A RandomState stand-in that returns scripted values and records the calls."""

    def __init__(self, values):
        self.values, self.calls = list(values), []

    def randint(self, *args):
        self.calls.append(("randint",) + args)
        return self.values.pop(0)

    def uniform(self, *args):
        self.calls.append(("uniform",) + args)
        return self.values.pop(0)


def _mask_box(m, w, h):
    ys, xs = np.nonzero(m > 0.5)
    return np.array([xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h])


@pytest.mark.parametrize("seed", range(8))
def test_augmentation_keeps_masks_and_boxes_consistent(seed):
    cfg = get_config("yolact_resnet18", class_names=["a", "b"]).replace(max_size=64)
    s = augment.train_transform(_sample(), cfg, np.random.RandomState(seed))
    assert s.image.shape == (64, 64, 3) and s.masks.shape[1:] == (64, 64)
    assert len(s.boxes) == len(s.masks) == len(s.labels)
    for m, b in zip(s.masks, s.boxes):
        if (m > 0.5).sum() < 4:
            continue
        # the box is the mask's extent (up to resize rounding and crop clipping)
        np.testing.assert_allclose(_mask_box(m, 64, 64), b, atol=3 / 64 + 1e-6)
    assert ((s.boxes >= -1e-6) & (s.boxes <= 1 + 1e-6)).all()


def test_mirror_and_small_box_drop():
    s = _sample()
    assert augment.mirror(s, ScriptedRandom([0])) is s  # randint(2) == 0: no mirror
    m = augment.mirror(s, ScriptedRandom([1]))
    assert m.boxes[0].tolist() == [30, 10, 60, 30]
    assert np.array_equal(m.masks[0], s.masks[0][:, ::-1])
    r = augment.resize(s, 64, min_box_size=0.3, relative=True)  # box 1 is 20/80 wide -> dropped
    assert r.labels.tolist() == [0] and r.masks.shape == (1, 64, 64) and r.masks.dtype == np.uint8
    assert set(np.unique(r.masks)) <= {0, 1}  # the uint8 resize rounds to 0/1, as the original


def test_tiny_box_survives_the_resize_like_the_original():
    # A 3x3 px object in a 640x480 image resized to 550: 2.6 x 3.4 px, far above 4/550 of a
    # pixel, so the original keeps it; only a relative test (opt-in) drops it.
    img = np.zeros((480, 640, 3), np.float32)
    masks = np.zeros((2, 480, 640), np.uint8)
    masks[0, 100:103, 200:203] = 1
    masks[1, 200:300, 300:400] = 1
    s = Sample(img, masks, np.array([[200, 100, 203, 103], [300, 200, 400, 300]], np.float64), np.array([0, 1]), 0)
    cfg = get_config("yolact_base")
    kept = augment.resize(s, cfg.max_size, cfg.min_box_size, cfg.min_box_size_relative)
    assert kept.labels.tolist() == [0, 1]
    assert augment.resize(s, 550, 4 / 550, relative=True).labels.tolist() == [1]
    # a zero-width box is still dropped, a crowd one too
    z = s._replace(boxes=np.array([[200, 100, 200, 103], [300, 200, 300.001, 300]]), num_crowds=1)
    assert augment.resize(z, 550, 4 / 550).labels.tolist() == []


def test_crop_keeps_boxes_and_crowds_by_centre_and_corner_from_one():
    s = _coordinate_sample()
    centers = (s.boxes[:, :2] + s.boxes[:, 2:]) / 2
    crowd_dropped = lefts = 0
    for seed in range(300):
        out = augment.random_sample_crop(s, np.random.RandomState(seed))
        if out is s:
            continue
        x1, y1 = int(out.image[0, 0, 0]), int(out.image[0, 0, 1])
        x2, y2 = x1 + out.image.shape[1], y1 + out.image.shape[0]
        inside = (x1 < centers[:, 0]) & (centers[:, 0] < x2) & (y1 < centers[:, 1]) & (centers[:, 1] < y2)
        assert out.labels.tolist() == s.labels[inside].tolist()  # crowds by the same rule
        assert out.num_crowds == int(inside[3])
        crowd_dropped += not inside[3]
        if x2 - x1 < s.image.shape[1] - 1:  # uniform(w - cw) draws the corner in [1, w - cw]
            assert x1 >= 1 and y1 >= 0
            lefts += 1
    assert crowd_dropped > 20 and lefts > 20


def test_crop_min_iou_is_a_no_op_unless_enforced():
    s = _coordinate_sample()
    # mode 4 (min IoU 0.9); a 100x100 crop at (1, 1): keeps box 0's centre, IoU with every box < 0.9
    draws = [4, 100.0, 100.0, 1.0, 1.0]
    out = augment.random_sample_crop(s, ScriptedRandom(draws))
    assert out.image.shape[:2] == (100, 100) and 0 in out.labels.tolist()
    # enforced: that crop is refused, the next attempt (too elongated) too, then mode None
    rs = ScriptedRandom(draws[1:] + [60.0, 149.0] * 49 + [0])
    rs.values.insert(0, 4)
    assert augment.random_sample_crop(s, rs, enforce_min_iou=True) is s


def test_photometric_order_probabilities_and_no_clipping():
    s = Sample(np.full((4, 4, 3), 250, np.float32), np.zeros((0, 4, 4), np.uint8), np.zeros((0, 4)), np.zeros(0, int), 0)
    # brightness on (+30), contrast first (x1.2), saturation and hue on
    rs = ScriptedRandom([1, 30.0, 1, 1, 1.2, 1, 1.1, 1, 10.0])
    out = augment.photometric_distort(s, rs)
    assert [c[:3] for c in rs.calls] == [("randint", 2), ("uniform", -32, 32), ("randint", 2), ("randint", 2),
                                         ("uniform", 0.5, 1.5), ("randint", 2), ("uniform", 0.5, 1.5),
                                         ("randint", 2), ("uniform", -18.0, 18.0)]
    assert out.image.max() == pytest.approx(280 * 1.2)  # grey stays grey; nothing clipped at 255
    # contrast last: the HSV steps draw first
    rs = ScriptedRandom([0, 0, 0, 0, 1, 0.5])
    out = augment.photometric_distort(s, rs)
    assert [c[0] for c in rs.calls] == ["randint"] * 5 + ["uniform"]
    assert out.image.max() == pytest.approx(125.0)


def test_yolo_roundtrip(tmp_path, synth, capsys):
    orig = json.loads((synth / "train.json").read_text())
    imgs = {i["id"]: i for i in orig["images"]}
    masks = [(a, ann_to_mask(a, imgs[a["image_id"]]["height"], imgs[a["image_id"]]["width"])) for a in orig["annotations"]]

    def holed(m):
        return bool(hole_pixels(m).any())

    n_holed = sum(holed(m) for _, m in masks)
    yml = coco_to_yolo(synth / "train.json", synth / "train", tmp_path / "yolo")
    if n_holed:
        assert f"{n_holed} instance(s) have holes" in capsys.readouterr().err
    out, _ = yolo_to_coco(yml, "train", tmp_path / "back.json")
    back = json.loads(out.read_text())
    assert [c["name"] for c in back["categories"]] == list(SHAPE_CLASSES)
    assert len(back["images"]) == len(orig["images"])
    assert len(back["annotations"]) == len(orig["annotations"])  # multi-part objects stay one instance
    by_name = {i["file_name"]: i["id"] for i in back["images"]}
    for a, m in masks:
        if holed(m):
            continue  # YOLO polygons cannot hold holes (warned above)
        img = imgs[a["image_id"]]
        cands = [b for b in back["annotations"]
                 if b["image_id"] == by_name[img["file_name"]] and b["category_id"] == a["category_id"] - 1]
        best = max(((m & ann_to_mask(b, img["height"], img["width"])).sum() /
                    (m | ann_to_mask(b, img["height"], img["width"])).sum()) for b in cands)
        assert best >= 0.99


def test_multi_part_object_is_one_yolo_polygon():
    from yolact.data.yolo import instance_polygon
    m = np.zeros((40, 60), np.uint8)
    m[5:15, 5:20] = 1
    m[25:35, 40:55] = 1
    m[20:24, 2:6] = 1
    poly, holed = instance_polygon(m)
    back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly.reshape(-1).tolist()], 40, 60)))
    assert not holed and np.array_equal(back, m)
    ring = np.zeros((30, 30), np.uint8)
    ring[5:25, 5:25] = 1
    ring[10:20, 10:20] = 0
    assert instance_polygon(ring)[1] is True


def test_training_skips_unannotated_images_and_resamples_empty_ones(tmp_path):
    poly = [[10, 10, 30, 10, 30, 30, 10, 30]]
    anns = [  # image 1: one near-zero-width object (dropped by the resize); image 2: a real one
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 1e-4, 20],
         "segmentation": [[10, 10, 10 + 1e-4, 10, 10 + 1e-4, 30, 10, 30]]},  # as thin as its box
        {"id": 2, "image_id": 2, "category_id": 3, "bbox": [10, 10, 20, 20], "segmentation": poly},
    ]
    images = [{"id": i, "file_name": "a.png" if i != 2 else "b.png", "height": 40, "width": 50} for i in (1, 2, 3)]
    ann_file = write_coco(tmp_path, anns, images=images)
    # image 3 has no annotation: a background image, trained on unless skip_empty (the original's choice)
    assert len(CocoDataset(ann_file, tmp_path, train=True)) == 3
    ds = CocoDataset(ann_file, tmp_path, train=True, skip_empty=True)
    assert len(ds) == 2 and ds.skipped_background == 1
    ds.cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(
        max_size=64, augment_photometric=False, augment_expand=False, augment_crop=False, augment_mirror=False)
    _, target = ds[0]
    assert target["labels"].tolist() == [1]  # image 1 came out empty: image 2 was used instead
