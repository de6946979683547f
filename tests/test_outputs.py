"""Overlay order, YOLO-seg / LabelMe / JSON / crop outputs of Results, checked against the masks
they came from (pycocotools and the project's own readers decode them independently)."""
import json

import cv2
import numpy as np
import pytest

from yolact.results import Results, mask_outlines, single_polygon
from yolact.viz import class_color, draw_detections, label_rects, label_style


def _ring(h, w, cx, cy, r_out, r_in):
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (cx, cy), r_out, 1, -1)
    cv2.circle(m, (cx, cy), r_in, 0, -1)
    return m.astype(bool)


def _two_parts(h, w):
    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, (5, 70), (40, 110), 1, -1)
    cv2.fillPoly(m, [np.array([[60, 80], [110, 75], [90, 115]], np.int32)], 1)
    return m.astype(bool)


def _results(image=None):
    h, w = 120, 160
    ring = _ring(h, w, 50, 45, 35, 15)
    parts = _two_parts(h, w)
    blob = np.zeros((h, w), bool)
    blob[10:40, 120:150] = True
    masks = np.stack([ring, parts, blob])
    boxes = np.array([[15, 10, 85, 80], [5, 70, 110, 115], [120, 10, 150, 40]], np.float32)
    return Results(boxes=boxes, scores=np.array([0.9, 0.6, 0.3], np.float32), labels=np.array([0, 1, 2]),
                   masks=masks, class_names=("ring", "pair", "blob"), box_scores=np.array([0.91, 0.61, 0.31]),
                   image_shape=(h, w), image=image)


def _iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max((a | b).sum(), 1)


# ---------------------------------------------------------------------------- overlay
def test_overlay_draws_the_best_detection_on_top():
    """One object reported twice (same box and mask), the lower score listed first: the mask
    colour and the label box at the corner are the higher-scoring class's."""
    from yolact.viz import draw_detections

    img = np.zeros((100, 100, 3), np.uint8)
    m = np.zeros((2, 100, 100), bool)
    m[:, 30:80, 30:80] = True
    boxes = np.array([[30, 40, 80, 80]] * 2, np.float32)
    labels, scores = np.array([1, 0]), np.array([0.31, 0.44])  # 'block' 0.31 listed before 'tri' 0.44
    out = draw_detections(img, boxes, m, labels, scores, ("tri", "block"), alpha=0.5, draw_text=False)
    best, other = np.array(class_color(0), float), np.array(class_color(1), float)
    expected = (other * 0.5) * 0.5 + best * 0.5  # the other painted first, the best over it
    assert np.abs(out[55, 55].astype(float) - expected).max() <= 1
    out = draw_detections(img, boxes, m, labels, scores, ("tri", "block"), draw_boxes=False)
    assert tuple(out[38, 31]) == class_color(0)  # label background just above the box, left edge


def test_overlay_labels_stay_inside_the_picture():
    from yolact.viz import draw_detections

    # (a picture big enough to keep the label: on tiny ones long labels are left out, tests/test_viz.py)
    img = np.zeros((240, 320, 3), np.uint8)
    boxes = np.array([[310, 0, 320, 10]], np.float32)  # at the top-right corner
    out = draw_detections(img, boxes, None, np.array([0]), np.array([0.9]), ("a_long_class_name",),
                          draw_boxes=False)
    color = np.array(class_color(0))
    painted = np.all(out == color, axis=-1)
    scale, thick, _ = label_style(240, 320)
    (tw, th), _ = cv2.getTextSize("a_long_class_name 0.90", cv2.FONT_HERSHEY_DUPLEX, scale, thick)
    cols = np.flatnonzero(painted.any(axis=0))
    assert cols[-1] == 319 and 320 - tw - 20 <= cols[0] <= 320 - tw  # shifted left to fit, whole
    assert painted[0].any() and painted.any(axis=1)[th]  # starts at the top edge, its full height inside


