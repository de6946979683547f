"""`yolact predict` (and eval, serve, track) as a user drives it: the prediction controls, no
abbreviated options, run folders, sources (globs, lists, URLs), the outputs (YOLO-seg, JSON on
videos, crops) and pre-labelling (LabelMe, COCO) read back by the project's own readers.
The demo model on images made here (the demo's distribution, unseen seeds)."""
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

import yolact
from yolact.cli import build_parser, main
from yolact.cli.common import parse_classes, predict_options, run_dir
from yolact.data.synth import generate, make_image
from yolact.errors import YolactError

CONTROLS = ("classes", "iou", "agnostic_nms", "max_det", "img_size")


@pytest.fixture(scope="module")
def demo_model():
    return yolact.load(yolact.demo_weights_path())


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Three images of the demo model's distribution in shapes/images/ (a YOLO-style layout)."""
    root = tmp_path_factory.mktemp("shapes")
    generate(root / "gen", n_train=3, n_val=0, size=256, seed=4242, max_objects=4, style="simple")
    (root / "images").mkdir()
    for p in sorted((root / "gen" / "train").glob("*.jpg")):
        shutil.copy(p, root / "images" / p.name)
    return root / "images"


def _iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max((a | b).sum(), 1)


def _masks(records):
    """results.json records -> {file_name: [(category_id, mask)]}, in file order."""
    out = {}
    for r in records:
        out.setdefault(r["file_name"], []).append((r["category_id"], mask_utils.decode(r["segmentation"])))
    return out


