"""``--time``: a wall-clock budget instead of a length (Trainer._fit_to_time, RunClock). The
trainer's clock is replaced by one that advances a fixed amount per step and per validation, so
the lengths below are exact and no test depends on this machine's speed."""
import json
import os

import pytest
import torch
import torch.multiprocessing as mp

from yolact.cli import main
from yolact.config import get_config
from yolact.data.coco import CocoDataset
from yolact.data.synth import generate
from yolact.errors import YolactError
from yolact.training import Trainer, TrainOptions, train
from yolact.training.recipes import FAST, ORIGINAL, apply_recipe

STEP_S, VAL_S = 1.0, 3.0  # the fake clock: seconds per training step and per validation


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("time_data")
    generate(root, 8, 4, size=80, seed=1, max_objects=3)
    return root


class FakeClock:
    def __init__(self, trainer, step_s=STEP_S, val_s=VAL_S):
        self.now = 1000.0
        step, validate = trainer._step, trainer.validate

        def timed_step(images, targets):
            self.now += step_s
            return step(images, targets)

        def timed_validate():
            self.now += val_s
            return validate()

        trainer._step, trainer.validate = timed_step, timed_validate
        trainer.clock.clock = lambda: self.now


def make_trainer(data, out, recipe=FAST, seconds=40.0, val=True, clock=True, **kw):
    ds = CocoDataset(data / "train.json", data / "train", train=True, verbose=False)
    cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=64, fpn_channels=32)
    ds.cfg = cfg
    opts = TrainOptions(out=str(out), time_hours=None if seconds is None else seconds / 3600, batch_size=2, progress=False, log_interval=1, **kw)
    opts = apply_recipe(opts, recipe, {k: k in kw for k in ("optimizer", "lr", "schedule", "ema_decay")})
    split = (str(data / "val.json"), str(data / "val")) if val else (None, None)
    tr = Trainer(cfg, ds, opts, *split, recipe=recipe)
    if clock:
        FakeClock(tr)
    return tr


def vals(tr):
    return [h["iteration"] for h in tr.history if "val_mask_ap" in h]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_run_ends_within_its_budget_with_a_final_validation_and_its_schedule_fitted(data, tmp_path):
    tr = make_trainer(data, tmp_path, seconds=40.0)
    bpe = tr.batches_per_epoch  # 8 images, batch 2: 4
    provisional = tr.max_iter
    summary = tr.train()
    # 1 s a step and 3 s a validation (fast: every 2 epochs = 8 steps): 40 s hold 8 epochs of
    # 32 steps and 4 validations (44 s) no longer; 7 epochs (28 + 3 x 3 + the final 3 = 40) do
    assert tr.clock.elapsed() <= 40.0
    assert tr.iteration == tr.max_iter == summary["iterations"] == 7 * bpe < provisional
    assert vals(tr)[-1] == tr.iteration  # the final weights were validated (best.pt chosen on them)
    # the schedule was fitted to the length: the linear decay reached its end at the last step
    lrs = [h["lr"] for h in tr.history if "lr" in h]
    assert lrs[-1] == pytest.approx(tr.schedule.lr(tr.iteration - 1))
    assert lrs[-1] < 0.1 * tr.base_lr
    # ... and so did mosaic's last epochs (fast: the last 10% of the run without mosaic)
    assert tr.train_set.augment.mosaic_until == tr._mosaic_until() < 7
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ckpt["time_used_s"] == pytest.approx(tr.clock.elapsed())
    options = json.loads(ckpt["options"])
    assert options["time_hours"] == pytest.approx(40 / 3600) and options["iters"] is None


def test_a_budget_shorter_than_an_epoch_stops_mid_epoch_and_validates(data, tmp_path, capsys):
    tr = make_trainer(data, tmp_path, seconds=2.5, recipe=ORIGINAL)
    tr.train()
    # new-user report: the final validation's cost is not known yet, and the line says so
    assert "is spent (no validation timed yet: the final one comes on top)" in capsys.readouterr().out
    # no validation time known yet: the check stops once 2.5 s are used (after 3 steps)
    assert tr.iteration == 3 < tr.batches_per_epoch and vals(tr) == [3]
    assert tr.best_val is not None


def test_a_slow_validation_shortens_the_run(data, tmp_path):
    fast_val = make_trainer(data, tmp_path / "a", seconds=60.0)
    fast_val.train()
    slow = make_trainer(data, tmp_path / "b", seconds=60.0, clock=False)
    FakeClock(slow, val_s=9.0)
    slow.train()
    assert slow.iteration < fast_val.iteration and slow.clock.elapsed() <= 60.0 and fast_val.clock.elapsed() <= 60.0