@pytest.mark.parametrize("height, width", [(120, 160), (2160, 3840)])
def test_overlay_labels_scale_with_the_picture_and_never_overlap(height, width):
    """#27 item 8: a crowded picture (40 detections piled in one corner and a row of touching
    boxes): no two label rectangles overlap, each lies inside the picture, and the text is
    sized by the picture (4K text over 5x the small picture's)."""
    rng = np.random.default_rng(0)
    f = width / 160
    boxes = [[x, y, x + 20 * f, y + 20 * f] for x, y in rng.uniform(0, 30 * f, (40, 2))]
    boxes += [[k * 10 * f, 80 * f, (k + 1) * 10 * f, 100 * f] for k in range(16)]
    boxes = np.array(boxes, np.float32)
    n = len(boxes)
    labels, scores = np.arange(n) % 3, rng.uniform(0.05, 1, n)
    texts = [f"{('circle', 'square', 'triangle')[k]} {s:.2f}" for k, s in zip(labels, scores)]
    order = np.argsort(-scores)
    rects = label_rects(texts, boxes, order, height, width)
    placed = [r for r in rects if r is not None]
    assert len(placed) >= 8  # crowded, yet a good share of the labels find a place
    assert rects[order[0]] is not None  # the best one always does
    for a in range(len(placed)):
        x0, y0, x1, y1 = placed[a]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        for b in range(a + 1, len(placed)):
            u0, v0, u1, v1 = placed[b]
            assert not (x0 < u1 and u0 < x1 and y0 < v1 and v0 < y1), (placed[a], placed[b])
    heights = {r[3] - r[1] for r in placed}
    assert len(heights) == 1
    small = label_rects(["circle 0.50"], np.array([[0, 50, 10, 60]], np.float32), [0], 120, 160)[0]
    big = label_rects(["circle 0.50"], np.array([[0, 50, 10, 60]], np.float32), [0], 2160, 3840)[0]
    assert (big[3] - big[1]) > 5 * (small[3] - small[1])
    # the overlay draws them: the picture has label colour where the rectangles are
    out = draw_detections(np.zeros((height, width, 3), np.uint8), boxes, None, labels, scores,
                          ("circle", "square", "triangle"), draw_boxes=False)
    x0, y0, x1, y1 = rects[order[0]]
    assert tuple(out[y0, x0]) == class_color(int(labels[order[0]]))


# ---------------------------------------------------------------------------- polygons
def test_mask_outlines_give_the_mask_back_exactly():
    r = _results()
    for m in r.masks:
        outer, holes = mask_outlines(m)
        back = np.zeros(m.shape, np.uint8)
        cv2.fillPoly(back, [c.astype(np.int32) for c in outer], 1)
        for c in holes:
            cv2.fillPoly(back, [c.astype(np.int32)], 0)
        assert np.array_equal(back.astype(bool), m)
    assert [len(mask_outlines(m)[1]) for m in r.masks] == [1, 0, 0]
    assert [len(mask_outlines(m)[0]) for m in r.masks] == [1, 2, 1]


def test_yolo_lines_read_back_by_pycocotools_and_the_yolo_reader(tmp_path):
    """save_txt -> a YOLO data.yaml -> yolact's YOLO reader -> pycocotools masks: each instance,
    the ring's hole and both parts of the pair included, within polygon tolerance."""
    from pycocotools import mask as mask_utils

    from yolact.data.yolo import yolo_to_coco

    r = _results()
    h, w = r.image_shape
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((h, w, 3), np.uint8))
    r.save_txt(tmp_path / "labels" / "a.txt")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [ring, pair, blob]\n")
    lines = (tmp_path / "labels" / "a.txt").read_text().splitlines()
    assert len(lines) == 3 and [ln.split()[0] for ln in lines] == ["0", "1", "2"]
    coco_path, problems = yolo_to_coco(tmp_path / "data.yaml", "train", tmp_path / "c.json")
    assert problems == []
    anns = json.loads(coco_path.read_text())["annotations"]
    for ann, m in zip(anns, r.masks):
        back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w)))
        assert _iou(back, m) >= 0.97, ann["category_id"]
    ring = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(anns[0]["segmentation"], h, w)))
    assert ring[45, 50] == 0 and ring[45, 50 + 25] == 1  # the hole stays a hole
    # Ultralytics fills label polygons with cv2.fillPoly: the same masks.
    for line, m in zip(lines, r.masks):
        pts = np.array(line.split()[1:], float).reshape(-1, 2) * [w, h]
        back = np.zeros((h, w), np.uint8)
        cv2.fillPoly(back, [np.round(pts).astype(np.int32)], 1)
        assert _iou(back, m) >= 0.9
    conf = r.yolo_lines(save_conf=True)
    assert [float(ln.split()[-1]) for ln in conf] == pytest.approx([0.9, 0.6, 0.3], abs=1e-6)


def test_single_polygon_of_an_empty_mask_is_none():
    assert single_polygon(np.zeros((10, 10), bool)) is None
    r = _results()
    r.masks[2][:] = False
    assert len(r.yolo_lines()) == 2


