"""Real-world data, read right (round two): boxes that disagree with their masks, Roboflow's root
category, YOLO labels in pixel units, LabelMe AI-mask shapes, val-file quirks (no area, ids used
twice, duplicate annotations) and thin objects that vanish at the model's input size.

Every input is made here (images with cv2, tiny JSON files); every expected value comes from
outside the package: the drawn geometry and pycocotools (``mask.toBbox``, ``mask.area``, COCOeval)."""
import base64
import json

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from yolact.data.check import check_dataset, conversion_summary
from yolact.data.coco import CocoDataset, read_coco_json
from yolact.data.labelme import labelme_to_coco
from yolact.data.yolo import yolo_to_coco

H, W = 80, 100


def square(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def write(tmp_path, anns, categories=None, images=None, name="ann.json"):
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), img)
    data = {"images": images or [{"id": 1, "file_name": "a.png", "height": H, "width": W},
                                 {"id": 2, "file_name": "b.png", "height": H, "width": W}],
            "annotations": anns, "categories": categories or [{"id": 1, "name": "thing"}]}
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def mask_box(seg, h=H, w=W):
    """pycocotools' box of a segmentation (polygons or RLE): the reference."""
    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
    return mask_utils.toBbox(rle).tolist()


def xyxy(b):
    return [b[0], b[1], b[0] + b[2], b[1] + b[3]]


# ---- 1. boxes that disagree with their masks ------------------------------------------------

def test_boxes_written_as_xyxy_are_taken_from_the_masks_with_the_guess(tmp_path, capsys):
    segs = [square(40, 30, 20, 20), square(10, 10, 30, 15), square(60, 50, 25, 20)]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1.0, "segmentation": s,
             "bbox": xyxy(mask_box(s))} for i, s in enumerate(segs)]  # [x1, y1, x2, y2], not [x, y, w, h]
    p = write(tmp_path, anns)
    ds = CocoDataset(p, tmp_path, train=True)
    err = capsys.readouterr().err
    line = (f"note: {p}: 3 of 3 boxes disagree with their masks (IoU < 0.5); is bbox [x1, y1, x2, y2]? "
            "boxes taken from the masks (annotations 1, 2, 3)")
    assert line in err.splitlines()
    _, s = ds.load_sample(0)
    assert s.boxes.tolist() == [xyxy(mask_box(seg)) for seg in segs]
    rep = check_dataset(p, tmp_path / "check", images=str(tmp_path), samples=1)
    assert line in rep.lines()


def test_boxes_measured_from_the_bottom_are_named_so(tmp_path):
    segs = [square(40, 10, 20, 10), square(5, 5, 30, 15)]
    anns = []
    for i, seg in enumerate(segs):
        x, y, w, h = mask_box(seg)
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": seg, "area": w * h,
                     "bbox": [x, H - y - h, w, h]})  # y of the bottom edge, counted from the image's bottom
    ds = CocoDataset(write(tmp_path, anns), tmp_path, train=False, verbose=False)
    assert len(ds.read_notes) == 1
    assert "2 of 2 boxes disagree with their masks (IoU < 0.5); measured from the bottom?" in ds.read_notes[0]
    assert ds.load_sample(0)[1].boxes.tolist() == [xyxy(mask_box(seg)) for seg in segs]


def test_boxes_that_agree_keep_their_exact_values(tmp_path):
    # COCO measures boxes on the polygon's vertices, not on the rasterised mask: a box a pixel off
    # the mask's extent, or with fractional values, is the file's and stays bit for bit.
    seg = [[40.3, 30.7, 59.5, 30.7, 59.5, 50.6, 40.3, 50.6]]
    tiny = square(70, 70, 2, 2)
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg, "area": 1.0, "bbox": [40.3, 30.7, 19.2, 19.9]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": tiny, "area": 1.0, "bbox": [70, 70, 3, 3]}]
    p = write(tmp_path, anns)
    ds = CocoDataset(p, tmp_path, train=False, verbose=False)
    assert ds.read_notes == []
    scale = np.array([W, H, W, H], np.float64)
    want = np.array([xyxy(a["bbox"]) for a in anns], np.float64) / scale * scale  # as the original
    assert np.array_equal(ds.load_sample(0)[1].boxes, want)
    assert read_coco_json(p)["annotations"] == anns  # nothing changed, nothing said