class Spy:
    """The model, recording the prediction controls each predict call gets (and leaving them
    out of the real call until the library takes them)."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, *args, **kwargs):
        self.calls.append({k: kwargs.pop(k) for k in CONTROLS if k in kwargs})
        return self.model.predict(*args, **kwargs)


# ---------------------------------------------------------------------------- arguments
VERBS_WITH_SCORE = {"predict": ["x.jpg"], "eval": ["--ann", "a.json", "--images", "i"], "track": ["v.mp4"]}


@pytest.mark.parametrize("verb", sorted(VERBS_WITH_SCORE))
def test_conf_is_the_score_threshold_never_config(verb):
    args = build_parser().parse_args([verb, "--conf", "0.5", *VERBS_WITH_SCORE[verb]])
    assert args.score_threshold == 0.5 and args.config is None


def test_no_abbreviations_in_any_verb(capsys):
    for argv in (["predict", "--score", "0.5", "x.jpg"], ["predict", "--conf", "0.5", "--weight", "w", "x"],
                 ["train", "--iter", "3"], ["data", "convert", "--to", "coco", "src", "--out", "o.json", "--form", "coco"],
                 ["eval", "--ann", "a", "--images", "i", "--score-thr", "0.1"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        assert "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--top-k", "5", "--max-det", "7", "x.jpg"])
    assert "not allowed with" in capsys.readouterr().err


def test_controls_reach_the_parser_of_each_verb():
    argv = ["--classes", "ball,2", "--iou", "0.4", "--agnostic-nms", "--max-det", "7", "--img-size", "320"]
    expected = {"classes": ["ball", 2], "iou": 0.4, "agnostic_nms": True, "max_det": 7, "img_size": 320}
    for verb, rest in {**VERBS_WITH_SCORE, "serve": []}.items():
        assert predict_options(build_parser().parse_args([verb, *argv, *rest])) == expected, verb
        assert predict_options(build_parser().parse_args([verb, *rest])) == {}, verb  # defaults: nothing passed


def test_parse_classes():
    assert parse_classes("0,2") == [0, 2]
    assert parse_classes("ball, tri") == ["ball", "tri"]
    for bad in ("", ",", "a,,b"):
        with pytest.raises(YolactError, match="--classes"):
            parse_classes(bad)


def test_cli_passes_the_controls_to_predict(demo_model, shapes, tmp_path, monkeypatch):
    """predict (images and videos), eval and track hand exactly the controls the user set to
    model.predict, and nothing when none is set (the original's output)."""
    import yolact.cli.evaluate
    import yolact.cli.predict
    import yolact.cli.track

    spy = Spy(demo_model)
    for mod in (yolact.cli.predict, yolact.cli.evaluate, yolact.cli.track):
        monkeypatch.setattr(mod, "load_model", lambda args: spy)
    img = str(sorted(shapes.glob("*.jpg"))[0])
    assert main(["predict", img, "--out", str(tmp_path / "p"), "-q"]) == 0
    assert spy.calls and all(c == {} for c in spy.calls)
    spy.calls.clear()
    # (a class the model lacks is refused before the run since #27: the names are the model's)
    assert main(["predict", img, "--out", str(tmp_path / "p"), "-q", "--classes", "triangle,0", "--iou", "0.3",
                 "--agnostic-nms", "--max-det", "2", "--img-size", "224", "--conf", "0.2"]) == 0
    assert spy.calls == [{"classes": ["triangle", 0], "iou": 0.3, "agnostic_nms": True, "max_det": 2,
                          "img_size": 224}]
    spy.calls.clear()
    video = _video(tmp_path / "clip.avi", shapes, 3)
    assert main(["predict", str(video), "--out", str(tmp_path / "v"), "-q", "--agnostic-nms"]) == 0
    assert spy.calls and all(c == {"agnostic_nms": True} for c in spy.calls)
    spy.calls.clear()
    assert main(["track", str(video), "--out", str(tmp_path / "t"), "-q", "--iou", "0.6", "--no-video"]) == 0
    assert spy.calls and all(c == {"iou": 0.6} for c in spy.calls)
    spy.calls.clear()
    ann = _coco_of(shapes, tmp_path / "gt.json")
    assert main(["eval", "--ann", str(ann), "--images", str(shapes), "-q", "--max-det", "5"]) == 0
    assert spy.calls and all(c == {"max_det": 5} for c in spy.calls)


def test_serve_passes_the_controls(demo_model):
    pytest.importorskip("fastapi_offline", reason="needs the serve extra")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from yolact.serve.app import ServeSettings, create_app

    spy = Spy(demo_model)
    img, _ = make_image(np.random.default_rng(5), 128, 128)
    options = predict_options(build_parser().parse_args(["serve", "--classes", "0", "--img-size", "224"]))
    with TestClient(create_app(spy, ServeSettings(), {}, predict_options=options)) as client:
        r = client.post("/v1/segment", content=cv2.imencode(".png", img)[1].tobytes())
        assert r.status_code == 200, r.text
        assert client.get("/v1/model").json()["predict_options"] == {"classes": [0], "img_size": 224}
    # the request and the readiness warm-up both predict with the server's controls
    assert spy.calls and all(c == {"classes": [0], "img_size": 224} for c in spy.calls)


# ---------------------------------------------------------------------------- controls (library side)
def test_predict_controls_through_the_cli(demo_model, shapes, tmp_path):
    """--classes keeps only those classes, --agnostic-nms leaves no two boxes over --iou across
    classes, --max-det caps the count, --img-size runs at another multiple of 32."""
    names = demo_model.cfg.class_names
    base = ["predict", str(shapes), "-q", "--save-json", "--conf", "0.05"]
    assert main([*base, "--out", str(tmp_path / "all")]) == 0
    full = json.loads((tmp_path / "all" / "results.json").read_text())
    assert main([*base, "--out", str(tmp_path / "cls"), "--classes", f"{names[0]},1"]) == 0
    kept = json.loads((tmp_path / "cls" / "results.json").read_text())
    assert {r["category_id"] for r in kept} <= {1, 2}
    assert len(kept) == sum(r["category_id"] in (1, 2) for r in full)
    assert main([*base, "--out", str(tmp_path / "agn"), "--agnostic-nms", "--iou", "0.5"]) == 0
    agn = json.loads((tmp_path / "agn" / "results.json").read_text())
    for f in {r["file_name"] for r in agn}:
        boxes = [r["bbox"] for r in agn if r["file_name"] == f]
        if len(boxes) > 1:  # (boxes in the file are rounded to 0.1 pixel)
            ious = np.asarray(mask_utils.iou(boxes, boxes, [0] * len(boxes)))
            assert (ious[np.triu_indices(len(boxes), 1)] <= 0.5 + 0.02).all()
    assert main([*base, "--out", str(tmp_path / "max"), "--max-det", "1"]) == 0
    assert len(json.loads((tmp_path / "max" / "results.json").read_text())) <= len({r["file_name"] for r in full})
    assert main([*base, "--out", str(tmp_path / "s320"), "--img-size", "320"]) == 0


def test_predict_controls_through_the_api(demo_model, shapes):
    img = str(sorted(shapes.glob("*.jpg"))[0])
    full = demo_model.predict(img, score_threshold=0.05)
    only = demo_model.predict(img, score_threshold=0.05, classes=[demo_model.cfg.class_names[0]])
    assert set(only.labels.tolist()) <= {0} and len(only) == int((full.labels == 0).sum())
    assert len(demo_model.predict(img, score_threshold=0.05, max_det=1)) <= 1
    assert demo_model.predict(img, img_size=320).image_shape == full.image_shape


# ---------------------------------------------------------------------------- run folders
def test_run_folders_count_up(demo_model, shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    img = str(sorted(shapes.glob("*.jpg"))[0])
    for _ in range(2):
        assert main(["predict", img, "-q"]) == 0
    assert (tmp_path / "runs" / "predict").is_dir() and (tmp_path / "runs" / "predict2").is_dir()
    assert main(["predict", img, "-q", "--exist-ok"]) == 0
    assert not (tmp_path / "runs" / "predict3").exists()
    assert run_dir(None, "runs/predict") == Path("runs/predict3")
    assert run_dir(None, "runs/predict", exist_ok=True) == Path("runs/predict")
    assert run_dir("mine", "runs/predict") == Path("mine")
    assert main(["protos", img]) == 0 and main(["protos", img]) == 0
    assert (tmp_path / "runs" / "protos2").is_dir()


# ---------------------------------------------------------------------------- sources
def _serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_sources_globs_lists_and_urls(shapes, tmp_path, capsys):
    files = sorted(shapes.glob("*.jpg"))
    assert main(["predict", str(shapes / "*.jpg"), "--out", str(tmp_path / "glob"), "-q"]) == 0  # a quoted glob
    assert sorted(p.name for p in (tmp_path / "glob").glob("*.png")) == sorted(f.stem + ".png" for f in files)
    lst = tmp_path / "list.txt"
    lst.write_text(f"# two of them\n{files[0]}\n\n{files[1].name}\n".replace(files[1].name, str(files[1])))
    assert main(["predict", str(lst), "--out", str(tmp_path / "list"), "-q"]) == 0
    assert len(list((tmp_path / "list").glob("*.png"))) == 2
    server = _serve(shapes)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{files[0].name}"
        assert main(["predict", url, "--out", str(tmp_path / "url"), "--save-json"]) == 0
        said = capsys.readouterr().out  # the URL is named, not its temporary download (#27 item 7)
        assert f"{url}: " in said and "yolact-downloads-" not in said
        recs = json.loads((tmp_path / "url" / "results.json").read_text())
        assert (tmp_path / "url" / f"{files[0].stem}.png").exists() and {r["file_name"] for r in recs} <= {files[0].name}
        assert main(["predict", url.replace(files[0].name, "missing.jpg"), "--out", str(tmp_path / "u404")]) == 2
        assert "missing.jpg: download failed (HTTP 404" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
    # Nobody listens there any more: the offline case, one line naming the URL.
    assert main(["predict", url, "--out", str(tmp_path / "off")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and "download failed" in err[0]
    assert main(["predict", str(tmp_path / "none" / "*.jpg"), "--out", str(tmp_path / "x")]) == 2
    assert "no images or videos match" in capsys.readouterr().err
    labels = tmp_path / "label.txt"  # a YOLO label file given by mistake: the list's line is named
    labels.write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    assert main(["predict", str(labels), "--out", str(tmp_path / "x")]) == 2
    assert f"{labels}: 0 0.1 0.1 0.5 0.1 0.5 0.5: no such file" in capsys.readouterr().err


def test_train_and_check_folders(tmp_path, monkeypatch):
    import argparse

    from yolact.training.api import _train_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "train").mkdir(parents=True)
    args = argparse.Namespace(out=None, resume=None, exist_ok=False)
    assert _train_dir(args) == str(Path("runs/train2"))
    assert _train_dir(argparse.Namespace(out=None, resume="old/last.pt", exist_ok=False)) == "old"
    assert _train_dir(argparse.Namespace(out="mine", resume=None, exist_ok=False)) == "mine"
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun: every rank must pick the same folder
    assert _train_dir(args) == str(Path("runs/train"))


def test_track_takes_a_video_url(demo_model, shapes, tmp_path):
    video = _video(tmp_path / "srv" / "clip.avi", shapes, 3)
    server = _serve(video.parent)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        assert main(["track", url, "--out", str(tmp_path / "t"), "-q", "--save-mot"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "t" / "clip.txt").exists() and (tmp_path / "t" / "clip.mp4").exists()


# ---------------------------------------------------------------------------- outputs
def _video(path, shapes, n):
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [cv2.imread(str(p)) for p in sorted(shapes.glob("*.jpg"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, frames[0].shape[1::-1])
    for i in range(n):
        writer.write(frames[i % len(frames)])
    writer.release()
    return path


def _coco_of(shapes, out):
    """A COCO ground-truth file for the shapes images (the generator's own annotations)."""
    gen = json.loads((shapes.parent / "gen" / "train.json").read_text())
    out.write_text(json.dumps(gen))
    return out


def test_save_json_on_a_video_has_every_detection_of_every_frame(demo_model, shapes, tmp_path):
    video = _video(tmp_path / "clip.avi", shapes, 4)
    assert main(["predict", str(video), "--out", str(tmp_path / "v"), "-q", "--save-json", "--conf", "0.3"]) == 0
    recs = json.loads((tmp_path / "v" / "results.json").read_text())
    cap = cv2.VideoCapture(str(video))
    expected = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        expected.append(len(demo_model.predict(frame, score_threshold=0.3)))
    assert sum(expected) > 0 and len(recs) == sum(expected)
    assert {r["video"] for r in recs} == {"clip.avi"}
    assert [sum(r["frame"] == i for r in recs) for i in range(len(expected))] == expected


def test_save_txt_read_back_by_data_convert(demo_model, shapes, tmp_path):
    """predict --save-txt, then the labels beside the images as a YOLO dataset, then
    `yolact data convert --to coco`: the same instances as results.json (IoU >= 0.9)."""
    out = tmp_path / "p"
    assert main(["predict", str(shapes), "--out", str(out), "-q", "--save-txt", "--save-json"]) == 0
    ds = tmp_path / "ds"
    shutil.copytree(shapes, ds / "images")
    shutil.copytree(out / "labels", ds / "labels")
    names = demo_model.cfg.class_names
    (ds / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames: {list(names)}\n")
    assert main(["data", "convert", "--to", "coco", str(ds / "data.yaml"), "--out", str(tmp_path / "c.json")]) == 0
    coco = json.loads((tmp_path / "c.json").read_text())
    imgs = {i["id"]: i for i in coco["images"]}
    back = {}
    for a in coco["annotations"]:
        i = imgs[a["image_id"]]
        m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], i["height"], i["width"])))
        back.setdefault(i["file_name"], []).append((a["category_id"] + 1, m))  # YOLO classes are 0-based
    pred = _masks(json.loads((out / "results.json").read_text()))
    assert sum(map(len, pred.values())) > 0 and set(back) == set(pred)
    for f, items in pred.items():
        assert [c for c, _ in back[f]] == [c for c, _ in items]
        assert all(_iou(a, b) >= 0.95 for (_, a), (_, b) in zip(back[f], items))
        # Ultralytics fills the same lines with cv2.fillPoly (points at pixel centres): half a
        # pixel more around each outline.
        h, w = items[0][1].shape if items else (0, 0)
        lines = (out / "labels" / f).with_suffix(".txt").read_text().splitlines()
        for line, (c, m) in zip(lines, items):
            pts = np.array(line.split()[1:], float).reshape(-1, 2) * [w, h]
            filled = np.zeros((h, w), np.uint8)
            cv2.fillPoly(filled, [np.round(pts).astype(np.int32)], 1)
            assert int(line.split()[0]) == c - 1 and _iou(filled, m) >= 0.85
    assert main(["predict", str(shapes), "--out", str(tmp_path / "c"), "-q", "--save-txt", "--save-conf"]) == 0
    line = next(p for p in (tmp_path / "c" / "labels").glob("*.txt") if p.read_text()).read_text().splitlines()[0]
    assert len(line.split()) % 2 == 0  # class, x/y pairs, then the score


def test_save_crop_writes_alpha_pngs(shapes, tmp_path):
    assert main(["predict", str(shapes), "--out", str(tmp_path / "p"), "-q", "--save-crop", "--save-json"]) == 0
    crops = sorted((tmp_path / "p" / "crops").rglob("*.png"))
    assert len(crops) == len(json.loads((tmp_path / "p" / "results.json").read_text())) > 0
    c = cv2.imread(str(crops[0]), cv2.IMREAD_UNCHANGED)
    assert c.ndim == 3 and c.shape[2] == 4 and (c[:, :, 3] == 255).any() and set(np.unique(c[:, :, 3])) <= {0, 255}


# ---------------------------------------------------------------------------- pre-labelling
def test_labelme_prelabels_close_the_loop(demo_model, shapes, tmp_path):
    """predict --save-labelme --out D, then `yolact data convert --to coco D`: the predicted
    masks come back (IoU >= 0.95) with their classes, ready to correct and retrain."""
    out = tmp_path / "lm"
    assert main(["predict", str(shapes), "--out", str(out), "-q", "--save-labelme", "--save-json"]) == 0
    assert len(list((out / "labelme").glob("*.json"))) == 3 and (out / "results.json").exists()
    assert main(["data", "convert", "--to", "coco", str(out / "labelme"), "--out", str(tmp_path / "c.json"),
                 "--classes", _classes_txt(demo_model, tmp_path)]) == 0
    coco = json.loads((tmp_path / "c.json").read_text())
    assert len(coco["images"]) == 3  # the overlays beside them are not read as background images
    imgs = {i["id"]: i["file_name"].rsplit("/", 1)[-1] for i in coco["images"]}
    back = {}
    for a in coco["annotations"]:
        back.setdefault(imgs[a["image_id"]], []).append((a["category_id"], mask_utils.decode(a["segmentation"])))
    pred = _masks(json.loads((out / "results.json").read_text()))
    assert sum(map(len, pred.values())) > 0
    for f, items in pred.items():
        got = back.get(f, [])
        assert [c for c, _ in got] == [c for c, _ in items]
        assert all(_iou(a, b) >= 0.95 for (_, a), (_, b) in zip(got, items))


def _classes_txt(model, tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("\n".join(model.cfg.class_names) + "\n")
    return str(p)


def test_labelme_next_to_the_images_never_overwrites(shapes, tmp_path, monkeypatch):
    imgs = tmp_path / "imgs"
    shutil.copytree(shapes, imgs)
    first = sorted(imgs.glob("*.jpg"))[0]
    first.with_suffix(".json").write_text('{"corrected": "by hand"}')
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(imgs), "-q", "--save-labelme"]) == 0
    assert first.with_suffix(".json").read_text() == '{"corrected": "by hand"}'
    others = [p.with_suffix(".json") for p in sorted(imgs.glob("*.jpg"))[1:]]
    assert all(json.loads(p.read_text())["imagePath"] == p.with_suffix(".jpg").name for p in others)


def test_save_coco_is_a_coco_instances_file(demo_model, shapes, tmp_path):
    out = tmp_path / "p"
    assert main(["predict", str(shapes), "--out", str(out), "-q", "--save-coco", "--save-json"]) == 0
    from yolact.data.coco import CocoDataset, ann_to_mask, read_coco_json

    ann = out / "annotations.json"
    doc = read_coco_json(ann)
    assert [c["name"] for c in doc["categories"]] == list(demo_model.cfg.class_names)
    assert doc["info"]["image_root"] == str(shapes.resolve())
    ds = CocoDataset(str(ann), doc["info"]["image_root"], demo_model.cfg, train=False, verbose=False)
    assert len(ds) == 3 and not ds.problems
    pred = _masks(json.loads((out / "results.json").read_text()))
    imgs = {i["id"]: i for i in doc["images"]}
    back = {}
    for a in doc["annotations"]:
        i = imgs[a["image_id"]]
        back.setdefault(i["file_name"], []).append((a["category_id"], ann_to_mask(a, i["height"], i["width"])))
        assert 0 < a["score"] <= 1
    for f, items in pred.items():
        assert [c for c, _ in back[f]] == [c for c, _ in items]
        assert all(_iou(a, b) >= 0.99 for (_, a), (_, b) in zip(back[f], items))


def test_predict_verbose_prints_each_image_of_a_folder(tmp_path, capsys):
    """#27 item 8: --verbose gives per-image counts in a folder run; plain folder runs do not."""
    import cv2
    import numpy as np

    from yolact.cli import main
    from yolact.data.synth import make_image

    src = tmp_path / "imgs"
    src.mkdir()
    for k in range(2):
        cv2.imwrite(str(src / f"im{k}.png"), make_image(np.random.default_rng(k), 96, 128)[0])
    assert main(["predict", str(src), "--weights", "demo", "--out", str(tmp_path / "a"), "--verbose"]) == 0
    out = capsys.readouterr().out
    for k in range(2):
        assert any(line.startswith(str(src / f"im{k}.png")) and "detections" in line for line in out.splitlines())
    assert main(["predict", str(src), "--weights", "demo", "--out", str(tmp_path / "b")]) == 0
    assert "detections" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["predict", str(src), "--weights", "demo", "--verbose", "--quiet"])
    assert e.value.code == 2


def test_a_model_with_gapped_category_ids_writes_them_everywhere(demo_model, tmp_path):
    """#27 item 4: a model trained on a COCO file with ids (3, 7, 12, ...) writes those ids in
    --save-json, --save-coco and Results.to_coco, and the records score against a ground truth
    with those ids (pycocotools loadRes, AP > 0)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from yolact.checkpoint import save_checkpoint

    gapped = tuple(3 + 4 * k for k in range(demo_model.cfg.num_classes))
    new_id = dict(zip(range(1, len(gapped) + 1), gapped))
    gen = generate(tmp_path / "gen", n_train=4, n_val=0, size=256, seed=777, max_objects=3, style="simple")
    gt = json.loads(gen["train"].read_text())
    for c in gt["categories"]:
        c["id"] = new_id[c["id"]]
    for a in gt["annotations"]:
        a["category_id"] = new_id[a["category_id"]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    exact = yolact.load(yolact.demo_weights_path(), precision="fp32")  # a checkpoint keeps BatchNorm
    exact.cfg = exact.cfg.replace(category_ids=gapped)
    save_checkpoint(tmp_path / "gapped.pt", exact)
    out = tmp_path / "run"
    assert main(["predict", str(tmp_path / "gen" / "train"), "--weights", str(tmp_path / "gapped.pt"),
                 "--save-json", "--save-coco", "--out", str(out), "--quiet"]) == 0
    records = json.loads((out / "results.json").read_text())
    pre = json.loads((out / "annotations.json").read_text())
    assert [c["id"] for c in pre["categories"]] == list(gapped)
    assert {a["category_id"] for a in pre["annotations"]} <= set(gapped)
    assert records and {r["category_id"] for r in records} <= set(gapped)
    model = yolact.load(str(tmp_path / "gapped.pt"))
    res = model.predict(str(tmp_path / "gen" / "train" / gt["images"][0]["file_name"]))
    assert len(res) and {d["category_id"] for d in res.to_coco(1)} <= set(gapped)
    # the records, by file name, against the ground truth with the gapped ids
    gt_id = {i["file_name"]: i["id"] for i in gt["images"]}
    dets = [{"image_id": gt_id[r["file_name"]], "category_id": r["category_id"], "segmentation": r["segmentation"],
             "score": r["score"]} for r in records]
    coco_gt = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "segm")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] > 0.3


def test_predict_verbose_prints_each_video_frame(shapes, tmp_path, capsys):
    """#27 leftovers: --verbose was ignored for videos; it prints each frame's counts per class
    (0-based frame numbers, as the records)."""
    frame = cv2.imread(str(sorted(shapes.glob("*.jpg"))[0]))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, frame.shape[1::-1])
    for _ in range(3):
        writer.write(frame)
    writer.release()
    assert main(["predict", str(video), "--out", str(tmp_path / "v"), "--verbose"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("clip.avi frame")]
    assert [l.split(":")[0] for l in lines] == ["clip.avi frame 0", "clip.avi frame 1", "clip.avi frame 2"]
    assert all("detections" in l for l in lines)
    assert main(["predict", str(video), "--out", str(tmp_path / "w")]) == 0
    assert "clip.avi frame" not in capsys.readouterr().out


def test_nan_controls_are_not_a_number(demo_model, capsys):
    """#27 leftovers: nan got a range message; it is named as not a number (API and CLI)."""
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(YolactError, match="score threshold nan: not a number"):
        demo_model.predict(img, score_threshold=float("nan"))
    with pytest.raises(YolactError, match="iou nan: not a number"):
        demo_model.predict(img, iou=float("nan"))
