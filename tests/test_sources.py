"""LabelMe and mask-PNG readers, format detection, and round trips against the source raster."""
import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import hole_pixels
from yolact.data.coco import CocoDataset, ann_to_mask, read_coco_json
from yolact.data.labelme import labelme_to_coco
from yolact.data.maskpng import mask_pngs_to_coco
from yolact.data.sources import convert_to_coco, dataset_splits, detect_format
from yolact.data.synth import generate
from yolact.errors import YolactError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("src_synth")
    generate(root, 5, 2, size=96, seed=3)
    return root


def _instances(coco_path, image_dir=None):
    """{image file stem: sorted [(class name, mask bytes)]} from a COCO file."""
    data = read_coco_json(coco_path)
    names = {c["id"]: c["name"] for c in data["categories"]}
    imgs = {i["id"]: i for i in data["images"]}
    out = {}
    for a in data["annotations"]:
        img = imgs[a["image_id"]]
        stem = img["file_name"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        out.setdefault(stem, []).append((names[a["category_id"]], ann_to_mask(a, img["height"], img["width"])))
    return out


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _match_all(src, got, min_iou):
    """Every source instance has a converted one of its class with IoU >= min_iou."""
    assert set(src) == set(got)
    for stem, objs in src.items():
        assert len(got[stem]) == len(objs), stem
        for cls, m in objs:
            best = max((_iou(m > 0, g > 0) for c, g in got[stem] if c == cls), default=0)
            assert best >= min_iou, (stem, cls, best)


def _coco_to_labelme(synth, out, embed=False):
    """Each synthetic instance as LabelMe polygons: outer contours grouped, inner ones as holes."""
    data = read_coco_json(synth / "train.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    out.mkdir()
    for img in data["images"]:
        shapes = []
        for k, a in enumerate(x for x in data["annotations"] if x["image_id"] == img["id"]):
            m = ann_to_mask(a, img["height"], img["width"])
            # outer outlines run on object pixels, hole outlines on hole pixels (background not
            # reachable from the border), so filling one and cutting the other gives the mask back
            for part, label in ((m, names[a["category_id"]]), (hole_pixels(m), "hole")):
                contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                shapes += [{"label": label, "points": c.reshape(-1, 2).tolist(), "group_id": k,
                            "shape_type": "polygon"} for c in contours if len(c) >= 3]
        stem = img["file_name"].rsplit(".", 1)[0]
        doc = {"shapes": shapes, "imagePath": f"../src_images/{img['file_name']}",
               "imageHeight": img["height"], "imageWidth": img["width"], "imageData": None}
        if embed:
            doc["imagePath"] = "nowhere.jpg"
            doc["imageData"] = base64.b64encode((synth / "train" / img["file_name"]).read_bytes()).decode()
        (out / f"{stem}.json").write_text(json.dumps(doc))
    return data


def test_labelme_round_trip_keeps_every_instance_holes_included(synth, tmp_path):
    (tmp_path / "src_images").symlink_to(synth / "train")
    _coco_to_labelme(synth, tmp_path / "lm")
    shapes = [s for f in (tmp_path / "lm").glob("*.json") for s in json.loads(f.read_text())["shapes"]]
    assert any(s["label"] == "hole" for s in shapes)  # rings: the round trip covers holes
    assert detect_format(tmp_path / "lm") == "labelme"
    path, problems = labelme_to_coco(tmp_path / "lm", tmp_path / "out.json")
    assert problems == []
    _match_all(_instances(synth / "train.json"), _instances(path), 0.99)
    # the converted file trains as is (absolute image paths)
    ds = CocoDataset(path, tmp_path, train=True, verbose=False)
    assert len(ds) == 5
    # embedded imageData instead of a file
    _coco_to_labelme(synth, tmp_path / "lm2", embed=True)
    path2, problems2 = labelme_to_coco(tmp_path / "lm2", tmp_path / "out2.json")
    assert problems2 == [] and len(read_coco_json(path2)["images"]) == 5


def test_labelme_shapes_groups_holes_classes_and_problems(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 60, 3), np.uint8))
    shapes = [
        {"label": "box", "points": [[10, 5], [20, 15]], "shape_type": "rectangle", "group_id": None},
        {"label": "disc", "points": [[40, 20], [45, 20]], "shape_type": "circle", "group_id": None},
        # one object in two parts, with a hole in the first part
        {"label": "thing", "points": [[0, 20], [12, 20], [12, 32], [0, 32]], "shape_type": "polygon", "group_id": 1},
        {"label": "thing", "points": [[20, 30], [30, 30], [30, 38], [20, 38]], "shape_type": "polygon", "group_id": 1},
        {"label": "hole", "points": [[4, 24], [8, 24], [8, 28], [4, 28]], "shape_type": "polygon", "group_id": 1},
        {"label": "line", "points": [[0, 0], [5, 5]], "shape_type": "line", "group_id": None},
        {"label": "thin", "points": [[0, 0], [5, 0]], "shape_type": "polygon", "group_id": None},
        {"label": "other", "points": [[50, 1], [58, 1], [58, 9]], "shape_type": "polygon", "group_id": None},
    ]
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "../a.png",
                                                       "imageHeight": 40, "imageWidth": 60}))
    (tmp_path / "lm" / "b.json").write_text(json.dumps({"shapes": [], "imagePath": "../missing.png"}))
    path, problems = labelme_to_coco(tmp_path / "lm", tmp_path / "o.json")
    got = {c: m for c, m in _instances(path)["a"]}
    assert sorted(got) == ["box", "disc", "other", "thing"]
    assert got["box"].sum() == 100 and got["box"][5:15, 10:20].all()
    assert got["disc"][20, 40] == 1 and got["disc"][20, 46] == 0
    thing = got["thing"]
    assert thing[22, 2] and thing[34, 25] and not thing[26, 6]  # two parts, one hole
    assert any("unsupported shape type 'line'" in p for p in problems)
    assert any("degenerate polygon (2 points)" in p for p in problems)
    assert any("missing image" in p and "b.json" in p for p in problems)
    # a class list fixes the order and drops (and reports) the rest
    path, problems = labelme_to_coco(tmp_path / "lm", tmp_path / "o2.json", classes=["thing", "box"])
    assert [c["name"] for c in read_coco_json(path)["categories"]] == ["thing", "box"]
    assert any("unknown class 'disc'" in p for p in problems)


