"""People's data, read right: EXIF orientation at every entry point, image sizes checked against
the files, LabelMe background images and Windows paths, bounded polygon geometry.

Every expected value comes from outside the package: the known geometry of the drawn shapes,
``cv2.imread`` and PIL's ``exif_transpose`` for orientation, pycocotools for masks."""
import json
import resource

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils

from yolact.data.coco import CocoDataset
from yolact.data.images import image_size, read_image
from yolact.errors import YolactError

T = Image.Transpose
# The transpose that stores an upright picture so that Orientation=o shows it upright again.
STORE = {1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
         6: T.ROTATE_90, 7: T.TRANSVERSE, 8: T.ROTATE_270}
H, W = 48, 80  # upright size
# An object in the upright frame: a bright rectangle (x 10..40, y 8..30), and corner marks
OBJ = (10, 8, 40, 30)


def upright_picture():
    img = np.full((H, W, 3), 40, np.uint8)
    x1, y1, x2, y2 = OBJ
    img[y1:y2, x1:x2] = (30, 220, 240)
    img[:6, -6:] = (255, 0, 0)  # top-right mark: any flip or turn moves it
    img[-6:, :4] = (0, 0, 255)
    return img


def save_oriented(path, upright_bgr, orientation, fmt=None, **kw):
    """Store ``upright_bgr`` turned so that EXIF ``orientation`` shows it upright."""
    im = Image.fromarray(np.ascontiguousarray(upright_bgr[:, :, ::-1]))
    stored = im.transpose(STORE[orientation]) if STORE[orientation] is not None else im
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, fmt, exif=exif.tobytes(), **kw)
    return path


def object_polygon():
    x1, y1, x2, y2 = OBJ
    return [float(x1), float(y1), float(x2), float(y1), float(x2), float(y2), float(x1), float(y2)]


def object_mask():
    m = np.zeros((H, W), np.uint8)
    x1, y1, x2, y2 = OBJ
    m[y1:y2, x1:x2] = 1
    return m


# ------------------------------------------------------------------ 1. EXIF orientation
@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_read_image_applies_all_eight_orientations(tmp_path, fmt, ext):
    up = upright_picture()
    for o in range(1, 9):
        p = save_oriented(tmp_path / f"o{o}.{ext}", up, o, fmt, **({"quality": 100} if fmt in ("JPEG", "WEBP") else {}))
        img = read_image(p)
        assert img.shape == (H, W, 3) and image_size(p) == (W, H), (fmt, o)
        pil = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))[:, :, ::-1]
        assert np.abs(img.astype(int) - pil).max() <= 1, (fmt, o)  # PIL's exif_transpose, same frame
        assert np.abs(img.astype(int) - up).mean() < 3, (fmt, o)  # the known picture
        if fmt in ("JPEG", "PNG", "WEBP"):  # what cv2.imread gives (OpenCV 5 cannot imread TIFF 5..8)
            assert np.array_equal(img, cv2.imread(str(p))), (fmt, o)


def test_orientation_keeps_the_other_conversions(tmp_path):
    gray16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 17)
    im = Image.fromarray(gray16).transpose(T.ROTATE_90)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "g.png", exif=exif.tobytes())
    img = read_image(tmp_path / "g.png")
    assert img.dtype == np.uint8 and img.shape == (H, W, 3)
    expect = np.round(gray16 / 257.0).astype(np.uint8)
    assert np.array_equal(img[:, :, 0], expect) and np.array_equal(img[:, :, 2], expect)
    rgba = np.dstack([upright_picture()[:, :, ::-1], np.full((H, W), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").transpose(T.ROTATE_270).save(tmp_path / "a.png", exif=_exif(8))
    assert np.array_equal(read_image(tmp_path / "a.png"), upright_picture())


def _exif(o):
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()


def test_serve_upload_decoder_is_upright(tmp_path):
    from yolact.serve.uploads import decode_image

    p = save_oriented(tmp_path / "s.jpg", upright_picture(), 6, "JPEG", quality=95)
    img = decode_image(p.read_bytes(), max_pixels=10 ** 6)
    assert np.array_equal(img, read_image(p)) and np.array_equal(img, cv2.imread(str(p)))


def _write_coco(root, images, anns, cats=({"id": 1, "name": "thing"},)):
    p = root / "ann.json"
    p.write_text(json.dumps({"images": images, "annotations": anns, "categories": list(cats)}))
    return p


def _obj_ann(ann_id=1, image_id=1, poly=None, **kw):
    x1, y1, x2, y2 = OBJ
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float((x2 - x1) * (y2 - y1)),
            "segmentation": [poly or object_polygon()], **kw}


def _mask_covers_object(ds, i=0):
    img, s = ds.load_sample(i)
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([object_polygon()], H, W)))
    assert img.shape[:2] == (H, W)
    assert np.array_equal(s.masks[0], expected)
    # and the pixels under the mask are the object's colour: annotation and picture agree
    assert np.abs(img[s.masks[0] > 0].mean(0) - (30, 220, 240)).max() < 8