def test_missing_or_zero_boxes_and_rle_without_box_come_from_the_mask(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[12:30, 50:77] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode()
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": square(5, 5, 20, 10), "area": 1.0,
             "bbox": [0, 0, 0, 0]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": square(30, 40, 10, 30), "area": 1.0},
            {"id": 3, "image_id": 1, "category_id": 1, "segmentation": rle, "area": 1.0}]
    ds = CocoDataset(write(tmp_path, anns), tmp_path, train=False, verbose=False)
    assert ds.problems == [] and len(ds.read_notes) == 1
    assert "3 annotation(s) have no usable box (missing, [0, 0, 0, 0] or malformed); boxes taken from their masks" \
        in ds.read_notes[0]
    want = [xyxy(mask_box(a["segmentation"])) for a in anns]
    assert want[2] == [50, 12, 77, 30]
    assert ds.load_sample(0)[1].boxes.tolist() == want


# ---- 2. Roboflow's root category -----------------------------------------------------------

ROBOFLOW_CATS = [{"id": 0, "name": "shapes-xyz", "supercategory": "none"},
                 {"id": 1, "name": "circle", "supercategory": "shapes-xyz"},
                 {"id": 2, "name": "square", "supercategory": "shapes-xyz"},
                 {"id": 3, "name": "star", "supercategory": "shapes-xyz"}]


def test_roboflow_root_category_is_left_out_and_empty_classes_named(tmp_path, capsys):
    seg1, seg2 = square(10, 10, 20, 20), square(50, 40, 20, 20)
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg1, "area": 400.0, "bbox": mask_box(seg1)},
            {"id": 2, "image_id": 2, "category_id": 2, "segmentation": seg2, "area": 400.0, "bbox": mask_box(seg2)}]
    p = write(tmp_path, anns, ROBOFLOW_CATS)
    ds = CocoDataset(p, tmp_path, train=True)
    err = capsys.readouterr().err.splitlines()
    assert ds.class_names == ("circle", "square", "star") and ds.category_ids == [1, 2, 3]
    assert (f"note: {p}: category 'shapes-xyz' (id 0) is only the other categories' supercategory and has no "
            "annotations; left out") in err
    assert f"warning: {p}: 1 of 3 classes have no instances: star (the model still gets a class for each)" in err
    assert [ds.load_sample(i)[1].labels.tolist() for i in range(2)] == [[0], [1]]
    # evaluation matches the model's classes to the same three categories
    from yolact.evaluation.coco import model_category_ids
    assert model_category_ids(("circle", "square", "star"), read_coco_json(p), p) == [1, 2, 3]
    rep = check_dataset(p, tmp_path / "check", images=str(tmp_path), samples=1)
    assert list(rep.per_class) == ["circle", "square", "star"] and rep.empty_classes == ["star"]
    assert any("classes have no instances: star" in ln for ln in rep.lines())


def test_a_supercategory_with_its_own_annotations_stays(tmp_path):
    seg = square(10, 10, 20, 20)
    anns = [{"id": 1, "image_id": 1, "category_id": 0, "segmentation": seg, "area": 400.0, "bbox": mask_box(seg)}]
    data = read_coco_json(write(tmp_path, anns, ROBOFLOW_CATS))
    assert [c["id"] for c in data["categories"]] == [0, 1, 2, 3]


# ---- 3. YOLO labels in pixel coordinates ---------------------------------------------------

