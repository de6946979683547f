"""yolact.training.train(...): the library call behind `yolact train` (same arguments, same run)."""
import argparse
import json
from pathlib import Path

import pytest
import torch

import yolact.training
from yolact.cli import main
from yolact.cli import train as cli_train
from yolact.data.synth import generate
from yolact.errors import YolactError
from yolact.training import api, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_data")
    generate(root, 4, 2, size=64, seed=1, max_objects=2)
    return root


def test_train_writes_a_run_folder_and_resumes_from_it(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "train").mkdir(parents=True)  # taken: the run goes to runs/train2, as the CLI's
    result = train(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1,
                   batch_size=2, img_size=64, workers=0, no_augment=True, lr_steps=[0.5])
    run = Path("runs/train2")
    assert result["out"] == str(run) and result["iterations"] == 1 and "best_mask_ap" not in result
    for name in ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv"):
        assert (run / name).exists(), name
    ckpt = torch.load(run / "last.pt", weights_only=False)
    stored = json.loads(ckpt["options"])
    assert stored["lr_steps"] == [0.5] and stored["run_args"]["train_ann"] == str((tiny_data / "train.json").resolve())
    assert "no val split" in capsys.readouterr().out
    # the file alone continues the run: data and options from the checkpoint, --iters given again
    again = train(resume=str(run / "last.pt"), iters=2, quiet=False)
    assert again["out"] == str(run) and again["iterations"] == 2
    assert "--iters 2 replaces the checkpoint's --iters 1" in capsys.readouterr().out
    # in the other unit: one notice naming both (before: "--epochs 1 replaces the checkpoint's default")
    train(resume=str(run / "last.pt"), epochs=2, quiet=False)
    out = capsys.readouterr().out
    assert "--resume: --epochs 2 replaces the checkpoint's --iters 2" in out and "default" not in out
    train(resume=str(run / "last.pt"), iters=5, quiet=True)  # --quiet: no notice
    assert capsys.readouterr().out == ""
    # another input size is another model: refused in one line that says so, before any training
    with pytest.raises(YolactError, match=r"^--img-size 96: .*last.pt was trained with --img-size 64; a resumed run "
                                          r"keeps it"):
        train(resume=str(run / "last.pt"), iters=3, img_size=96, quiet=True)
    # the augmentation switches are config fields too; True/False arguments read as their flags
    with pytest.raises(YolactError, match=r"^without --no-augment: .*last.pt was trained with --no-augment; a resumed "
                                          r"run keeps it \(leave --no-augment out, or start a new run from the file: "
                                          r"--weights \S+last.pt\)$"):
        train(resume=str(run / "last.pt"), iters=6, no_augment=False, given=["resume", "iters", "no_augment"])
    # -q on resuming a run that printed says nothing of itself
    train(resume=str(run / "last.pt"), iters=6, quiet=False, given=["resume", "iters", "quiet"])
    assert "--quiet" not in capsys.readouterr().out


def test_resume_under_another_config_names_the_fields(tiny_data, tmp_path):
    """Trainer.resume's refusal names each config field that differs, for any caller."""
    run = tmp_path / "run"
    train(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1, batch_size=2,
          img_size=64, workers=0, quiet=True, out=str(run))
    obj = torch.load(run / "last.pt", weights_only=True)
    obj["config"] = dict(obj["config"], augment_mirror=False, fpn_channels=32)
    torch.save(obj, run / "last.pt")
    with pytest.raises(YolactError, match=r"last.pt: was trained with another config: fpn_channels 32 \(this run: "
                                          r"\d+\), augment_mirror False \(this run: True\); cannot resume$"):
        train(resume=str(run / "last.pt"), iters=2, quiet=True)


def test_train_errors_are_one_line_yolact_errors(tiny_data, tmp_path):
    with pytest.raises(YolactError, match="give --train-ann and --train-images"):
        train(out=str(tmp_path / "x"))
    with pytest.raises(YolactError, match="--val-ann and --val-images go together"):
        train(train_ann="a.json", train_images="imgs", val_ann="v.json", out=str(tmp_path / "x"))
    with pytest.raises(TypeError):  # keyword arguments only, by the CLI's names
        train(str(tiny_data / "data.yaml"))


def test_train_takes_the_cli_flags_with_their_defaults_in_their_order():
    parser = argparse.ArgumentParser()
    cli_train.add_commands(parser.add_subparsers())
    assert list(api.DEFAULTS.items()) == list(cli_train._DEFAULTS.items())