def test_coco_reader_upright_frame(tmp_path):
    save_oriented(tmp_path / "p.jpg", upright_picture(), 6, "JPEG", quality=95)
    ann = _write_coco(tmp_path, [{"id": 1, "file_name": "p.jpg", "height": H, "width": W}], [_obj_ann()])
    ds = CocoDataset(ann, tmp_path, train=False, verbose=False)
    assert not ds.problems
    _mask_covers_object(ds)


def test_labelme_reader_upright_frame_and_data_check(tmp_path):
    from yolact.data.check import check_dataset
    from yolact.data.labelme import labelme_to_coco

    lm = tmp_path / "lm"
    lm.mkdir()
    save_oriented(lm / "p.jpg", upright_picture(), 6, "JPEG", quality=95)
    x1, y1, x2, y2 = OBJ
    (lm / "p.json").write_text(json.dumps({
        "imagePath": "p.jpg", "imageHeight": H, "imageWidth": W, "imageData": None,  # LabelMe: upright size
        "shapes": [{"label": "thing", "shape_type": "rectangle", "points": [[x1, y1], [x2, y2]]}]}))
    out, problems = labelme_to_coco(lm, tmp_path / "c.json")
    assert problems == []
    _mask_covers_object(CocoDataset(out, lm, train=False, verbose=False))
    rep = check_dataset(lm, tmp_path / "check")
    assert rep.problems == [] and rep.images == 1 and rep.instances == 1


def test_labelme_embedded_image_data_is_upright(tmp_path):
    import base64

    from yolact.data.labelme import labelme_to_coco

    lm = tmp_path / "lm"
    lm.mkdir()
    raw = save_oriented(tmp_path / "p.jpg", upright_picture(), 8, "JPEG", quality=95).read_bytes()
    x1, y1, x2, y2 = OBJ
    (lm / "p.json").write_text(json.dumps({
        "imagePath": "gone.jpg", "imageHeight": H, "imageWidth": W, "imageData": base64.b64encode(raw).decode(),
        "shapes": [{"label": "thing", "shape_type": "rectangle", "points": [[x1, y1], [x2, y2]]}]}))
    out, problems = labelme_to_coco(lm, tmp_path / "c.json")
    assert problems == []
    _mask_covers_object(CocoDataset(out, lm, train=False, verbose=False))


def test_yolo_reader_upright_frame(tmp_path):
    from yolact.data.yolo import yolo_to_coco

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    save_oriented(tmp_path / "images" / "train" / "p.jpg", upright_picture(), 6, "JPEG", quality=95)
    pts = np.array(object_polygon()).reshape(-1, 2) / [W, H]
    (tmp_path / "labels" / "train" / "p.txt").write_text("0 " + " ".join(f"{v:.6f}" for v in pts.reshape(-1)) + "\n")
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": ["thing"]}))
    out, problems = yolo_to_coco(tmp_path / "data.yaml", "train", tmp_path / "c.json")
    img = json.loads(out.read_text())["images"][0]
    assert problems == [] and (img["width"], img["height"]) == (W, H)
    _mask_covers_object(CocoDataset(out, tmp_path / "images" / "train", train=False, verbose=False))


