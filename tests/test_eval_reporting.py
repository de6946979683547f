"""Evaluation read right and reported honestly: categories matched by name, sizes checked,
n/a for pycocotools' -1, per-class precision/recall/F1, confusion matrix, plots.

Expected values come from pycocotools on the untouched file, brute-force mask IoU and
matching, and results built from the ground truth itself (known answers)."""
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import yolact
from yolact.cli import main
from yolact.data.synth import generate
from yolact.evaluation.coco import coco_eval, evaluate, format_metrics
from yolact.errors import YolactError


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalset")
    generate(root, 0, 5, size=128, seed=21, max_objects=3, style="simple")
    return root


@pytest.fixture(scope="module")
def model():
    return yolact.load(yolact.demo_weights_path())


def pycocotools_stats(ann, results, iou_type="segm"):
    gt = COCO(str(ann))
    key = "segmentation" if iou_type == "segm" else "bbox"
    dets = [{"image_id": r["image_id"], "category_id": r["category_id"], key: r[key],
             "score": r["score"] if iou_type == "segm" else r.get("box_score", r["score"])} for r in results]
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.evaluate(), ev.accumulate(), ev.summarize()
    return [float(v) for v in ev.stats[:6]]


def reordered(val, tmp_path, rename=None):
    """The same ground truth with the categories listed in another order under other ids."""
    data = json.loads((val / "val.json").read_text())
    cats = data["categories"]
    new_id = {c["id"]: 100 + 7 * k for k, c in enumerate(reversed(cats))}
    data["categories"] = [dict(c, id=new_id[c["id"]], name=(rename or {}).get(c["name"], c["name"]))
                          for c in reversed(cats)]
    for a in data["annotations"]:
        a["category_id"] = new_id[a["category_id"]]
    p = tmp_path / "reordered.json"
    p.write_text(json.dumps(data))
    return p