# ---------------------------------------------------------------------------- LabelMe
def test_labelme_round_trip_through_the_labelme_reader(tmp_path):
    """Predictions saved as LabelMe, read back by yolact.data.labelme: the same masks (IoU >= 0.95),
    a ring (hole) and a mask in two parts included; classes and instance count kept."""
    from pycocotools import mask as mask_utils

    from yolact.data.labelme import labelme_to_coco

    r = _results()
    h, w = r.image_shape
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((h, w, 3), np.uint8))
    (tmp_path / "a.json").write_text(json.dumps(r.to_labelme("a.png")))
    coco_path, problems = labelme_to_coco(tmp_path, tmp_path / "out" / "c.json")
    assert problems == []
    coco = json.loads(coco_path.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = coco["annotations"]
    assert [names[a["category_id"]] for a in anns] == ["ring", "pair", "blob"]
    for a, m in zip(anns, r.masks):
        back = mask_utils.decode(a["segmentation"])
        assert _iou(back, m) >= 0.95
        assert np.array_equal(back.astype(bool), m)  # in fact exact: outlines are pixel-exact
    doc = r.to_labelme("a.png")
    assert doc["imageHeight"] == h and doc["imageWidth"] == w
    assert [s["label"] for s in doc["shapes"]].count("hole") == 1


# ---------------------------------------------------------------------------- JSON, DataFrame, crops
def test_to_json_fields_and_normalised_points():
    r = _results()
    d = json.loads(r.to_json())
    assert [x["class_name"] for x in d] == ["ring", "pair", "blob"]
    assert d[2]["box"] == [120.0, 10.0, 150.0, 40.0] and d[2]["bbox"] == [120.0, 10.0, 30.0, 30.0]
    assert d[0]["score"] == pytest.approx(0.9) and d[0]["box_score"] == pytest.approx(0.91)
    assert len(d[1]["segmentation"]) == 2 and all(len(s) % 2 == 0 for s in d[1]["segmentation"])
    n = json.loads(r.to_json(normalize=True))
    assert n[2]["box"][2] == pytest.approx(150 / 160)
    pts = np.array([v for seg in n[0]["segmentation"] for v in seg])
    assert pts.min() >= 0 and pts.max() <= 1


def test_one_record_everywhere(tmp_path):
    """to_json, results.json and the JSON lines carry the same record: the same keys, and
    'score' is the mask score, 'box_score' the class score (different numbers for YOLACT++)."""
    from yolact.prediction import Frame, JsonLinesSink, RecordSink
    from yolact.results import RECORD_FIELDS

    r = _results()
    r.scores = r.scores * np.float32(0.5)  # as YOLACT++'s re-scoring makes them differ
    rec = r.to_records("rle")
    assert [set(x) for x in rec] == [set(RECORD_FIELDS) - {"track_id"}] * len(r)
    assert [x["score"] for x in rec] == [round(float(s), 5) for s in r.scores]
    assert [x["box_score"] for x in rec] == [round(float(s), 5) for s in r.box_scores]
    sink = RecordSink(tmp_path / "results.json")
    sink.add(r, Frame(source="a/x.jpg", path="a/x.jpg"))
    saved = json.loads(sink.close()[0].read_text())
    assert [{k: v for k, v in s.items() if k in RECORD_FIELDS} for s in saved] == rec
    assert saved[0]["file_name"] == "x.jpg" and saved[0]["image_id"] == "x"
    lines = JsonLinesSink(tmp_path)
    lines.open_video("clip", 10.0)
    lines.add(r, Frame(source="clip.mp4", video="clip.mp4", index=3, fps=10.0))
    lines.close_video()
    line = json.loads((tmp_path / "clip.jsonl").read_text())
    assert line["frame"] == 3 and line["time_s"] == pytest.approx(0.3) and line["detections"] == rec
    with pytest.raises(ValueError, match="masks must be one of"):
        r.to_records("bitmap")


def test_to_df_without_pandas_says_so(monkeypatch):
    import sys

    from yolact.errors import YolactError
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(YolactError, match=r"pip install .yolact\[pandas\]."):
        _results().to_df()


def test_to_df_columns():
    pytest.importorskip("pandas", reason="the pandas extra")
    df = _results().to_df()
    assert list(df.columns[:8]) == ["class_name", "label", "score", "box_score", "x1", "y1", "x2", "y2"]
    assert df["x1"].tolist() == [15, 5, 120]


def test_save_crops_alpha_is_the_mask(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    r = _results(img)
    files = r.save_crops(tmp_path, "a")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["ring/a_0.png", "pair/a_1.png", "blob/a_2.png"]
    crop = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert crop.shape == (70, 70, 4)
    assert np.array_equal(crop[:, :, 3] > 0, r.masks[0][10:80, 15:85])
    assert np.array_equal(crop[:, :, :3], img[10:80, 15:85])