def test_mask_png_reader_upright_frame(tmp_path):
    from yolact.data.maskpng import mask_pngs_to_coco

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    save_oriented(tmp_path / "images" / "p.jpg", upright_picture(), 6, "JPEG", quality=95)
    cv2.imwrite(str(tmp_path / "masks" / "p.png"), object_mask())  # instance 1, drawn on the upright photo
    (tmp_path / "classes.json").write_text(json.dumps({"1": "thing"}))
    out, problems = mask_pngs_to_coco(tmp_path, tmp_path / "c.json")
    assert problems == []
    ds = CocoDataset(out, tmp_path, train=False, verbose=False)
    img, s = ds.load_sample(0)
    assert np.array_equal(s.masks[0], object_mask())
    assert np.abs(img[s.masks[0] > 0].mean(0) - (30, 220, 240)).max() < 8


def test_predict_on_path_and_on_cv2_imread_agree(tmp_path):
    import yolact

    model = yolact.load(yolact.demo_weights_path())
    p = save_oriented(tmp_path / "p.jpg", cv2.resize(upright_picture(), (160, 96)), 6, "JPEG", quality=95)
    from_path = model.predict(str(p), score_threshold=0.0)
    from_array = model.predict(cv2.imread(str(p)), score_threshold=0.0)
    assert from_path.image_shape == from_array.image_shape == (96, 160)
    assert np.array_equal(from_path.boxes, from_array.boxes) and np.array_equal(from_path.masks, from_array.masks)


def test_eval_on_rotated_files_equals_eval_on_upright_files(tmp_path):
    """The synthetic val set stored sideways (PNG, lossless) with EXIF tags gives the same AP."""
    import yolact
    from yolact.data.synth import generate
    from yolact.evaluation.coco import evaluate

    generate(tmp_path / "d", 0, 4, size=128, seed=5, max_objects=3, style="simple")
    data = json.loads((tmp_path / "d" / "val.json").read_text())
    for d in ("up", "side"):
        (tmp_path / d).mkdir()
    for k, img in enumerate(data["images"]):
        pic = cv2.imread(str(tmp_path / "d" / "val" / img["file_name"]))
        name = img["file_name"].rsplit(".", 1)[0] + ".png"
        cv2.imwrite(str(tmp_path / "up" / name), pic)
        save_oriented(tmp_path / "side" / name, pic, (6, 8, 3, 5)[k % 4], "PNG")
        img["file_name"] = name
    ann = tmp_path / "val.json"
    ann.write_text(json.dumps(data))
    model = yolact.load(yolact.demo_weights_path())
    up = evaluate(model, ann, tmp_path / "up", progress=False)
    side = evaluate(model, ann, tmp_path / "side", progress=False)
    assert up["segm"]["AP"] > 0.3
    for t in ("bbox", "segm"):
        assert side[t]["AP"] == up[t]["AP"] and side[t]["AP50"] == up[t]["AP50"]


# ------------------------------------------------------------------ 3. JSON size against the file
def test_size_mismatch_is_named_skipped_counted_or_stops(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "p.png"), upright_picture())
    cv2.imwrite(str(tmp_path / "q.png"), upright_picture())
    images = [{"id": 1, "file_name": "p.png", "height": W, "width": H},  # swapped
              {"id": 2, "file_name": "q.png", "height": H, "width": W}]
    ann = _write_coco(tmp_path, images, [_obj_ann(1, 1), _obj_ann(2, 2)])
    ds = CocoDataset(ann, tmp_path, train=True)
    assert len(ds) == 1 and ds.image_info(0)["file_name"] == "q.png"
    assert len(ds.problems) == 1
    assert f"{ann}: image 1 (p.png): the JSON says {H}x{W} but the file is {W}x{H}" in ds.problems[0]
    assert f"({tmp_path / 'p.png'}, upright, EXIF orientation applied, width and height swapped)" in ds.problems[0]
    err = capsys.readouterr().err
    assert "warning: " in err and "skipped 1" in err and "Traceback" not in err
    with pytest.raises(YolactError, match=rf"p.png\): the JSON says {H}x{W} but the file is {W}x{H}"):
        CocoDataset(ann, tmp_path, train=True, size_mismatch="error")
    # A JSON made on a 2x copy: the same check
    images[1].update(height=2 * H, width=2 * W)
    ann = _write_coco(tmp_path, images, [_obj_ann(1, 1), _obj_ann(2, 2)])
    with pytest.raises(YolactError, match=r"no usable images \(of 2\).*2 image\(s\) differ in size"):
        CocoDataset(ann, tmp_path, train=True, verbose=False)