def test_reordered_categories_give_pycocotools_ap_on_the_original(val, model, tmp_path):
    res = tmp_path / "orig_results.json"
    orig = evaluate(model, val / "val.json", val / "val", progress=False, out_json=str(res))
    expected = pycocotools_stats(val / "val.json", json.loads(res.read_text()))
    assert [orig["segm"][k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")] == pytest.approx(expected, abs=1e-12)
    assert expected[0] > 0.4
    moved = evaluate(model, reordered(val, tmp_path), val / "val", progress=False)
    for t in ("bbox", "segm"):
        for k in ("AP", "AP50", "AP75"):
            assert moved[t][k] == pytest.approx(orig[t][k], abs=1e-12), (t, k)
    # Pairing by position (the opt-in) pairs the wrong classes: the AP drops
    by_pos = evaluate(model, reordered(val, tmp_path), val / "val", progress=False, map_classes_by_position=True)
    assert by_pos["segm"]["AP"] < orig["segm"]["AP"] - 0.2


def test_renamed_categories_stop_with_one_line_listing_both(val, tmp_path, capsys):
    ann = reordered(val, tmp_path, rename={"star": "asterisk"})
    with pytest.raises(YolactError) as e:
        evaluate(yolact.load(yolact.demo_weights_path()), ann, val / "val", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "asterisk" in msg and "star" in msg and "--map-classes-by-position" in msg
    assert main(["eval", "--ann", str(ann), "--images", str(val / "val"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yolact: error:") and "only in the file: asterisk" in err[0]
    # the explicit opt-in runs
    assert main(["eval", "--ann", str(ann), "--images", str(val / "val"), "-q", "--map-classes-by-position"]) == 0


def test_eval_stops_on_an_image_whose_json_size_differs(val, model, tmp_path):
    data = json.loads((val / "val.json").read_text())
    img = data["images"][2]
    w, h = img["width"], img["height"]
    img["width"], img["height"] = w * 2, h * 2  # made on a 2x copy
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(YolactError, match=rf"{img['file_name']}\): the JSON says {2 * w}x{2 * h} but the file is {w}x{h}"):
        evaluate(model, ann, val / "val", progress=False)


def _gt_as_results(ann, relabel=None, score=0.9):
    """Detections that are the ground-truth masks themselves (IoU 1), optionally relabelled."""
    gt = COCO(str(ann))
    out = []
    for a in gt.dataset["annotations"]:
        rle = gt.annToRLE(a)
        rle = {"size": rle["size"], "counts": rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]}
        cat = (relabel or {}).get(a["category_id"], a["category_id"])
        out.append({"image_id": a["image_id"], "category_id": cat, "segmentation": rle,
                    "bbox": list(mask_utils.toBbox(rle)), "score": score})
    return out


def test_known_answers_perfect_and_confused(val):
    ann = val / "val.json"
    data = json.loads(ann.read_text())
    ids = [c["id"] for c in data["categories"]]
    n_gt = {c: sum(a["category_id"] == c for a in data["annotations"]) for c in ids}
    perfect = coco_eval(ann, _gt_as_results(ann))
    assert perfect["segm"]["AP"] == pytest.approx(1.0)
    conf = np.array(perfect["segm"]["confusion"]["matrix"])
    assert np.array_equal(conf, np.diag([n_gt[c] for c in ids] + [0]))
    for c in data["categories"]:
        prf = perfect["segm"]["per_class_prf"][c["name"]]
        if n_gt[c["id"]]:
            assert (prf["precision"], prf["recall"], prf["f1"], prf["gt"]) == (1.0, 1.0, 1.0, n_gt[c["id"]])
    # Every object found with the next class's label: all in the off-diagonal cells
    shift = {c: ids[(k + 1) % len(ids)] for k, c in enumerate(ids)}
    confused = coco_eval(ann, _gt_as_results(ann, shift))
    conf = np.array(confused["segm"]["confusion"]["matrix"])
    expect = np.zeros_like(conf)
    for k, c in enumerate(ids):
        expect[k, (k + 1) % len(ids)] = n_gt[c]
    assert np.array_equal(conf, expect)
    assert confused["segm"]["AP"] == 0.0
    # Below the threshold nothing counts: every object missed
    low = coco_eval(ann, _gt_as_results(ann, score=0.2), pr_score_threshold=0.5)
    conf = np.array(low["segm"]["confusion"]["matrix"])
    assert np.array_equal(conf[:, -1][:-1], [n_gt[c] for c in ids]) and conf[:, :-1].sum() == 0


def _brute_force_prf(ann, results, thr):
    """Greedy matching per image and class by score, each detection to the unmatched ground
    truth of best IoU >= 0.5 (IoU from decoded masks, crowds ignored)."""
    gt = COCO(str(ann))
    counts = {}
    for cat in gt.getCatIds():
        tp = fp = n = 0
        for img in gt.getImgIds():
            gts = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=img, catIds=[cat])) if not a["iscrowd"]]
            n += len(gts)
            gmasks = [gt.annToMask(a).astype(bool) for a in gts]
            dts = sorted((r for r in results if r["image_id"] == img and r["category_id"] == cat),
                         key=lambda r: -r["score"])[:100]
            used = set()
            for d in dts:
                dm = mask_utils.decode(d["segmentation"]).astype(bool)
                best, best_iou = None, 0.5
                for j, g in enumerate(gmasks):
                    iou = (dm & g).sum() / max((dm | g).sum(), 1)
                    if j not in used and iou >= best_iou:
                        best, best_iou = j, iou
                if d["score"] < thr:
                    if best is not None:
                        used.add(best)  # COCOeval matches it too; it just does not count here
                    continue
                if best is None:
                    fp += 1
                else:
                    used.add(best)
                    tp += 1
        counts[gt.cats[cat]["name"]] = (tp, fp, n)
    return counts


def test_precision_recall_f1_match_brute_force(val, model, tmp_path):
    res = tmp_path / "r.json"
    m = evaluate(model, val / "val.json", val / "val", progress=False, out_json=str(res), pr_score_threshold=0.4)
    brute = _brute_force_prf(val / "val.json", json.loads(res.read_text()), 0.4)
    for name, (tp, fp, n) in brute.items():
        prf = m["segm"]["per_class_prf"][name]
        assert (prf["tp"], prf["fp"], prf["gt"]) == (tp, fp, n), name
        if tp:
            p, r = tp / (tp + fp), tp / n
            assert prf["f1"] == pytest.approx(2 * p * r / (p + r))
    conf = np.array(m["segm"]["confusion"]["matrix"])
    results = json.loads(res.read_text())
    names = m["segm"]["confusion"]["names"]
    cat_of = {c["name"]: c["id"] for c in json.loads((val / "val.json").read_text())["categories"]}
    for k, name in enumerate(names):  # rows: every object once; columns: every detection once
        assert conf[k].sum() == brute[name][2]
        assert conf[:, k].sum() == sum(r["score"] >= 0.4 and r["category_id"] == cat_of[name] for r in results)


def test_minus_one_prints_na_and_plots_are_written(val, model, tmp_path, capsys):
    res = tmp_path / "out"
    assert main(["eval", "--ann", str(val / "val.json"), "--images", str(val / "val"), "--out", str(res), "-q"]) == 0
    printed = capsys.readouterr().out
    stats = pycocotools_stats(val / "val.json", json.loads((res / "results.json").read_text()))
    assert stats[5] == -1  # no large object in 128 px images
    mask_row = next(l for l in printed.splitlines() if l.startswith("mask")).split()
    assert mask_row[6] == "n/a" and "0.00" not in mask_row[6]
    assert "F1" in printed and "score >= 0.5" in printed
    for name in ("confusion_matrix.png", "pr_curve.png"):
        img = cv2.imread(str(res / name))
        assert img is not None and img.shape[0] > 200 and img.std() > 5
    assert main(["eval", "--ann", str(val / "val.json"), "--images", str(val / "val"), "--out",
                 str(tmp_path / "np"), "--no-plots", "-q"]) == 0
    assert not (tmp_path / "np" / "pr_curve.png").exists() and (tmp_path / "np" / "results.json").exists()


def test_format_metrics_no_detections_is_zero_not_na(val):
    m = coco_eval(val / "val.json", [])
    assert m["segm"]["AP"] == 0.0 and m["segm"]["APl"] == -1
    text = format_metrics(m)
    row = next(l for l in text.splitlines() if l.startswith("mask")).split()
    assert row[1:] == ["0.000"] * 5 + ["n/a"]  # 0..1, as the JSON (#27 item 5)


def test_eval_scores_far_out_and_rejects_flat_polygons(tmp_path):
    """A far vertex is scored as pycocotools scores the polygon's part inside the image,
    without gigabytes; a flat list stops the run naming the annotation."""
    import resource

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 50, 3), np.uint8))
    far = [10.0, 8.0, 30.0, 8.0, 30.0, 3.5e8, 10.0, 3.5e8]  # a strip running far below the image
    near = [10.0, 8.0, 30.0, 8.0, 30.0, 45.0, 10.0, 45.0]  # the same strip, ending just below it
    def write(seg, name):
        p = tmp_path / name
        p.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 40, "width": 50}],
                                 "categories": [{"id": 1, "name": "x"}],
                                 "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                                  "bbox": [10, 8, 20, 32], "area": 640.0, "segmentation": seg}]}))
        return p
    rle = mask_utils.merge(mask_utils.frPyObjects([near], 40, 50))
    rle["counts"] = rle["counts"].decode()
    dets = [{"image_id": 1, "category_id": 1, "segmentation": rle, "bbox": [10, 8, 20, 32], "score": 0.9}]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = coco_eval(write([far], "far.json"), dets)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: under 200 MB more
    assert got["segm"]["AP"] == pytest.approx(pycocotools_stats(write([near], "near.json"), dets)[0]) == 1.0
    with pytest.raises(YolactError, match=r"flat.json: annotation 5: flat list segmentation"):
        coco_eval(write(near, "flat.json"), dets)


