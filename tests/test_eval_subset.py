"""Evaluation on a file with only some of the model's classes, and the dataset prediction's
read-ahead thread and DDP sharding.

Expected APs come from pycocotools run here on the subset file with the full evaluation's
detections of those classes (filtered and relabelled by hand)."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import yolact
from yolact.cli import main
from yolact.data.coco import CocoDataset
from yolact.data.synth import generate
from yolact.errors import YolactError
from yolact.evaluation import evaluate, model_category_ids, predict_dataset

KEEP = ("circle", "star")  # the subset file's classes, under ids of its own


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("subset")
    generate(root, 0, 6, size=128, seed=31, max_objects=4, style="simple")
    return root


@pytest.fixture(scope="module")
def model():
    return yolact.load("demo")


def subset_file(val, path, keep=KEEP, extra=()):
    """val.json with only the ``keep`` categories (ids 40, 41, ... in reverse order) and their
    objects; ``extra`` adds names the model does not have."""
    data = json.loads((val / "val.json").read_text())
    old = {c["name"]: c["id"] for c in data["categories"]}
    new = {n: 40 + k for k, n in enumerate(reversed(list(keep) + list(extra)))}
    data["categories"] = [{"id": new[n], "name": n, "supercategory": "shape"} for n in new]
    by_old = {old[n]: new[n] for n in keep}
    data["annotations"] = [dict(a, category_id=by_old[a["category_id"]]) for a in data["annotations"]
                           if a["category_id"] in by_old]
    path.write_text(json.dumps(data))
    return path, {old[n]: new[n] for n in keep}


def cocoeval_stats(ann, results, iou_type):
    gt = COCO(str(ann))
    key = "segmentation" if iou_type == "segm" else "bbox"
    dets = [{"image_id": r["image_id"], "category_id": r["category_id"], key: r[key],
             "score": r["score"] if iou_type == "segm" else r["box_score"]} for r in results]
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.evaluate(), ev.accumulate(), ev.summarize()
    return [float(v) for v in ev.stats[:6]]


def test_subset_of_classes_scores_those_as_pycocotools_does(val, model, tmp_path, capsys):
    full_json, sub_json = tmp_path / "full.json", tmp_path / "sub.json"
    full = evaluate(model, val / "val.json", val / "val", progress=False, out_json=str(full_json))
    assert "note:" not in capsys.readouterr().err  # all classes: nothing to say
    ann, relabel = subset_file(val, tmp_path / "subset.json")
    sub = evaluate(model, ann, val / "val", progress=False, out_json=str(sub_json))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: {ann} has 2 of the model's 5 classes (circle, star); "
                   "detections of the other 3 (square, triangle, ring) are left out"]
    # the same detections as the full run, those of the other classes left out
    expected = [dict(r, category_id=relabel[r["category_id"]]) for r in json.loads(full_json.read_text())
                if r["category_id"] in relabel]
    got = json.loads(sub_json.read_text())
    assert got == expected and len(got) > 0
    assert len(expected) < len(json.loads(full_json.read_text()))
    for t in ("bbox", "segm"):
        want = cocoeval_stats(ann, expected, t)
        assert [sub[t][k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")] == pytest.approx(want, abs=1e-12), t
        assert set(sub[t]["per_class"]) == set(KEEP)
        for name in KEEP:  # each class's AP is what the full evaluation gave it
            assert sub[t]["per_class"][name] == pytest.approx(full[t]["per_class"][name], abs=1e-12), (t, name)
    assert want[0] > 0.2
    assert sub["segm"]["confusion"]["names"] == ["star", "circle"]


def test_cli_eval_on_one_class(val, tmp_path, capsys):
    ann, _ = subset_file(val, tmp_path / "circles.json", keep=("circle",))
    out = tmp_path / "out"
    assert main(["eval", "--ann", str(ann), "--images", str(val / "val"), "--out", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    notes = [l for l in cap.err.splitlines() if l.startswith("note:")]
    assert notes == [f"note: {ann} has 1 of the model's 5 classes (circle); "
                     "detections of the other 4 (square, triangle, star, ring) are left out"]
    rows = {l.split()[0] for l in cap.out.splitlines() if l.strip()}
    assert "circle" in rows and not rows & {"square", "triangle", "star", "ring"}
    results = json.loads((out / "results.json").read_text())
    assert results and {r["category_id"] for r in results} == {40}
    assert cap.out.splitlines()[1].split()[1] == f"{cocoeval_stats(ann, results, 'bbox')[0]:.3f}"
    assert cap.out.splitlines()[2].split()[1] == f"{cocoeval_stats(ann, results, 'segm')[0]:.3f}"


def test_names_the_model_lacks_still_stop(val, model, tmp_path, capsys):
    ann, _ = subset_file(val, tmp_path / "odd.json", extra=("hexagon",))
    with pytest.raises(YolactError, match="only in the file: hexagon;") as e:
        evaluate(model, ann, val / "val", progress=False)
    assert "\n" not in str(e.value) and "--map-classes-by-position" in str(e.value)
    assert main(["eval", "--ann", str(ann), "--images", str(val / "val"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yolact: error:") and "hexagon" in err[0]
    # pairing by position still needs one category a class
    ann, _ = subset_file(val, tmp_path / "two.json")
    assert main(["eval", "--ann", str(ann), "--images", str(val / "val"), "-q", "--map-classes-by-position"]) == 2
    assert "2 categories but the model has 5 classes" in capsys.readouterr().err
    with pytest.raises(YolactError, match="no categories"):
        model_category_ids(model.class_names, {"categories": []}, "empty.json")


def test_an_unreadable_image_stops_the_evaluation_naming_it(val, model, tmp_path):
    """The runner skips unreadable images in predict; evaluation must stop instead (a skipped
    image would silently lower AP)."""
    import shutil
    images = tmp_path / "val"
    shutil.copytree(val / "val", images)
    ds = CocoDataset(val / "val.json", images, model.cfg, train=False, verbose=False)
    victim = images / ds.image_info(2)["file_name"]
    victim.write_bytes(b"not an image")
    with pytest.raises(YolactError, match=victim.name):
        predict_dataset(model, ds, progress=False, batch_size=2)


def test_predict_dataset_matches_one_image_at_a_time(val, model):
    ds = CocoDataset(val / "val.json", val / "val", model.cfg, train=False, verbose=False)
    for batch in (1, 4):  # the batches as the main thread would read them (6 images: 4, then 2)
        want = []
        for start in range(0, len(ds), batch):
            chunk = range(start, min(start + batch, len(ds)))
            preds = model.predict([ds.load_sample(i)[0] for i in chunk], score_threshold=0.0, top_k=100,
                                  keep_image=False)
            for i, res in zip(chunk, preds):
                want += res.to_coco(ds.image_info(i)["id"], ds.category_ids, kind="both")
        assert predict_dataset(model, ds, progress=False, batch_size=batch) == want


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_eval_worker(rank, world, port, ann, images, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        m = evaluate(yolact.load("demo"), ann, images, progress=False,
                     out_json=os.path.join(out, "ddp.json") if rank == 0 else None)
        with open(os.path.join(out, f"metrics{rank}.json"), "w") as f:
            json.dump({t: {k: m[t][k] for k in ("AP", "AP50")} for t in m}, f)
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_ranks_give_the_single_process_metrics(val, model, tmp_path):
    ann, _ = subset_file(val, tmp_path / "subset.json")
    mp.spawn(_ddp_eval_worker, args=(2, _free_port(), str(ann), str(val / "val"), str(tmp_path)), nprocs=2, join=True)
    single = evaluate(model, ann, val / "val", progress=False, out_json=str(tmp_path / "single.json"))
    assert json.loads((tmp_path / "metrics1.json").read_text()) == {}  # only rank 0 scores
    ddp = json.loads((tmp_path / "metrics0.json").read_text())
    for t in ("bbox", "segm"):
        assert ddp[t] == pytest.approx({k: single[t][k] for k in ("AP", "AP50")}, abs=1e-12)
    # the same detections (scores to float32 rounding: the workers run on one thread each)
    key = lambda r: (r["image_id"], r["category_id"], r["bbox"], r["segmentation"]["counts"])  # noqa: E731
    ddp_res = json.loads((tmp_path / "ddp.json").read_text())
    want = sorted(json.loads((tmp_path / "single.json").read_text()), key=key)
    got = sorted(ddp_res, key=key)
    assert [key(r) for r in got] == [key(r) for r in want]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], rel=1e-4, abs=1e-6)
    assert [r["image_id"] for r in ddp_res] != sorted(r["image_id"] for r in ddp_res)  # rank 0's, then rank 1's


def test_classes_average_the_ap_over_the_selected_classes(val, model, tmp_path):
    """#27 item 5: eval --classes circle scores circle alone (pycocotools with params.catIds)."""
    out_json = tmp_path / "r.json"
    got = evaluate(model, val / "val.json", val / "val", progress=False, out_json=str(out_json), classes=["circle"])
    results = json.loads(out_json.read_text())
    cats = {c["name"]: c["id"] for c in json.loads((val / "val.json").read_text())["categories"]}
    gt = COCO(str(val / "val.json"))
    for t in ("bbox", "segm"):
        key = "segmentation" if t == "segm" else "bbox"
        dets = [{"image_id": r["image_id"], "category_id": r["category_id"], key: r[key],
                 "score": r["score"] if t == "segm" else r["box_score"]} for r in results]
        ev = COCOeval(gt, gt.loadRes(dets), t)
        ev.params.catIds = [cats["circle"]]
        ev.evaluate(), ev.accumulate(), ev.summarize()
        assert [got[t][k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")] == pytest.approx(
            [float(v) for v in ev.stats[:6]], abs=1e-12), t
        assert set(got[t]["per_class"]) == {"circle"}
        # not the all-class average with the others at 0
        assert got[t]["AP"] == pytest.approx(got[t]["per_class"]["circle"], abs=1e-12)
    assert got["segm"]["AP"] > 0.2
    with pytest.raises(YolactError):
        evaluate(model, subset_file(val, tmp_path / "s.json", keep=("circle",))[0], val / "val", progress=False,
                 classes=["star"])


def test_eval_classes_missing_from_the_file_are_named_before_predicting(val, tmp_path, capsys, monkeypatch):
    """#27 leftovers: `eval --classes 1` on a file without that class stopped after predicting
    every image with "none of the selected classes is in the file"; it stops first and names it."""
    import yolact.evaluation.coco as coco_mod

    ann, _ = subset_file(val, tmp_path / "circles.json", keep=("circle",))
    monkeypatch.setattr(coco_mod, "predict_dataset", lambda *a, **k: pytest.fail("predicted before the check"))
    assert main(["eval", "--ann", str(ann), "--images", str(val / "val"), "--classes", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert "the selected class(es) 1 (square) are not in the file (its categories: circle)" in err