def test_size_missing_from_json_is_taken_from_the_file(tmp_path):
    save_oriented(tmp_path / "p.jpg", upright_picture(), 8, "JPEG", quality=95)
    ann = _write_coco(tmp_path, [{"id": 1, "file_name": "p.jpg"}], [_obj_ann()])
    ds = CocoDataset(ann, tmp_path, train=False, verbose=False)
    assert (ds.image_info(0)["width"], ds.image_info(0)["height"]) == (W, H)
    _mask_covers_object(ds)


def test_data_check_reports_size_mismatch(tmp_path):
    from yolact.data.check import check_dataset

    cv2.imwrite(str(tmp_path / "p.png"), upright_picture())
    cv2.imwrite(str(tmp_path / "q.png"), upright_picture())
    ann = _write_coco(tmp_path, [{"id": 1, "file_name": "p.png", "height": 2 * H, "width": 2 * W},
                                 {"id": 2, "file_name": "q.png", "height": H, "width": W}],
                      [_obj_ann(1, 1), _obj_ann(2, 2)])
    rep = check_dataset(ann, tmp_path / "check", images=str(tmp_path))
    text = "\n".join(rep.lines())
    assert rep.images == 1 and f"(p.png): the JSON says {2 * W}x{2 * H} but the file is {W}x{H}" in text
    assert "1 x the JSON says WxH but the file is WxH" in text  # grouped by reason