def test_the_cli_calls_the_library(monkeypatch, capsys, tmp_path):
    seen = {}
    monkeypatch.chdir(tmp_path)

    def fake_train(**kwargs):
        seen.update(kwargs)
        Path("runs/somewhere").mkdir(parents=True)
        for name in ("last.pt", "best.pt"):
            Path("runs/somewhere", name).touch()
        return {"iterations": 3, "seconds": 1.23456, "out": "runs/somewhere"}

    monkeypatch.setattr(yolact.training, "train", fake_train)
    assert main(["train", "--train-ann", "a.json", "--train-images", "imgs", "--iters", "3", "--lr-steps", "0.5",
                 "--ema", "-q"]) == 0
    assert seen == {**api.DEFAULTS, "train_ann": "a.json", "train_images": "imgs", "iters": 3, "lr_steps": "0.5",
                    "ema": 0.9998, "quiet": True}
    out = capsys.readouterr().out.splitlines()
    assert out == ['{"iterations": 3, "seconds": 1.2346}',
                   f"weights: {Path('runs/somewhere') / 'last.pt'}, {Path('runs/somewhere') / 'best.pt'}"]


def test_the_checkpoint_keeps_the_datas_category_ids(tiny_data, tmp_path):
    """#27 item 4: a COCO file with ids (3, 7, 12) trains a model that writes those ids."""
    data = json.loads((tiny_data / "train.json").read_text())
    ids = {c["id"]: 3 + 4 * k + (k > 1) for k, c in enumerate(data["categories"])}
    for c in data["categories"]:
        c["id"] = ids[c["id"]]
    for a in data["annotations"]:
        a["category_id"] = ids[a["category_id"]]
    (tmp_path / "gapped.json").write_text(json.dumps(data))
    result = train(train_ann=str(tmp_path / "gapped.json"), train_images=str(tiny_data / "train"), iters=1,
                   batch_size=2, img_size=64, workers=0, no_augment=True, quiet=True, out=str(tmp_path / "run"))
    ckpt = torch.load(Path(result["out"]) / "last.pt", weights_only=False)
    assert ckpt["config"]["category_ids"] == list(ids.values())
    model = yolact.load(str(Path(result["out"]) / "last.pt"))
    assert model.cfg.label_category_ids() == tuple(ids.values())