def _coco_to_mask_pngs(synth, root, per_instance):
    data = read_coco_json(synth / "train.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mapping = {}
    for img in data["images"]:
        stem = img["file_name"].rsplit(".", 1)[0]
        (root / "images" / img["file_name"]).write_bytes((synth / "train" / img["file_name"]).read_bytes())
        ids = np.zeros((img["height"], img["width"]), np.uint8)
        for k, a in enumerate((x for x in data["annotations"] if x["image_id"] == img["id"]), 1):
            m = ann_to_mask(a, img["height"], img["width"])
            if per_instance:
                cv2.imwrite(str(root / "masks" / f"{stem}_{k}_{names[a['category_id']]}.png"), m * 255)
            else:
                ids[m > 0] = k
                mapping.setdefault(stem, {})[str(k)] = names[a["category_id"]]
        if not per_instance:
            cv2.imwrite(str(root / "masks" / f"{stem}.png"), ids)
    if mapping:
        (root / "classes.json").write_text(json.dumps(mapping))


@pytest.mark.parametrize("per_instance", [False, True])
def test_mask_png_round_trip(synth, tmp_path, per_instance):
    _coco_to_mask_pngs(synth, tmp_path / "m", per_instance)
    assert detect_format(tmp_path / "m") == "masks"
    path, problems = mask_pngs_to_coco(tmp_path / "m", tmp_path / "o.json")
    assert problems == []
    # synthetic masks do not overlap, so an instance-id PNG holds them exactly
    _match_all(_instances(synth / "train.json"), _instances(path), 1.0)


def test_mask_png_problems_are_reported_with_the_file(tmp_path):
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((20, 30, 3), np.uint8))
    ids = np.zeros((20, 30), np.uint8)
    ids[2:8, 2:8], ids[10:15, 10:20] = 1, 2
    cv2.imwrite(str(root / "masks" / "a.png"), ids)
    cv2.imwrite(str(root / "masks" / "a_1_cat.png"), np.ones((10, 10), np.uint8) * 255)  # wrong size
    (root / "classes.json").write_text(json.dumps({"1": "dog"}))
    path, problems = mask_pngs_to_coco(root, tmp_path / "o.json")
    assert [c for c, _ in _instances(path)["a"]] == ["dog"]
    assert any("instance 2: no class" in p for p in problems)
    assert any("a_1_cat.png: mask is 10x10, image is 30x20" in p for p in problems)
    (root / "classes.json").write_text("{broken")
    with pytest.raises(YolactError, match="classes.json: not valid JSON"):
        mask_pngs_to_coco(root, tmp_path / "o.json")