def test_data_check_reads_both_splits_as_training_does(tmp_path, capsys):
    """New-user report: `data check` on a folder with train and val read the train split only,
    so an unreadable val image (which training validates on) went unmentioned."""
    from yolact.cli import main
    from yolact.data.synth import generate

    generate(tmp_path / "d", 4, 3, size=64, seed=1, max_objects=2)
    bad = sorted((tmp_path / "d" / "val").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:100])
    assert main(["data", "check", str(tmp_path / "d"), "--out", str(tmp_path / "check")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'd'} [train] (coco): 4 images" in out and f"{tmp_path / 'd'} [val] (coco): 2 images" in out
    assert f"{bad} is not a readable image" in out
    assert (tmp_path / "check" / "overview.png").exists() and (tmp_path / "check" / "val" / "overview.png").exists()


def test_classes_file_is_refused_for_data_that_names_its_own_classes(tmp_path, capsys):
    """New-user report: `train --data coco_folder --classes classes.txt` ignored the file
    quietly (all five classes trained); COCO and YOLO data name their classes themselves."""
    from yolact.cli import main
    from yolact.data.synth import generate

    generate(tmp_path / "d", 4, 2, size=64, seed=1, max_objects=2)
    (tmp_path / "classes.txt").write_text("circle\nsquare\n")
    assert main(["train", "--data", str(tmp_path / "d"), "--classes", str(tmp_path / "classes.txt"), "--iters", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "a COCO dataset names its own classes; --classes" in err and "Traceback" not in err


# ------------------------------------------------------------------ 5. bounded geometry, true reasons
def test_far_out_vertex_is_clipped_with_bounded_memory(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "p.png"), upright_picture())
    # A strip from (10, 8) running down far beyond the image, and the slanted vertex
    strip = [10.0, 8.0, 30.0, 8.0, 30.0, 3.5e8, 10.0, 3.5e8]
    slant = [10.0, 8.0, 40.0, 8.0, 2e8, 3.5e8]
    anns = [_obj_ann(7, poly=strip, bbox=[10, 8, 20, 40]), _obj_ann(8, poly=slant, bbox=[10, 8, 70, 40])]
    ann = _write_coco(tmp_path, [{"id": 1, "file_name": "p.png", "height": H, "width": W}], anns)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ds = CocoDataset(ann, tmp_path, train=False)
    _, s = ds.load_sample(0)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB
    assert len(ds.notes) == 2 and "annotation 7: vertex (30, 3.5e+08) lies far outside the 80x48 image" in ds.notes[0]
    assert "clipped" in capsys.readouterr().err
    # The strip: pycocotools on the same strip ending just below the image
    near = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[10, 8, 30, 8, 30, H + 5, 10, H + 5]], H, W)))
    assert np.array_equal(s.masks[0], near)
    # The slanted triangle: brute force, pixel centres inside the triangle (edges may differ by a pixel)
    yy, xx = np.mgrid[:H, :W] + 0.5
    (ax, ay), (bx, by), (cx, cy) = np.array(slant).reshape(3, 2)
    def side(px, py, x1, y1, x2, y2):
        return (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    d1, d2, d3 = side(xx, yy, ax, ay, bx, by), side(xx, yy, bx, by, cx, cy), side(xx, yy, cx, cy, ax, ay)
    inside = ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
    got = s.masks[1].astype(bool)
    assert (got & inside).sum() / (got | inside).sum() > 0.97


def test_labelme_and_yolo_far_out_points_stay_bounded(tmp_path, capsys):
    from yolact.data.labelme import labelme_to_coco
    from yolact.data.yolo import yolo_to_coco

    lm = tmp_path / "lm"
    lm.mkdir()
    cv2.imwrite(str(lm / "p.png"), upright_picture())
    (lm / "p.json").write_text(json.dumps({"imagePath": "p.png", "shapes": [
        {"label": "a", "shape_type": "polygon", "points": [[10, 8], [30, 8], [30, 3.5e8], [10, 3.5e8]]},
        {"label": "b", "shape_type": "rectangle", "points": [[-1e9, 20], [1e9, 30]]}]}))
    out, problems = labelme_to_coco(lm, tmp_path / "c.json")
    assert problems == []
    err = capsys.readouterr().err  # clipped, as COCO polygons are, and said once, naming the shape
    assert "p.json: shape 0 ('a'): a vertex lies far outside" in err and err.count("far outside") == 1
    ds = CocoDataset(out, lm, train=False, verbose=False)
    _, s = ds.load_sample(0)
    strip = np.zeros((H, W), np.uint8)
    cv2.fillPoly(strip, [np.array([[10, 8], [30, 8], [30, H + 1], [10, H + 1]], np.int32)], 1)
    band = np.zeros((H, W), np.uint8)
    band[20:30] = 1
    assert np.array_equal(s.masks[0], strip) and np.array_equal(s.masks[1], band)
    (tmp_path / "y" / "images").mkdir(parents=True)
    (tmp_path / "y" / "labels").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "y" / "images" / "p.png"), upright_picture())
    (tmp_path / "y" / "labels" / "p.txt").write_text("0 0.1 0.1 0.5 0.1 4e6 7e6\n")
    (tmp_path / "y" / "data.yaml").write_text(yaml.safe_dump({"train": "images", "names": ["a"]}))
    out, problems = yolo_to_coco(tmp_path / "y" / "data.yaml", "train", tmp_path / "yc.json")
    # a YOLO row far outside 0..1 is not normalised: skipped with its line (tests/test_data_quirks.py)
    assert len(problems) == 2 and "p.txt:1: coordinates outside 0..1" in problems[0]


def test_every_skip_names_file_annotation_and_true_reason(tmp_path):
    cv2.imwrite(str(tmp_path / "p.png"), upright_picture())
    cv2.imwrite(str(tmp_path / "q.png"), upright_picture())
    images = [{"id": 1, "file_name": "p.png", "height": H, "width": W},
              {"id": 2, "file_name": "q.png", "height": H, "width": W}]
    flat = dict(_obj_ann(3), segmentation=object_polygon())
    ann = _write_coco(tmp_path, images, [_obj_ann(1), flat, dict(_obj_ann(4, 2), iscrowd=1)])
    ds = CocoDataset(ann, tmp_path, train=True, verbose=False)
    joined = "\n".join(ds.problems)
    assert f"{ann}: annotation 3: flat list segmentation [x1, y1, ...]" in joined
    assert f"{ann}: image 2 (q.png): only crowd regions (iscrowd=1)" in joined
    # every object a crowd: the error says so
    ann = _write_coco(tmp_path, images, [dict(_obj_ann(1), iscrowd=1), dict(_obj_ann(2, 2), iscrowd=1)])
    with pytest.raises(YolactError, match=r"no usable images \(of 2\).*2 image\(s\) hold only crowd regions"):
        CocoDataset(ann, tmp_path, train=True, verbose=False)


