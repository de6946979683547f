"""benchmarks/train_profile.py: the stage clock, the derived stages and the table, and one
real (tiny) profile of ``--recipe fast`` whose stages add up."""
import time

import pytest
import torch

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("train_profile")


def test_clock_counts_only_while_on_and_nested(bench):
    clock = bench.Clock()
    spin = clock.wrap("outer", lambda: sum(i * i for i in range(20000)))
    spin()
    assert clock.seconds == {}  # off: warm-up iterations are not counted
    clock.on = True
    inner = clock.wrap("inner", lambda: sum(i * i for i in range(20000)))
    outer = clock.wrap("outer", lambda: inner() + inner())
    outer()
    assert clock.seconds["outer"] >= clock.seconds["inner"] > 0  # a stage inside another counts in both
    layer = torch.nn.Linear(64, 64)
    clock.hook("layer", layer)
    layer(torch.randn(256, 64))
    assert clock.seconds["layer"] > 0
    with pytest.raises(ZeroDivisionError):  # an exception still stops the clock and propagates
        clock.wrap("raises", lambda: 1 / 0)()
    assert "raises" in clock.seconds


def test_finish_derives_the_rest_and_the_total(bench):
    per = {"data": 0.1, "forward": 0.2, "loss": 0.05, "loss: assignment": 0.01, "loss: masks": 0.02,
           "backward": 0.3, "optimizer + EMA": 0.02, "step": 0.6, "validation + checkpoints (spread)": 0.03}
    res = bench.finish(per, {"note": 1})
    got = res["per_iteration_s"]
    assert got["loss: other"] == pytest.approx(0.02)
    assert got["rest of the step"] == pytest.approx(0.6 - 0.57)  # the step less what is named in it
    assert "step" not in got and res["step_s"] == 0.6 and res["note"] == 1
    assert got["total"] == pytest.approx(0.1 + 0.6 + 0.03)  # data + the whole step + validation
    assert per["step"] == 0.6  # the caller's dict is left as it was


def test_table_shows_both_columns_and_shares(bench):
    ours = bench.finish({"data": 0.1, "forward": 0.3, "forward: backbone": 0.2, "loss": 0.1, "backward": 0.4,
                         "optimizer + EMA": 0.05, "step": 0.85, "validation + checkpoints (spread)": 0.05}, {})
    yolo = bench.finish({"data": 0.05, "forward": 0.2, "loss": 0.1, "loss: assignment": 0.05, "backward": 0.3,
                         "optimizer + EMA": 0.01, "step": 0.61, "validation + checkpoints (spread)": 0.04}, {})
    text = bench.table(ours, yolo)
    lines = text.splitlines()
    assert lines[0].startswith("| stage, per iteration of 8 images | ours, fast (ms) | share | YOLO26n-seg (ms)")
    assert "| **data** | 100 | 10% | 50 | 7% |" in lines
    assert "| &nbsp;&nbsp;backbone | 200 | 20% | – |  |" in lines
    assert "| **total** | 1000 | 100% | 700 | 100% |" in lines
    assert not any("neck" in line for line in lines)  # measured by neither: no row
    assert "YOLO" not in bench.table(ours)


def test_missing_data_is_one_line(bench, tmp_path):
    with pytest.raises(SystemExit, match="train.json: not found"):
        bench.main(["--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="--iters and --warmup"):
        bench.main(["--data", str(tmp_path), "--iters", "0"])


def test_profile_of_the_fast_recipe_adds_up(bench, tmp_path):
    """A real profile on a small set: every stage is measured and they add up to the step."""
    from yolact.data.synth import generate

    generate(tmp_path, 16, 8, size=96, seed=1, max_objects=2)
    t0 = time.process_time()
    res = bench.profile_ours(tmp_path, iters=2, warmup=1, epochs=4)
    per = res["per_iteration_s"]
    for stage in ("data", "forward", "forward: backbone", "forward: neck (FPN)", "forward: heads", "loss",
                  "loss: assignment", "loss: masks", "backward", "optimizer + EMA",
                  "validation + checkpoints (spread)"):
        assert per[stage] > 0, stage
    forward_parts = per["forward: backbone"] + per["forward: neck (FPN)"] + per["forward: heads"]
    assert forward_parts <= per["forward"] * 1.001
    named = per["forward"] + per["loss"] + per["backward"] + per["optimizer + EMA"]
    assert named <= res["step_s"] * 1.001  # no stage counted twice inside the step
    assert per["total"] == pytest.approx(per["data"] + res["step_s"] + per["validation + checkpoints (spread)"])
    assert 3 * per["total"] < time.process_time() - t0  # 2 timed iterations of the 3 run, and the rest
    assert res["batches_per_epoch"] == 2 and res["iterations_between_validations"] == 4