def yolo_set(tmp_path, rows):
    root = tmp_path / "y"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "p.png"), np.full((160, 200, 3), 80, np.uint8))
    (root / "labels" / "p.txt").write_text("\n".join(rows) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images", "names": ["a", "b"]}))
    return root


def test_yolo_image_whose_rows_were_all_skipped_is_not_a_background_image(tmp_path):
    root = yolo_set(tmp_path, ["0 10 20 160 20 160 90", "0 0.5 0.5 0.5 0.5 0.5 0.5"])
    cv2.imwrite(str(root / "images" / "bg.png"), np.full((160, 200, 3), 80, np.uint8))  # no label file
    out, problems = yolo_to_coco(root / "data.yaml", "train", tmp_path / "c.json")
    data = json.loads(out.read_text())
    assert [i["file_name"] for i in data["images"]] == ["bg.png"]
    assert problems[-1] == (f"{root / 'labels' / 'p.txt'}: all 2 object(s) were skipped (coordinates outside 0..1: "
                            "pixel units? YOLO labels are normalised; covers no pixel of the 200x160 image); "
                            "image skipped, not trained as a background image")


def test_yolo_rows_in_pixel_units_are_skipped_with_file_and_line(tmp_path):
    root = yolo_set(tmp_path, ["0 10 20 160 20 160 90",            # pixels: skipped
                               "1 0.1 0.1 0.5 0.1 0.5 1.0021",      # rounding noise: clipped to 1
                               "0 -2 0.5 0.5 0.5 0.5 0.7",          # below 0: skipped
                               "0 0.5 0.5 0.5 0.5 0.5 0.5"])         # covers no pixel: skipped
    out, problems = yolo_to_coco(root / "data.yaml", "train", tmp_path / "c.json")
    lp = root / "labels" / "p.txt"
    assert problems[0] == (f"{lp}:1: coordinates outside 0..1: pixel units? YOLO labels are normalised "
                           "(found 160); line skipped")
    assert problems[1].startswith(f"{lp}:3: coordinates outside 0..1: pixel units?")
    assert problems[2] == f"{lp}:4: covers no pixel of the 200x160 image; line skipped"
    data = json.loads(out.read_text())
    assert len(data["annotations"]) == 1 and data["annotations"][0]["source"] == f"{lp}:2"
    want = mask_utils.merge(mask_utils.frPyObjects([[20, 16, 100, 16, 100, 160]], 160, 200))
    assert data["annotations"][0]["bbox"] == mask_utils.toBbox(want).tolist()
    summary = conversion_summary(data, problems)
    assert "instances: 1" in summary and "skipped: 3" in summary


# ---- 4. LabelMe AI-mask shapes ---------------------------------------------------------------

def b64_png(mask):
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    return base64.b64encode(buf.tobytes()).decode()


def test_labelme_mask_shapes_are_placed_as_labelme_does(tmp_path):
    lm = tmp_path / "lm"
    lm.mkdir()
    cv2.imwrite(str(lm / "p.png"), np.full((H, W, 3), 70, np.uint8))
    crop = np.zeros((15, 22), bool)
    cv2.circle(crop.view(np.uint8), (10, 7), 6, 1, -1)
    crop[0, 21] = True  # a corner pixel: the placement is exact to the pixel
    edge = np.ones((10, 10), bool)  # reaches past the image's right edge: cut off
    (lm / "p.json").write_text(json.dumps({"imagePath": "p.png", "imageHeight": H, "imageWidth": W, "shapes": [
        {"label": "blob", "shape_type": "mask", "points": [[12.0, 7.0], [33.0, 21.0]], "mask": b64_png(crop)},
        {"label": "blob", "shape_type": "mask", "points": [[95.0, 70.0], [104.0, 79.0]], "mask": b64_png(edge)}]}))
    out, problems = labelme_to_coco(lm, tmp_path / "c.json")
    assert problems == []
    ds = CocoDataset(out, lm, train=True, verbose=False)
    _, s = ds.load_sample(0)
    want = np.zeros((H, W), np.uint8)
    want[7:22, 12:34] = crop  # labelme: mask[y1:y2 + 1, x1:x2 + 1] = shape["mask"]
    want2 = np.zeros((H, W), np.uint8)
    want2[70:80, 95:100] = 1
    assert np.array_equal(s.masks[0], want) and np.array_equal(s.masks[1], want2)
    assert s.boxes[0].tolist() == xyxy(mask_box(mask_utils.encode(np.asfortranarray(want))))


def test_labelme_image_whose_shapes_were_all_dropped_is_skipped_not_background(tmp_path):
    lm = tmp_path / "lm"
    lm.mkdir()
    for n in ("p", "q", "r"):
        cv2.imwrite(str(lm / f"{n}.png"), np.full((H, W, 3), 70, np.uint8))
    (lm / "p.json").write_text(json.dumps({"imagePath": "p.png", "shapes": [
        {"label": "wire", "shape_type": "line", "points": [[1, 1], [50, 50]]},
        {"label": "wire", "shape_type": "polygon", "points": [[1, 1], [5, 5]]}]}))
    (lm / "q.json").write_text(json.dumps({"imagePath": "q.png", "shapes": []}))  # annotated as empty
    (lm / "r.json").write_text(json.dumps({"imagePath": "r.png", "shapes": [
        {"label": "box", "shape_type": "rectangle", "points": [[10, 10], [30, 30]]}]}))
    out, problems = labelme_to_coco(lm, tmp_path / "c.json")
    data = json.loads(out.read_text())
    names = sorted(p.rsplit("/", 1)[-1] for p in (i["file_name"] for i in data["images"]))
    assert names == ["q.png", "r.png"]  # p is not a background image
    assert problems[-1] == (f"{lm / 'p.json'}: all 2 object(s) were skipped (degenerate polygon (2 points); "
                            "unsupported shape type 'line'); image skipped, not trained as a background image")
    assert any("skipped" in ln for ln in conversion_summary(data, problems))


# ---- 5. val-file quirks ----------------------------------------------------------------------

def perfect_results(data):
    h = {i["id"]: (i["height"], i["width"]) for i in data["images"]}
    out = []
    for a in data["annotations"]:
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], *h[a["image_id"]]))
        rle["counts"] = rle["counts"].decode()
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle,
                    "bbox": mask_utils.toBbox(rle).tolist(), "score": 0.9})
    return out