def test_detection_and_splits(synth, tmp_path):
    with pytest.raises(YolactError, match="no such file or folder"):
        detect_format(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(YolactError, match="LabelMe"):
        detect_format(tmp_path / "empty")
    for split in ("train", "val"):
        _coco_to_mask_pngs(synth, tmp_path / "ds" / split, per_instance=True)
    train, val = dataset_splits(tmp_path / "ds", tmp_path / "conv")
    names = [c["name"] for c in read_coco_json(train.ann)["categories"]]
    assert val is not None and [c["name"] for c in read_coco_json(val.ann)["categories"]] == names
    with pytest.raises(YolactError, match="image folder"):
        convert_to_coco(synth / "train.json", tmp_path / "x.json")


def test_data_check_reports_and_draws(synth, tmp_path):
    from yolact.data.check import check_dataset
    # a duplicate image file and an image without instances
    data = read_coco_json(synth / "train.json")
    first = data["images"][0]
    data["images"].append(dict(first, id=999, file_name="copy.jpg"))
    (tmp_path / "imgs").mkdir()
    for img in data["images"][:-1]:
        (tmp_path / "imgs" / img["file_name"]).write_bytes((synth / "train" / img["file_name"]).read_bytes())
    (tmp_path / "imgs" / "copy.jpg").write_bytes((synth / "train" / first["file_name"]).read_bytes())
    data["annotations"].append({"id": 10_000, "image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1],
                                "segmentation": [[0, 0, 1, 0, 1, 1]]})
    (tmp_path / "a.json").write_text(json.dumps(data))
    rep = check_dataset(tmp_path / "a.json", tmp_path / "check", images=str(tmp_path / "imgs"), augmented=True,
                        samples=4)
    assert rep.images == 6 and rep.instances == len(read_coco_json(synth / "train.json")["annotations"])
    assert rep.empty_images == ["copy.jpg"] and len(rep.duplicates) == 1
    assert sum(rep.per_class.values()) == rep.instances == sum(rep.sizes.values())
    assert any("unknown category 99" in p for p in rep.problems)
    for name in ("overview.png", "histograms.png", "overview_augmented.png"):
        img = cv2.imread(str(tmp_path / "check" / name))
        assert img is not None and img.std() > 5, name  # a real picture, not a blank canvas
    text = "\n".join(rep.lines())
    assert "duplicate image files: 1" in text and "1 x unknown category 99" in text


def test_split_is_stratified_and_merge_unifies_classes(tmp_path):
    from yolact.data.split import merge_coco, split_coco
    imgs = [{"id": i, "file_name": f"{i}.png", "height": 10, "width": 10} for i in range(1, 41)]
    poly = [[1, 1, 8, 1, 8, 8]]
    anns = [{"id": i, "image_id": i, "category_id": 1 if i <= 30 else 2, "bbox": [1, 1, 7, 7], "segmentation": poly}
            for i in range(1, 41)]
    src = tmp_path / "all.json"
    src.write_text(json.dumps({"images": imgs, "annotations": anns,
                               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    train, val = split_coco(src, tmp_path / "s", 0.25, seed=1)
    t, v = read_coco_json(train), read_coco_json(val)
    assert len(t["images"]) == 30 and len(v["images"]) == 10
    assert sorted(a["category_id"] for a in v["annotations"]) == [1] * 8 + [2] * 2  # 25% of each class
    assert split_coco(src, tmp_path / "s2", 0.25, seed=1)[1].read_text() == val.read_text()  # seeded
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": [{"id": 7, "file_name": "x.png", "height": 10, "width": 10}],
                                 "annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 1, 7, 7],
                                                  "segmentation": poly}],
                                 "categories": [{"id": 5, "name": "b"}, {"id": 6, "name": "c"}]}))
    merged = read_coco_json(merge_coco([str(train), str(other)], tmp_path / "m.json", [str(tmp_path), "/data"]))
    assert [c["name"] for c in merged["categories"]] == ["a", "b", "c"]
    assert len(merged["images"]) == 31 and merged["images"][-1]["file_name"] == "/data/x.png"
    assert merged["annotations"][-1]["category_id"] == 2  # 'b' of the second file is 'b' of the first
    with pytest.raises(YolactError, match="one each"):
        merge_coco([str(train), str(other)], tmp_path / "m.json", ["/only/one"])