# ------------------------------------------------------------------ 6. Windows paths, 4. background images
def test_labelme_windows_paths_and_background_images(tmp_path):
    from yolact.data.labelme import labelme_to_coco

    root = tmp_path / "set"
    (root / "ann").mkdir(parents=True)
    (root / "photos").mkdir()
    save_oriented(root / "photos" / "c.jpg", upright_picture(), 6, "JPEG", quality=95)
    x1, y1, x2, y2 = OBJ
    shape = [{"label": "thing", "shape_type": "rectangle", "points": [[x1, y1], [x2, y2]]}]
    (root / "ann" / "c.json").write_text(json.dumps(
        {"imagePath": "..\\photos\\c.jpg", "imageHeight": H, "imageWidth": W, "shapes": shape}))
    cv2.imwrite(str(root / "ann" / "d.png"), upright_picture())  # an absolute path from another machine
    (root / "ann" / "d.json").write_text(json.dumps(
        {"imagePath": "C:\\Users\\me\\labels\\d.png", "imageHeight": H, "imageWidth": W, "shapes": shape}))
    cv2.imwrite(str(root / "photos" / "empty_road.png"), np.full((30, 20, 3), 90, np.uint8))  # no JSON: background
    out, problems = labelme_to_coco(root, tmp_path / "c.json")
    assert problems == []
    data = json.loads(out.read_text())
    names = sorted(i["file_name"].rsplit("/", 1)[-1] for i in data["images"])
    assert names == ["c.jpg", "d.png", "empty_road.png"]
    bg = next(i for i in data["images"] if i["file_name"].endswith("empty_road.png"))
    assert (bg["width"], bg["height"]) == (20, 30) and not [a for a in data["annotations"] if a["image_id"] == bg["id"]]
    ds = CocoDataset(out, root, train=False, verbose=False)
    assert len(ds) == 3
    for i in range(3):
        if ds.image_info(i)["id"] != bg["id"]:
            _mask_covers_object(ds, i)


def test_messages_about_converted_data_name_the_users_files(tmp_path, capsys):
    """A LabelMe folder converted to an intermediate COCO file: problems found when reading it
    name the LabelMe JSON and folder, never the intermediate file."""
    from yolact.data.labelme import labelme_to_coco

    lm = tmp_path / "lm"
    lm.mkdir()
    cv2.imwrite(str(lm / "p.png"), upright_picture())
    x1, y1, x2, y2 = OBJ
    (lm / "p.json").write_text(json.dumps({"imagePath": "p.png", "shapes": [
        {"label": "thing", "shape_type": "rectangle", "points": [[x1, y1], [x2, y2]]}]}))
    cv2.imwrite(str(lm / "q.png"), upright_picture())
    (lm / "q.json").write_text(json.dumps({"imagePath": "q.png", "shapes": [
        {"label": "thing", "shape_type": "rectangle", "points": [[x1, y1], [x2, y2]]}]}))
    out, _ = labelme_to_coco(lm, tmp_path / "tmp" / "coco.json")
    cv2.imwrite(str(lm / "q.png"), cv2.resize(upright_picture(), (2 * W, 2 * H)))  # changed since
    ds = CocoDataset(out, lm, train=True)
    err = capsys.readouterr().err
    assert len(ds.problems) == 1 and ds.problems[0].startswith(f"{lm / 'q.json'}: the JSON says")
    assert f"warning: {lm}: skipped 1" in err and "coco.json" not in err


def test_data_check_output_inside_a_labelme_folder_is_not_read_back(tmp_path):
    from yolact.data.check import check_dataset

    lm = tmp_path / "lm"
    lm.mkdir()
    cv2.imwrite(str(lm / "p.png"), upright_picture())
    x1, y1, x2, y2 = OBJ
    (lm / "p.json").write_text(json.dumps({"imagePath": "p.png", "shapes": [
        {"label": "thing", "shape_type": "rectangle", "points": [[x1, y1], [x2, y2]]}]}))
    for _ in range(2):  # the second run finds the first run's overview.png in lm/check/
        rep = check_dataset(lm, lm / "check")
        assert rep.images == 1 and rep.problems == []