def val_file(tmp_path, ids, area=True):
    segs = [square(5, 5, 20, 20), square(40, 40, 30, 20), square(10, 50, 15, 25), square(60, 5, 30, 30)]
    anns = []
    for k, (seg, i) in enumerate(zip(segs, ids)):
        a = {"id": i, "image_id": 1 + k % 2, "category_id": 1, "iscrowd": 0, "segmentation": seg, "bbox": mask_box(seg)}
        if area:
            a["area"] = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(seg, H, W))))
        anns.append(a)
    return write(tmp_path, anns), anns


def test_val_file_without_area_gets_the_masks_area_and_scores(tmp_path):
    from yolact.evaluation.coco import coco_eval

    p, anns = val_file(tmp_path, [1, 2, 3, 4], area=False)
    notes = []
    data = read_coco_json(p, notes)
    assert notes == [f"{p}: 4 annotation(s) have no 'area'; computed from their masks"]
    for a in data["annotations"]:
        assert a["area"] == float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], H, W))))
    m = coco_eval(p, perfect_results(data))  # pycocotools needs 'area': this used to end in a KeyError
    assert m["segm"]["AP"] == pytest.approx(1.0) and m["bbox"]["AP"] == pytest.approx(1.0)


def test_annotation_ids_used_twice_are_renumbered(tmp_path):
    from yolact.evaluation.coco import coco_eval

    p, anns = val_file(tmp_path, [1, 1, 2, 2])
    notes = []
    data = read_coco_json(p, notes)
    assert notes == [f"{p}: 2 annotation ids were used more than once; renumbered"]
    ids = [a["id"] for a in data["annotations"]]
    assert len(set(ids)) == 4 and ids[:1] == [1]
    # pycocotools keeps one annotation per id: without renumbering, half the objects vanish
    m = coco_eval(p, perfect_results(data))
    assert m["segm"]["AP"] == pytest.approx(1.0)


