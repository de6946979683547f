"""benchmarks/recipe_vs_yolo.py's bookkeeping: the ablation rows keep their numbers, a table
kept in ablation.json stands without its run folders, and ``side --seed`` reaches every run."""
import argparse
import contextlib
import io
import json

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("recipe_vs_yolo")


def test_ablation_rows_keep_their_numbers(bench):
    from yolact.training.recipes import FAST

    rows = list(bench.ablation_recipes().items())
    # ``--rows`` and the tables in BENCHMARKS.md number the rows by position: new rows go last
    assert rows[0][0] == "baseline (original, AdamW 2e-3)" and rows[9][0] == "fast (all)"
    assert rows[13][0] == "fast + Dice 1.0"
    name, recipe = rows[14]
    assert name == "fast without mosaic"
    assert recipe.mosaic == 0.0 and recipe.mask_target == "soft"
    # only mosaic differs, and the inference options: every row keeps the original's
    shipped = dict(mask_score=FAST.mask_score, mask_interpolation=FAST.mask_interpolation)
    assert bench.replace(recipe, mosaic=FAST.mosaic, name="fast", **shipped) == FAST
    assert bench.replace(rows[9][1], **shipped) == FAST  # fast whole, as the package trains it
    assert {(r.mask_score, r.mask_interpolation) for _, r in rows} == {("class", "bilinear")}
    assert len({bench.slug(n) for n, _ in rows}) == len(rows)  # one folder per row


SCORES = {"mask_ap": 0.7251, "mask_ap50": 0.9, "box_ap": 0.694, "box_ap50": 0.92, "dets_per_image_005": 4.7,
          "dets_per_image_05": 2.8, "precision_05": 0.95}


def _table(bench, out):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.table(argparse.Namespace(out=str(out), data=str(out), yolo_python="none"))
    return buf.getvalue()


def test_ablation_table_keeps_its_scores(bench, tmp_path, monkeypatch):
    run = {"rc": 0, "cpu": 3600.0, "wall": 3700.0, "epochs": 140}
    (tmp_path / "ablation.json").write_text(json.dumps({"minutes": 60.0, "epochs": None,
                                                        "runs": {"fast (all)": dict(run)}}))
    calls = []
    monkeypatch.setattr(bench, "evaluate_run", lambda *a: calls.append(a) or dict(SCORES))
    assert "| fast (all) | 140 | 3600 | 3700 | 0.725 |" in _table(bench, tmp_path)
    assert len(calls) == 1
    kept = json.loads((tmp_path / "ablation.json").read_text())["runs"]["fast (all)"]
    assert kept["scores"] == SCORES and kept["cpu"] == 3600.0

    # the json alone: no run folder, and nothing scored again
    monkeypatch.setattr(bench, "evaluate_run", lambda *a: pytest.fail("scored again"))
    assert "| fast (all) | 140 | 3600 | 3700 | 0.725 | 0.900 | 0.694 |" in _table(bench, tmp_path)


def test_side_seed_reaches_every_run(bench, tmp_path, monkeypatch):
    seeds = {}
    monkeypatch.setattr(bench, "start_ours", lambda data, out, recipe, epochs, seed=0, amp=False, hours=None:
                        seeds.update({out.name: (seed, amp)}))
    monkeypatch.setattr(bench, "start_yolo", lambda py, data, out, minutes, seed=0: seeds.update({"yolo": seed}))
    monkeypatch.setattr(bench, "wait_all", lambda procs: {k: (0, 1.0, 1.0) for k in procs})
    monkeypatch.setattr(bench, "table", lambda args: None)
    yolo_python = tmp_path / "python"
    yolo_python.write_text("")
    bench.side(argparse.Namespace(out=str(tmp_path), data=tmp_path, epochs=3, minutes=1.0, runs="fast,original,yolo",
                                  seed=5, amp=True, yolo_python=str(yolo_python), probe=False))
    assert seeds == {"fast": (5, True), "original": (5, True), "yolo": 5}
    assert json.loads((tmp_path / "side.json").read_text())["seed"] == 5


