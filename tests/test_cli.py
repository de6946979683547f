import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from yolact.checkpoint import save_checkpoint
from yolact.cli import main
from yolact.errors import YolactError
import yolact
from yolact.data.synth import generate

from conftest import make_tiny_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    from yolact.data.synth import SHAPE_CLASSES
    model = make_tiny_model(classes=SHAPE_CLASSES)
    path = d / "tiny.pt"
    save_checkpoint(path, model)
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_synth")
    generate(root, 3, 4, size=96, seed=3)
    return root


def test_predict_image_and_folder(weights, synth, tmp_path, capsys):
    img = sorted((synth / "train").glob("*.jpg"))[0]
    assert main(["predict", "--weights", str(weights), str(img), "--out", str(tmp_path / "one"),
                 "--score-threshold", "0.0", "--save-json"]) == 0
    out = capsys.readouterr().out
    assert "detections" in out
    assert (tmp_path / "one" / f"{img.stem}.png").exists()
    res = json.loads((tmp_path / "one" / "results.json").read_text())
    assert res and {"segmentation", "bbox", "score", "category_id"} <= set(res[0])
    assert main(["predict", "-w", str(weights), str(synth / "train"), "-o", str(tmp_path / "many"), "-q"]) == 0
    assert len(list((tmp_path / "many").glob("*.png"))) == 3