def test_coco_training_image_whose_annotations_were_all_rejected_is_named(tmp_path):
    anns = [{"id": 1, "image_id": 1, "category_id": 99, "segmentation": square(5, 5, 9, 9), "bbox": [5, 5, 9, 9]},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": square(5, 5, 9, 9), "bbox": [5, 5, 9, 9]}]
    p = write(tmp_path, anns)
    ds = CocoDataset(p, tmp_path, train=True, verbose=False)
    assert len(ds) == 1 and ds.image_info(0)["id"] == 2
    assert ds.problems[-1] == (f"{p}: image 1 (a.png): all its annotations were skipped (see above); image skipped, "
                               "not trained as a background image")


def test_data_check_reports_exact_duplicate_annotations(tmp_path):
    seg = square(10, 10, 20, 20)
    anns = [{"id": i, "image_id": 1, "category_id": 1, "segmentation": seg, "area": 400.0, "bbox": mask_box(seg)}
            for i in (1, 2)]
    p = write(tmp_path, anns)
    rep = check_dataset(p, tmp_path / "check", images=str(tmp_path), samples=1)
    assert rep.duplicate_annotations == [["a.png:1", "a.png:2"]]
    assert (f"warning: {p}: 1 annotation(s) repeat another exactly (same image, category and segmentation), "
            "e.g. a.png:1 = a.png:2") in rep.lines()


# ---- 6. thin objects -------------------------------------------------------------------------

def test_data_check_augmented_names_objects_that_lose_every_mask_pixel(tmp_path):
    big = np.full((200, 2200, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "wide.png"), big)
    wire = [[1000, 10, 1001, 10, 1001, 190, 1000, 190]]  # one pixel wide: a quarter pixel at 550
    blob = square(100, 50, 200, 100)
    anns = [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": wire, "area": 180.0, "bbox": mask_box(wire, 200, 2200)},
            {"id": 8, "image_id": 1, "category_id": 1, "segmentation": blob, "area": 1.0, "bbox": mask_box(blob, 200, 2200)}]
    p = write(tmp_path, anns, images=[{"id": 1, "file_name": "wide.png", "height": 200, "width": 2200}])
    rep = check_dataset(p, tmp_path / "check", images=str(tmp_path), samples=1, augmented=True,
                        config="yolact_base")  # 550 px
    assert rep.thin_objects == ["wide.png:7"]
    assert f"warning: {p}: 1 objects lose every mask pixel at 550 px: wide.png:7; `--mask-resize area` keeps any " \
           "coverage" in rep.lines()


def test_mask_resize_area_keeps_thin_objects(tmp_path):
    # The same wire under --mask-resize area: its coverage is kept, and data check says so.
    big = np.full((200, 2200, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "wide.png"), big)
    wire = [[1000, 10, 1001, 10, 1001, 190, 1000, 190]]
    anns = [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": wire, "area": 180.0,
             "bbox": mask_box(wire, 200, 2200)}]
    p = write(tmp_path, anns, images=[{"id": 1, "file_name": "wide.png", "height": 200, "width": 2200}])
    rep = check_dataset(p, tmp_path / "check", images=str(tmp_path), samples=1, augmented=True,
                        config="yolact_base", mask_resize="area")
    assert rep.thin_objects == []
    bilinear = check_dataset(p, tmp_path / "check2", images=str(tmp_path), samples=1, augmented=True,
                             config="yolact_base")
    assert "`--mask-resize area` keeps any coverage" in "\n".join(bilinear.lines())


def test_mask_resize_modes():
    from yolact.config import get_config
    from yolact.data.augment import _resize_masks

    assert get_config("yolact_base").mask_resize == "bilinear"  # the original's, by default
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 300, 400), np.uint8)
    masks[0, 40:200, 50:300] = 1          # an ordinary object
    masks[1, 10:290, 200] = 1             # a one-pixel wire
    masks[2] = rng.random((300, 400)) < 0.02  # scattered pixels
    bil, area = _resize_masks(masks, 96), _resize_masks(masks, 96, "area")
    assert not bil[1].any() and area[1].any()  # the wire survives only with 'area'
    assert (area >= bil).all()                 # 'area' only adds pixels
    # any coverage: every output pixel whose source region holds an object pixel, brute force
    for k in range(3):
        want = np.array([[masks[k, i * 300 // 96:-(-(i + 1) * 300 // 96), j * 400 // 96:-(-(j + 1) * 400 // 96)].any()
                          for j in range(96)] for i in range(96)])
        assert np.array_equal(area[k].astype(bool), want)
    # growing is the original's bilinear in both modes
    assert np.array_equal(_resize_masks(masks, 640, "area"), _resize_masks(masks, 640))
    with pytest.raises(ValueError, match="mask_resize 'nearest'"):
        _resize_masks(masks, 96, "nearest")


def test_train_flag_sets_the_mask_resize(tmp_path):
    import argparse

    from yolact.training.api import _config

    args = argparse.Namespace(config="yolact_resnet18", img_size=None, no_augment=False, no_expand=False,
                              mask_resize="area")
    assert _config(args, ["a"]).mask_resize == "area"
    args.mask_resize = "bilinear"
    assert _config(args, ["a"]).mask_resize == "bilinear"