def test_labelme_hole_label_is_configurable_and_broken_json_stops(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 20, 3), np.uint8))
    shapes = [{"label": "obj", "points": [[2, 2], [18, 2], [18, 18], [2, 18]], "group_id": 3},
              {"label": "gap", "points": [[8, 8], [12, 8], [12, 12], [8, 12]], "group_id": 3}]
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "../a.png"}))
    path, _ = labelme_to_coco(tmp_path / "lm", tmp_path / "o.json", hole_label="gap")
    (cls, m), = _instances(path)["a"]
    assert cls == "obj" and m[5, 5] and not m[10, 10]
    (tmp_path / "lm" / "b.json").write_text("{not json")
    with pytest.raises(YolactError, match="b.json: not valid JSON"):
        labelme_to_coco(tmp_path / "lm", tmp_path / "o.json")


def test_yolo_source_gives_both_splits(synth, tmp_path):
    from yolact.data.yolo import coco_to_yolo
    yml = coco_to_yolo(synth / "train.json", synth / "train", tmp_path / "y", val_fraction=0.2)
    assert detect_format(tmp_path / "y") == "yolo" and detect_format(yml) == "yolo"
    train, val = dataset_splits(tmp_path / "y", tmp_path / "conv")
    assert val is not None  # data.yaml names a val split: its own images, none of train's
    tr = {Path(i["file_name"]).name for i in json.loads(Path(train.ann).read_text())["images"]}
    va = {Path(i["file_name"]).name for i in json.loads(Path(val.ann).read_text())["images"]}
    assert tr and va and not tr & va and len(tr | va) == 5
    assert len(CocoDataset(train.ann, train.images, train=False, verbose=False)) == len(tr)
    # No fraction: one split, and data.yaml names no val (there is none)
    yml = coco_to_yolo(synth / "train.json", synth / "train", tmp_path / "one")
    assert "val" not in yaml.safe_load(yml.read_text())
    assert dataset_splits(tmp_path / "one", tmp_path / "conv1")[1] is None


# ---------------------------------------------------------------------------- the runner's names and ids
def test_runner_names_are_unique_and_records_say_where_from(tmp_path):
    """Two images with one file name (in two folders, or two suffixes) write two overlays, two
    label files and records that tell them apart; image ids are 1, 2, ... in run order, the
    ids of --save-coco's annotations.json; an empty source name is refused."""
    import json

    import cv2
    import numpy as np
    import pytest

    import yolact
    from yolact.errors import YolactError
    from yolact.prediction import OverlaySink, PredictionWriter, RecordSink, run

    img = np.full((64, 80, 3), 200, np.uint8)
    cv2.circle(img, (40, 32), 20, (0, 0, 255), -1)
    for rel in ("a.jpg", "sub/deeper/a.jpg", "b.jpg", "b.png"):
        (tmp_path / "imgs" / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "imgs" / rel), img)
    model = yolact.load("demo")
    out = tmp_path / "out"  # not there yet: the sinks make it
    writer = PredictionWriter(out, model.class_names, save_txt=True, save_coco=True)
    summary = run(model, str(tmp_path / "imgs"), [OverlaySink(out), writer, RecordSink(out / "results.json")],
                  score_threshold=0.0, progress=False)
    assert summary.images == 4
    assert len(list(out.glob("*.png"))) == 4 and len(list((out / "labels").glob("*.txt"))) == 4
    records = json.loads((out / "results.json").read_text())
    assert sorted({r["image_id"] for r in records}) == [1, 2, 3, 4]
    coco = json.loads((out / "annotations.json").read_text())
    by_id = {i["id"]: i["file_name"] for i in coco["images"]}
    assert all(by_id[r["image_id"]].endswith(r["file_name"]) for r in records)
    with pytest.raises(YolactError, match="empty source"):
        model.predict("")


def test_a_synth_folder_is_coco_data(tmp_path):
    """#27 leftovers: `data synth` output (train.json + train/, val.json + val/) was not detected
    by `train --data`; it is a COCO folder with both splits."""
    generate(tmp_path / "s", 2, 1, size=64, seed=0, max_objects=1)
    assert detect_format(tmp_path / "s") == "coco"
    train, val = dataset_splits(tmp_path / "s", tmp_path / "conv")
    assert (train.ann, train.images) == (str(tmp_path / "s" / "train.json"), str(tmp_path / "s" / "train"))
    assert (val.ann, val.images) == (str(tmp_path / "s" / "val.json"), str(tmp_path / "s" / "val"))
    (tmp_path / "s" / "val.json").unlink()
    assert dataset_splits(tmp_path / "s", tmp_path / "conv")[1] is None