def test_resume_goes_on_counting_and_refuses_a_spent_budget(data, tmp_path):
    half = make_trainer(data, tmp_path / "run", seconds=40.0)
    step = half._step

    def step_then_signal(images, targets):
        out = step(images, targets)
        if half.iteration == 10:
            half._handle_signal(2, None)
        return out

    half._step = step_then_signal
    with pytest.raises(KeyboardInterrupt):
        half.train()
    used = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["time_used_s"]
    assert used == pytest.approx(half.clock.elapsed()) and used > 10
    resumed = make_trainer(data, tmp_path / "run", seconds=40.0)
    resumed.resume(str(tmp_path / "run" / "last.pt"))
    assert resumed.clock.elapsed() == pytest.approx(used) and resumed.max_iter == half.max_iter
    assert any(n.startswith(f"note: --time {40 / 3600:g} h counts the run's {used / 3600:.3f} h so far") for n in resumed.notes)
    resumed.train()
    assert resumed.clock.elapsed() <= 40.0 and vals(resumed)[-1] == resumed.iteration
    # the whole budget is spent: the same --time is refused in one line, a longer one goes on
    again = make_trainer(data, tmp_path / "run", seconds=40.0)
    with pytest.raises(YolactError, match=r"the run has trained 0\.01\d h, not less than --time 0\.0111.*"
                                          r"a --time over 0\.01\d continues it"):
        again.resume(str(tmp_path / "run" / "last.pt"))
    # new-user report: a longer --time on the ended run trained one epoch more and stopped; the
    # length now comes from the run's pace so far, and the new budget is used
    longer = make_trainer(data, tmp_path / "run", seconds=80.0)
    longer.resume(str(tmp_path / "run" / "last.pt"))
    done = longer.iteration
    longer.train()
    assert longer.iteration > done + 2 * longer.batches_per_epoch
    assert 70.0 < longer.clock.elapsed() <= 80.0 and vals(longer)[-1] == longer.iteration
    with pytest.raises(YolactError, match=r"the run is complete .* a longer --iters or --epochs \(or a --time over "
                                          r"the 0\.02\d h trained\) continues it"):
        by_length = make_trainer(data, tmp_path / "run", seconds=None, iters=longer.iteration)
        by_length.resume(str(tmp_path / "run" / "last.pt"))


def test_time_and_a_length_contradict(data, tmp_path, capsys):
    with pytest.raises(YolactError, match="--time and --iters"):
        train(train_ann=str(data / "train.json"), train_images=str(data / "train"), time=0.01, iters=5,
              out=str(tmp_path / "a"))
    for bad in ("0", "-1", "nan"):
        assert main(["train", "--train-ann", str(data / "train.json"), "--train-images", str(data / "train"),
                     "--time", bad, "--out", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err
    assert "--time" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:  # argparse: one of --iters, --epochs, --time
        main(["train", "--train-ann", str(data / "train.json"), "--train-images", str(data / "train"),
              "--time", "0.1", "--epochs", "2"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_of_an_epochs_run_with_time_says_what_replaces_what(data, tmp_path, capsys):
    common = ["train", "--train-ann", str(data / "train.json"), "--train-images", str(data / "train"),
              "--config", "yolact_resnet18", "--img-size", "64", "--backbone-weights", "none", "--batch-size", "2",
              "--workers", "0"]
    assert main(common + ["--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    last = tmp_path / "r" / "last.pt"
    used = torch.load(last, weights_only=False)["time_used_s"]
    assert used > 0
    capsys.readouterr()
    # the budget counts the run's whole time: a second more than it has used trains on briefly
    hours = (used + 1) / 3600
    assert main(["train", "--resume", str(last), "--time", str(hours)]) == 0
    out = capsys.readouterr().out
    assert f"--resume: --time {hours} replaces the checkpoint's --epochs 1" in out
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["iteration"] > 4 and json.loads(ckpt["options"])["time_hours"] == pytest.approx(hours)


def _ddp_worker(rank, world, port, data, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        tr = make_trainer(data, out, recipe=ORIGINAL, seconds=20.0, val=False, clock=False, freeze_bn=True)
        # rank 1's clock runs three times as fast: only rank 0's may decide, or the ranks would
        # stop at different steps and DDP would wait for ever
        FakeClock(tr, step_s=1.0 if rank == 0 else 3.0)
        tr.train()
        torch.save({"iteration": tr.iteration, **{k: v.clone() for k, v in tr.model.state_dict().items()}},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_ranks_follow_rank_0s_clock(data, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, data, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["iteration"] == r1["iteration"] > 4
    for k in r0:
        if k != "iteration":
            assert torch.equal(r0[k], r1[k]), k
