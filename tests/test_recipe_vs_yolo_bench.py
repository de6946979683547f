"""benchmarks/recipe_vs_yolo.py's bookkeeping: the ablation rows keep their numbers, a table
kept in ablation.json stands without its run folders, and ``side --seed`` reaches every run."""
import argparse
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_vs_yolo.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_recipe_vs_yolo_for_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_rows_keep_their_numbers(bench):
    from yolact.training.recipes import FAST

    rows = list(bench.ablation_recipes().items())
    # ``--rows`` and the tables in BENCHMARKS.md number the rows by position: new rows go last
    assert rows[0][0] == "baseline (original, AdamW 2e-3)" and rows[9][0] == "fast (all)"
    assert rows[13][0] == "fast + Dice 1.0"
    name, recipe = rows[14]
    assert name == "fast without mosaic"
    assert recipe.mosaic == 0.0 and recipe.mask_target == "soft"
    assert bench.replace(recipe, mosaic=FAST.mosaic, name="fast") == FAST  # only mosaic differs
    assert rows[9][1] == FAST  # fast whole, as the package has it
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
    monkeypatch.setattr(bench, "start_ours", lambda data, out, recipe, epochs, seed=0: seeds.update({out.name: seed}))
    monkeypatch.setattr(bench, "start_yolo", lambda py, data, out, minutes, seed=0: seeds.update({"yolo": seed}))
    monkeypatch.setattr(bench, "wait_all", lambda procs: {k: (0, 1.0, 1.0) for k in procs})
    monkeypatch.setattr(bench, "table", lambda args: None)
    yolo_python = tmp_path / "python"
    yolo_python.write_text("")
    bench.side(argparse.Namespace(out=str(tmp_path), data=tmp_path, epochs=3, minutes=1.0, runs="fast,original,yolo",
                                  seed=5, yolo_python=str(yolo_python)))
    assert seeds == {"fast": 5, "original": 5, "yolo": 5}
    assert json.loads((tmp_path / "side.json").read_text())["seed"] == 5