# ------------------------------------------------------------------ CLI reporting
def test_closed_pipe_ends_quietly(val, tmp_path):
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "yolact", "data", "check", str(val / "val.json"), "--images",
                          str(val / "val"), "--out", str(tmp_path / "chk")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # as `| head -0`: the reader is gone before anything is written
    err = p.stderr.read().decode()
    assert p.wait() == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_convert_prints_a_summary_and_yolo_writes_a_real_val_split(val, tmp_path, capsys):
    import yaml

    lm = tmp_path / "lm"
    lm.mkdir()
    cv2.imwrite(str(lm / "a.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(lm / "bg.png"), np.zeros((20, 30, 3), np.uint8))
    (lm / "a.json").write_text(json.dumps({"imagePath": "a.png", "shapes": [
        {"label": "cat", "points": [[1, 1], [9, 1], [9, 9]]},
        {"label": "cat", "points": [[1, 1], [9, 1], [9, 9], [1, 9]]},
        {"label": "dog", "points": [[1, 1], [2, 2]]}]}))
    assert main(["data", "convert", "--to", "coco", str(lm), "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "images: 2 (1 without objects: background images)" in out and "instances: 2" in out
    assert "  cat  2" in out and "skipped: 1" in out and "1 x degenerate polygon" in out
    data = json.loads((val / "val.json").read_text())
    assert main(["data", "convert", "--to", "yolo", str(val / "val.json"), "--images", str(val / "val"),
                 "--out", str(tmp_path / "y"), "--val", "0.4"]) == 0
    out = capsys.readouterr().out
    spec = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    train = {p.name for p in (tmp_path / "y" / spec["train"]).iterdir()}
    val_imgs = {p.name for p in (tmp_path / "y" / spec["val"]).iterdir()}
    assert train and val_imgs and not train & val_imgs and len(train | val_imgs) == len(data["images"])
    assert f"split: {len(train)} train, {len(val_imgs)} val images" in out
    assert main(["data", "convert", "--to", "yolo", str(val / "val.json"), "--images", str(val / "val"),
                 "--out", str(tmp_path / "y1")]) == 0
    assert "val" not in yaml.safe_load((tmp_path / "y1" / "data.yaml").read_text())
    assert "no val split" in capsys.readouterr().out


def test_an_image_that_cannot_be_read_is_left_out_of_the_metrics(val, model, tmp_path, capsys):
    """Its objects must not count as misses: the AP equals that of the file without it."""
    import json
    import shutil

    images = tmp_path / "imgs"
    shutil.copytree(val / "val", images)
    data = json.loads((val / "val.json").read_text())
    gone = data["images"][0]
    (images / gone["file_name"]).unlink()
    without = dict(data, images=data["images"][1:],
                   annotations=[a for a in data["annotations"] if a["image_id"] != gone["id"]])
    (tmp_path / "without.json").write_text(json.dumps(without))
    got = evaluate(model, val / "val.json", images, progress=False)
    want = evaluate(model, tmp_path / "without.json", images, progress=False)
    assert got["segm"]["AP"] == want["segm"]["AP"] and got["bbox"]["AP"] == want["bbox"]["AP"]
    # new-user report: during training (no progress, so no reader lines) it said "see above"
    # with nothing above; the image is named in the line itself
    err = capsys.readouterr().err
    assert f"1 of {len(data['images'])} image(s) could not be evaluated ({gone['file_name']})" in err