def test_side_gives_ours_the_same_wall_clock_as_yolo(bench, tmp_path, monkeypatch):
    """Without --epochs (or --probe) ours trains with --time the minutes YOLO gets as time=: no probes."""
    started = {}
    monkeypatch.setattr(bench, "start_ours", lambda data, out, recipe, epochs, seed=0, amp=False, hours=None:
                        started.update({out.name: (epochs, hours)}))
    monkeypatch.setattr(bench, "start_yolo", lambda py, data, out, minutes, seed=0: started.update({"yolo": minutes}))
    monkeypatch.setattr(bench, "probe_epochs", lambda *a: pytest.fail("probed"))
    monkeypatch.setattr(bench, "wait_all", lambda procs: {k: (0, 1.0, 1.0) for k in procs})
    monkeypatch.setattr(bench, "table", lambda args: None)
    yolo_python = tmp_path / "python"
    yolo_python.write_text("")
    bench.side(argparse.Namespace(out=str(tmp_path), data=tmp_path, epochs=None, minutes=30.0, runs="fast,yolo",
                                  seed=0, amp=False, yolo_python=str(yolo_python), probe=False))
    assert started == {"fast": (None, 0.5), "yolo": 30.0}
    meta = json.loads((tmp_path / "side.json").read_text())
    assert meta["time_hours"] == 0.5 and meta["epochs"] is None
    (tmp_path / "fast").mkdir()
    (tmp_path / "fast" / "metrics.jsonl").write_text('{"iteration": 1, "epoch": 0}\n{"iteration": 90, "epoch": 8}\n'
                                                    '{"iteration": 90, "val_mask_ap": 0.1, "val_box_ap": 0.1}\n')
    assert bench.epochs_reached(tmp_path / "fast") == 9


def test_calibration_counts_and_matches_like_coco(bench, tmp_path):
    """Two images, two classes. At score >= 0.5: a right mask, a duplicate of it (the lower score
    loses the object), a right mask of the wrong class and a miss; below 0.5 one right mask that
    counts only among the >= 0.05 detections. Precision at 0.5: 1 right of 4."""
    import numpy as np
    from pycocotools import mask as mu

    def rle(y0, y1, x0, x1):
        m = np.zeros((64, 64), np.uint8)
        m[y0:y1, x0:x1] = 1
        r = mu.encode(np.asfortranarray(m))
        r["counts"] = r["counts"].decode()
        return r

    a, b = rle(8, 40, 8, 40), rle(20, 60, 30, 60)
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": a},
            {"id": 2, "image_id": 2, "category_id": 2, "segmentation": b}]
    for ann in anns:
        ann.update(iscrowd=0, area=float(mu.area(ann["segmentation"])),
                   bbox=[float(v) for v in mu.toBbox(ann["segmentation"])])
    val = tmp_path / "val.json"
    val.write_text(json.dumps({"images": [{"id": i, "width": 64, "height": 64, "file_name": f"{i}.png"} for i in (1, 2)],
                               "annotations": anns, "categories": [{"id": 1, "name": "p"}, {"id": 2, "name": "q"}]}))

    def det(img, cat, seg, s):
        return {"image_id": img, "category_id": cat, "segmentation": seg, "score": s,
                "bbox": [float(v) for v in mu.toBbox(seg)]}

    results = [det(1, 1, a, 0.9), det(1, 1, a, 0.8), det(2, 1, b, 0.7), det(2, 2, rle(0, 10, 0, 10), 0.6),
               det(2, 2, b, 0.3), det(1, 2, a, 0.01)]
    s = bench.score(results, val)
    assert s["dets_per_image_005"] == 5 / 2 and s["dets_per_image_05"] == 4 / 2
    assert s["precision_05"] == 1 / 4


def test_ablation_table_keeps_its_precision(bench, tmp_path, monkeypatch):
    """A table written before --amp (no "amp" key) is an fp32 table: a run without --amp goes on
    with it, one under --amp is refused (its rows would not be comparable) and names the file."""
    (tmp_path / "ablation.json").write_text(json.dumps({"minutes": 60.0, "epochs": None, "runs": {}}))
    monkeypatch.setattr(bench, "table", lambda args: None)
    args = dict(out=str(tmp_path), data=tmp_path, minutes=60.0, epochs=None, rows="1", redo=False, jobs=1,
                yolo_python="none")
    ran = []
    monkeypatch.setattr(bench, "ablation_row", lambda name, recipe, a: ran.append(a.amp) or {"rc": 0})
    bench.ablation(argparse.Namespace(**args, amp=False))
    assert ran == [False]
    with pytest.raises(SystemExit, match="ablation.json: holds a table for 60.0 minutes / None epochs, "
                                         "not 60.0 / None under --amp"):
        bench.ablation(argparse.Namespace(**args, amp=True))
    assert ran == [False]