def test_weights_demo_trains_with_its_own_config_on_a_synth_folder(tiny_data, tmp_path, monkeypatch, capsys):
    """#27 leftovers: `train --weights demo` took the --config default (yolact_resnet18) instead
    of the checkpoint's and failed where the working folder holds a demo/ folder; `--data` on a
    `data synth` folder was not detected; the BatchNorm note named the batch before its cut."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    result = train(data=str(tiny_data), weights="demo", iters=1, batch_size=8, workers=0, no_augment=True,
                   out=str(tmp_path / "run"))
    ckpt = torch.load(Path(result["out"]) / "last.pt", weights_only=False)
    assert ckpt["config"]["name"] == "yolact_resnet18_slim" and ckpt["config"]["max_size"] == 192
    out = capsys.readouterr().out
    assert "BatchNorm frozen: 4 images per process is under 6" in out  # 4 training images: the batch cut to 4
    assert not (tmp_path / "run" / "data").exists() or not any((tmp_path / "run" / "data").iterdir())


def test_resume_alone_continues_a_run_fine_tuned_from_another_preset(tiny_data, tmp_path, capsys):
    """New-user report: `train --resume last.pt` alone rebuilt the default preset (yolact_resnet18)
    instead of the run's own (the demo's yolact_resnet18_slim) and refused with 'trained with
    another config'. The config now comes from the resumed checkpoint."""
    first = train(data=str(tiny_data), weights="demo", iters=1, batch_size=2, workers=0, no_augment=True,
                  quiet=True, out=str(tmp_path / "run"))
    result = train(resume=str(Path(first["out"]) / "last.pt"), iters=2, quiet=True)
    ckpt = torch.load(Path(result["out"]) / "last.pt", weights_only=False)
    assert ckpt["config"]["name"] == "yolact_resnet18_slim" and ckpt["iteration"] == 2


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    """A one-iteration run trained at batch 2 under the original recipe."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1, batch_size=2,
          img_size=64, workers=0, no_augment=True, quiet=True, out=str(out), backbone_weights="none")
    return out


@pytest.mark.parametrize("flags,expected", [
    (["--recipe", "fast"], "--recipe fast: {ckpt} was trained with --recipe original"),
    # typed with the parser's default value: before, taken for "not given" and the checkpoint's used
    (["--batch-size", "8"], "--batch-size 8: {ckpt} was trained with --batch-size 2"),
    (["--iters", "1"], "{ckpt}: the run is complete (1 iterations trained, this run has 1"),
    ([], "{ckpt}: the run is complete"),
])
def test_resume_refuses_what_it_cannot_honour_in_one_line(finished_run, flags, expected, capsys):
    """New-user report: `train --resume last.pt --recipe fast` went on under the checkpoint's recipe
    and a resumed finished run trained nothing quietly."""
    ckpt = str(finished_run / "last.pt")
    before = (finished_run / "last.pt").stat().st_mtime_ns
    assert main(["train", "--resume", ckpt, *flags]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("yolact: error: " + expected.format(ckpt=ckpt))
    assert (finished_run / "last.pt").stat().st_mtime_ns == before  # nothing rewritten


def test_resume_accepts_the_same_recipe_and_batch_typed_again(finished_run, tmp_path, capsys):
    out = tmp_path / "longer"
    assert main(["train", "--resume", str(finished_run / "last.pt"), "--recipe", "original", "--batch-size", "2",
                 "--iters", "2", "--out", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-2])["iterations"] == 2
    assert torch.load(out / "last.pt", weights_only=False)["iteration"] == 2


def test_a_new_run_into_a_finished_runs_folder_is_refused_or_replaces_it(finished_run, tiny_data, capsys):
    """New-user report: a second `train --out SAME` overwrote last.pt/best.pt without a word and
    appended its records to the first run's metrics.jsonl."""
    kw = dict(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1,
              batch_size=2, img_size=64, workers=0, no_augment=True, quiet=True, out=str(finished_run),
              backbone_weights="none")
    before = (finished_run / "last.pt").stat().st_mtime_ns
    with pytest.raises(YolactError, match=r"holds a training run \(last.pt\); continue it with --resume .*--exist-ok"):
        train(**kw)
    assert (finished_run / "last.pt").stat().st_mtime_ns == before
    assert train(**kw, exist_ok=True)["iterations"] == 1  # --exist-ok: a new run, its records only
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "total" in r] == [1]


def test_amp_says_its_dtype_and_refuses_fp16_on_the_cpu(tiny_data, tmp_path, capsys):
    kw = dict(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1,
              batch_size=2, img_size=96, workers=0, no_augment=True, backbone_weights="none", quiet=True)
    with pytest.raises(YolactError, match="--amp-dtype fp16 is for GPUs"):
        train(**kw, out=str(tmp_path / "fp16"), amp=True, amp_dtype="fp16")
    train(**dict(kw, quiet=False), out=str(tmp_path / "bf16"), amp=True)
    assert "note: mixed precision: bf16 autocast on cpu" in capsys.readouterr().out


def test_amp_refuses_a_1x1_p6(tiny_data, tmp_path):
    """At 64 px P6 is 1x1 and the stride-2 convolution that makes P7 gets NaN weight gradients
    from oneDNN's bf16 kernels on AVX-512 bf16 CPUs (seen 2026-12-04, torch 2.13: 7% of steps
    with AMX, 75% without): refused in one line, before any step."""
    from yolact.training.trainer import stride2_conv_on_one_pixel
    assert [s for s in (32, 33, 64, 65, 96, 128, 550) if stride2_conv_on_one_pixel(s, 2)] == [32, 33, 64]
    assert not stride2_conv_on_one_pixel(64, 1)
    kw = dict(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1,
              batch_size=2, img_size=64, workers=0, no_augment=True, backbone_weights="none", quiet=True)
    with pytest.raises(YolactError, match="--amp at --img-size 64: .*--img-size 96 or more, or without --amp"):
        train(**kw, out=str(tmp_path / "bf16"), amp=True)
    assert not (tmp_path / "bf16" / "last.pt").exists()