def test_predict_video(weights, tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        frame = np.full((48, 64, 3), 40 * i, np.uint8)
        cv2.circle(frame, (20 + i * 5, 24), 10, (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    assert main(["predict", "-w", str(weights), str(path), "-o", str(tmp_path / "v"), "-q", "--batch-size", "2"]) == 0
    cap = cv2.VideoCapture(str(tmp_path / "v" / "clip.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5


def test_protos(weights, synth, tmp_path):
    img = sorted((synth / "train").glob("*.jpg"))[0]
    assert main(["protos", "-w", str(weights), str(img), "-o", str(tmp_path), "--per-detection",
                 "--score-threshold", "0.0", "--top-k", "2"]) == 0
    grid = cv2.imread(str(tmp_path / f"{img.stem}_protos.png"))
    assert grid is not None and grid.shape[0] > 100
    assert len(list(tmp_path.glob("*_det*.png"))) == 2


@pytest.mark.parametrize("args,needle", [
    (["predict", "--weights", "{w}", "/nonexistent/x.jpg"], "/nonexistent/x.jpg: no such file"),
    (["predict", "--weights", "/nope.pth", "{img}"], "/nope.pth: no such checkpoint"),
    (["predict", "--weights", "{bad}", "{img}"], "not a PyTorch checkpoint"),
    (["predict", "--weights", "{w}", "{corrupt}"], "corrupt.jpg: not a readable image"),
    (["eval", "--weights", "{w}", "--ann", "{badjson}", "--images", "/tmp"], "not valid JSON"),
    (["data", "check", "/nonexistent/folder"], "/nonexistent/folder: no such file or folder"),
    (["train", "--data", "{empty}", "--format", "labelme", "--iters", "1"], "no LabelMe .json files"),
    (["data", "check", "{tmp}", "--format", "labelme"], "a.json: not valid JSON"),
])
def test_errors_are_one_line(args, needle, weights, synth, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage" * 20)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    badjson = tmp_path / "a.json"
    badjson.write_text("{")
    img = sorted((synth / "train").glob("*.jpg"))[0]
    fill = dict(w=str(weights), bad=str(bad), corrupt=str(corrupt), img=str(img), badjson=str(badjson),
                tmp=str(tmp_path), empty=str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    code = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_debug_flag_shows_traceback(weights, capsys):
    assert main(["--debug", "predict", "--weights", str(weights), "/nonexistent.jpg"]) != 0
    assert "Traceback" in capsys.readouterr().err


def test_console_script_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yolact", "predict", "--weights", str(tmp_path / "none.pt"), "x.jpg"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("yolact: error:") and "Traceback" not in r.stderr


def test_eval_matches_pycocotools(weights, synth, tmp_path, capsys):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "res.json"
    assert main(["eval", "-w", str(weights), "--ann", str(synth / "val.json"), "--images", str(synth / "val"),
                 "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    row = next(l for l in printed.splitlines() if l.startswith("mask"))
    printed_ap = [-1.0 if v == "n/a" else float(v) for v in row.split()[1:]]  # n/a: pycocotools' -1
    results = json.loads(out.read_text())
    gt = COCO(str(synth / "val.json"))
    dets = [{"image_id": r["image_id"], "category_id": r["category_id"], "segmentation": r["segmentation"],
             "score": r["score"]} for r in results]
    ev = COCOeval(gt, gt.loadRes(dets), "segm")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    # one AP unit everywhere (#27 item 5): the console prints pycocotools' 0..1 fractions
    expected = list(ev.stats[:6])
    assert printed_ap == pytest.approx(expected, abs=0.0006)
    assert (tmp_path / "pr_curve.png").exists() and (tmp_path / "confusion_matrix.png").exists()  # --out: plots


def test_data_synth_and_train_cli(tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--train", "4", "--val", "2", "--size", "64"]) == 0
    assert main(["train", "--config", "yolact_resnet18", "--train-ann", str(tmp_path / "d" / "train.json"),
                 "--train-images", str(tmp_path / "d" / "train"), "--val-ann", str(tmp_path / "d" / "val.json"),
                 "--val-images", str(tmp_path / "d" / "val"), "--img-size", "64", "--batch-size", "2",
                 "--iters", "2", "--out", str(tmp_path / "run"), "--workers", "0", "-q"]) == 0
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_train_stops_at_once_on_val_classes_of_other_names(tmp_path, capsys):
    import json

    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--train", "2", "--val", "2", "--size", "64"]) == 0
    val = json.loads((tmp_path / "d" / "val.json").read_text())
    val["categories"][0]["name"] = "renamed"
    (tmp_path / "d" / "val.json").write_text(json.dumps(val))
    code = main(["train", "--config", "yolact_resnet18", "--train-ann", str(tmp_path / "d" / "train.json"),
                 "--train-images", str(tmp_path / "d" / "train"), "--val-ann", str(tmp_path / "d" / "val.json"),
                 "--val-images", str(tmp_path / "d" / "val"), "--img-size", "64", "--batch-size", "2",
                 "--iters", "2", "--out", str(tmp_path / "run"), "--workers", "0", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "renamed" in err and "val.json" in err
    assert not (tmp_path / "run" / "last.pt").exists()  # stopped before training


def test_data_cli_from_mask_pngs_to_training(tmp_path, capsys):
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        for i in range(2):
            img = np.full((64, 64, 3), 40 * (i + 1), np.uint8)
            cv2.imwrite(str(root / split / "images" / f"im{i}.png"), img)
            m = np.zeros((64, 64), np.uint8)
            m[10:40, 12 + 5 * i:50] = 255
            cv2.imwrite(str(root / split / "masks" / f"im{i}_1_cat.png"), m)
    assert main(["data", "check", str(root / "train"), "-o", str(tmp_path / "chk")]) == 0
    out = capsys.readouterr().out
    assert "2 images, 2 instances" in out and "cat  2" in out and (tmp_path / "chk" / "overview.png").exists()
    assert main(["data", "convert", "--to", "coco", str(root / "train"), "--out", str(tmp_path / "c.json")]) == 0
    assert main(["data", "split", str(tmp_path / "c.json"), "--val", "0.5", "-o", str(tmp_path / "sp")]) == 0
    assert (tmp_path / "sp" / "val.json").exists()
    assert main(["train", "--data", str(root), "--config", "yolact_resnet18", "--img-size", "64", "--batch-size", "2",
                 "--iters", "2", "--out", str(tmp_path / "run"), "--workers", "0", "-q"]) == 0
    assert (tmp_path / "run" / "best.pt").exists()
    assert yolact.load(tmp_path / "run" / "best.pt").class_names == ("cat",)


def test_video_pipeline_order_and_errors(weights, tmp_path):
    from yolact.prediction.stream import segment_video

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(7):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    model = yolact.load(weights)
    seen = []
    n = segment_video(model, str(path), None, batch_size=3, queue_frames=2,
                      on_results=lambda frames, res: seen.extend(int(f.mean()) for f in frames))
    assert n == 7 and len(seen) == 7
    assert seen == sorted(seen)  # frames come out in decode order despite the threads
    assert segment_video(model, str(path), None, batch_size=2, max_frames=3) == 3

    def fail(frames, res):
        raise RuntimeError("disk full")

    with pytest.raises(YolactError, match="disk full"):
        segment_video(model, str(path), None, batch_size=2, queue_frames=1, on_results=fail)
    with pytest.raises(YolactError, match="missing.avi: no such file"):
        segment_video(model, str(tmp_path / "missing.avi"), None)
    (tmp_path / "text.avi").write_text("not a video")
    with pytest.raises(YolactError, match="text.avi: cannot open video source"):
        segment_video(model, str(tmp_path / "text.avi"), None)


def test_convert_to_yolo_from_a_folder_says_it_reads_coco(tmp_path, capsys):
    (tmp_path / "lm").mkdir()
    assert main(["data", "convert", "--to", "yolo", str(tmp_path / "lm"), "--out", str(tmp_path / "y")]) == 2
    assert "--to yolo reads a COCO .json" in capsys.readouterr().err