def test_boolean_pairs_are_the_train_parsers_no_flags():
    """api._BOOLEAN_PAIRS (the library cannot read the CLI) names exactly the train flags with a
    --no- form, so resume notices say ``--no-amp``, never ``no --amp``."""
    from yolact.cli import build_parser
    from yolact.training import api

    train_parser = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)) \
        .choices["train"]
    paired = {a.dest for a in train_parser._actions if isinstance(a, argparse.BooleanOptionalAction)}
    assert paired == set(api._BOOLEAN_PAIRS)
    assert api._as_flag("amp", False) == "--no-amp" and api._as_flag("freeze_bn", True) == "--freeze-bn"


def test_quiet_prints_the_summary_only(tiny_data, tmp_path, capsys):
    """--quiet: "nothing but errors and the final summary" (new-user report: the recipe's line,
    BatchNorm, the notes and each validation were printed all the same)."""
    assert main(["train", "--train-ann", str(tiny_data / "train.json"), "--train-images", str(tiny_data / "train"),
                 "--val-ann", str(tiny_data / "val.json"), "--val-images", str(tiny_data / "val"), "--iters", "2",
                 "--batch-size", "2", "--img-size", "64", "--workers", "0", "--recipe", "fast",
                 "--backbone-weights", "none", "--out", str(tmp_path / "q"), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and json.loads(out[0])["iterations"] == 2 and out[1].startswith("weights: ")
    history = [json.loads(line) for line in (tmp_path / "q" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_mask_ap" in r for r in history)  # validated all the same


def test_fast_says_when_its_warm_up_is_cut(tiny_data, tmp_path, capsys):
    """fast's 3-epoch warm-up stays within 20% of the run, and a line says so (as original's)."""
    train(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=5, batch_size=2,
          img_size=96, workers=0, recipe="fast", amp=False, backbone_weights="none", out=str(tmp_path / "w"))
    assert "note: warm-up shortened from 6 iterations (3 epochs) to 1: at most 20% of this 5-iteration run " \
           "(--warmup-iters sets it)" in capsys.readouterr().out


@pytest.mark.parametrize("text,expected", [("", "expected comma-separated fractions"),
                                           ("0.5,,0.7", "expected comma-separated fractions"),
                                           ("0.5,0.5", "fractions must increase"), ("0.9,0.5", "fractions must increase"),
                                           ("1.5", r"must lie in \(0, 1\)")])
def test_lr_steps_are_increasing_fractions(text, expected):
    """New-user report: "" trained without any step, "0.5,0.5" divided the lr by 100 at once."""
    with pytest.raises(YolactError, match=expected):
        api._fractions(text)
    assert api._fractions("0.7,0.9") == [0.7, 0.9] and api._fractions(None) is None


def test_lr_steps_need_the_step_schedule(tiny_data, tmp_path):
    kw = dict(train_ann=str(tiny_data / "train.json"), train_images=str(tiny_data / "train"), iters=1, batch_size=2,
              img_size=64, workers=0, backbone_weights="none", quiet=True, lr_steps="0.5")
    with pytest.raises(YolactError, match=r"^--lr-steps 0.5: the steps of the step schedule; this run's schedule is "
                                          r"linear \(--recipe fast's\): leave --lr-steps out, or add --schedule step$"):
        train(**kw, recipe="fast", out=str(tmp_path / "a"))
    with pytest.raises(YolactError, match=r"this run's schedule is cosine: "):
        train(**kw, schedule="cosine", out=str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(YolactError, match=r"^--threads 0: must be at least 1$"):
        train(**dict(kw, lr_steps=None), threads=0, out=str(tmp_path / "c"))


def test_resume_names_what_the_run_took_and_is_silent_when_unchanged(finished_run, tmp_path, capsys):
    """--optimizer sgd on a run that took sgd as its default: no notice (before: "replaces the
    checkpoint's default"); a shorter length than trained is not called complete."""
    ckpt = str(finished_run / "last.pt")
    out = tmp_path / "same"
    assert main(["train", "--resume", ckpt, "--iters", "2", "--optimizer", "sgd", "--config", "yolact_resnet18",
                 "--out", str(out)]) == 0
    assert "replaces" not in capsys.readouterr().out.replace("--iters 2 replaces the checkpoint's --iters 1", "")
    assert main(["train", "--resume", str(out / "last.pt"), "--iters", "1", "--out", str(tmp_path / "shorter")]) == 2
    err = capsys.readouterr().err
    assert "has trained 2 iterations already, more than this run's 1: give a longer --iters" in err


def test_resume_refusal_wording_of_switches(finished_run, capsys):
    """New-user report: "was trained with without --no-expand"."""
    ckpt = str(finished_run / "last.pt")
    assert main(["train", "--resume", ckpt, "--iters", "3", "--no-expand"]) == 2
    assert f"error: --no-expand: {ckpt} was trained without --no-expand; a resumed run keeps it" in capsys.readouterr().err


@pytest.mark.parametrize("flags,expected", [
    (["--weights", "demo"], "--weights demo: --resume continues from {ckpt}'s own weights; leave --weights out"),
    (["--backbone-weights", "none"], "--backbone-weights none: --resume continues from {ckpt}'s own weights"),
    (["--optimizer", "adamw"], "--optimizer adamw: {ckpt} was trained with --optimizer sgd; a resumed run keeps it "
                               "(leave --optimizer out, or start a new run from the file: --weights {ckpt} "
                               "--optimizer adamw)"),
    (["--ema"], "--ema 0.9998: {ckpt} was trained without an EMA; a resumed run keeps it"),
    (["--config", "yolact_resnet50"], "--config yolact_resnet50: {ckpt} was trained with --config yolact_resnet18;"),
])
def test_resume_refuses_other_weights_optimizer_ema_or_config_in_one_line(finished_run, flags, expected, capsys):
    """New-user report: --weights with --resume printed "loaded" and was then replaced by the
    checkpoint's; --optimizer/--ema/--config first printed "replaces the checkpoint's default",
    then failed on a long line."""
    ckpt = str(finished_run / "last.pt")
    assert main(["train", "--resume", ckpt, "--iters", "3", *flags]) == 2
    captured = capsys.readouterr()
    assert "replaces" not in captured.out and "loaded" not in captured.out
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("yolact: error: " + expected.format(ckpt=ckpt)), errors


def test_resume_from_best_pt_is_refused(finished_run, tmp_path, capsys):
    """best.pt holds the evaluated weights (fast: the EMA's), maybe from an earlier iteration:
    resuming from it went on from there without a word."""
    obj = torch.load(finished_run / "best.pt", weights_only=True)
    assert obj["saved_as"] == "best" and torch.load(finished_run / "last.pt", weights_only=True)["saved_as"] == "last"
    with pytest.raises(YolactError, match=r"best.pt: holds the weights chosen by validation \(best.pt\), not the "
                                          r"training state to go on from: resume from .*last.pt, or start a new run "
                                          r"from this file with --weights .*best.pt$"):
        train(resume=str(finished_run / "best.pt"), iters=3, quiet=True)
    assert main(["train", "--resume", str(finished_run / "best.pt"), "--iters", "3"]) == 2
    assert capsys.readouterr().out == ""  # refused before any notice
    # a file from before "saved_as" is told by its name
    del obj["saved_as"]
    (tmp_path / "old").mkdir()
    torch.save(obj, tmp_path / "old" / "best.pt")
    with pytest.raises(YolactError, match="holds the weights chosen by validation"):
        train(resume=str(tmp_path / "old" / "best.pt"), iters=3, quiet=True)


def test_resume_into_another_out_brings_best_pt_and_keeps_other_runs(finished_run, tiny_data, tmp_path, capsys):
    """New-user report: a resume with --out printed a best.pt that the new folder did not have;
    a failed one left a copied best.pt behind, and its notices came before the refusal."""
    failed = tmp_path / "failed"
    assert main(["train", "--resume", str(finished_run / "last.pt"), "--iters", "2", "--out", str(failed),
                 "--train-ann", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().out == "" and not failed.exists()
    out = tmp_path / "moved"
    assert main(["train", "--resume", str(finished_run / "last.pt"), "--iters", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"--resume: writing to {out}, not {finished_run} (best.pt and metrics.jsonl so far copied)" in printed
    before = (finished_run / "metrics.jsonl").read_text()
    assert before and (out / "metrics.jsonl").read_text().startswith(before)  # the whole history
    assert f"weights: {out / 'last.pt'}, {out / 'best.pt'}" in printed
    assert (out / "best.pt").is_file() and torch.load(out / "last.pt", weights_only=True)["iteration"] == 2
    # a folder that holds another run is not written over by a resume either
    with pytest.raises(YolactError, match=r"--out .*moved: holds a training run \(last.pt\)"):
        train(resume=str(finished_run / "last.pt"), iters=3, out=str(out), quiet=True)
