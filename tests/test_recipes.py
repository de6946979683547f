"""Training recipes (yolact/training/recipes.py): selection, checkpoint metadata, the fast
recipe's EMA, schedule and loss, and exact resume under it."""
import json
import math
from dataclasses import FrozenInstanceError, replace

import pytest
import torch

from yolact.cli import main
from yolact.cli.train import RECIPE_HELP
from yolact.config import get_config
from yolact.data.coco import CocoDataset
from yolact.data.mosaic import ModernAugment
from yolact.data.synth import generate
from yolact.errors import YolactError
from yolact.loss import LossOptions, center_prior, focal_conf_loss, match
from yolact.ops.boxes import box_iou, point_form
from yolact.training import Trainer, TrainOptions, build_schedule, lr_at, train
from yolact.training.recipes import FAST, ORIGINAL, RECIPES, apply_recipe, get_recipe
from yolact.training.trainer import build_ema, ema_decay_at


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_data")
    generate(root, 8, 4, size=80, seed=1, max_objects=3)
    return root


def small_cfg(ds):
    return get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=64, fpn_channels=32)


def make_trainer(data, out, recipe, iters=6, batch=2, val=False, **kw):
    ds = CocoDataset(data / "train.json", data / "train", train=True, verbose=False)
    cfg = small_cfg(ds)
    ds.cfg = cfg
    opts = TrainOptions(out=str(out), iters=iters, batch_size=batch, progress=False, log_interval=1, **kw)
    opts = apply_recipe(opts, recipe, {k: k in kw for k in ("optimizer", "lr", "schedule", "ema_decay")})
    split = (str(data / "val.json"), str(data / "val")) if val else (None, None)
    return Trainer(cfg, ds, opts, *split, recipe=recipe)


def test_recipes_table_and_lookup():
    assert list(RECIPES) == ["original", "fast"]
    assert RECIPE_HELP == {name: r.description for name, r in RECIPES.items()}  # one text in --help and code
    assert get_recipe(None) is ORIGINAL and get_recipe("fast") is FAST
    assert get_recipe(FAST.to_dict()) == FAST
    # a checkpoint written before a field existed resumes with that field's old behaviour
    older = {k: v for k, v in FAST.to_dict().items() if k != "mask_target"}
    assert get_recipe(older).mask_target == "binary" and FAST.mask_target == "soft"
    with pytest.raises(YolactError, match="unknown recipe 'slow'"):
        get_recipe("slow")
    with pytest.raises(FrozenInstanceError):
        FAST.mosaic = 0.0
    # the original recipe changes nothing of the options
    opts = TrainOptions()
    assert apply_recipe(opts, ORIGINAL, {}) == opts


def test_help_lists_recipes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--recipe {original,fast}" in out and "mosaic" in out


def test_user_flags_override_the_recipe():
    opts = apply_recipe(TrainOptions(batch_size=16), FAST, {})
    assert (opts.optimizer, opts.schedule, opts.ema_decay) == ("adamw", "linear", 0.9999)
    assert opts.lr is None  # the recipe's lr is scaled by the trainer, to the batch each step takes
    given = apply_recipe(TrainOptions(optimizer="sgd", lr=1e-3, schedule="cosine", ema_decay=0.99), FAST,
                         {"optimizer": True, "lr": True, "schedule": True, "ema_decay": True})
    assert (given.optimizer, given.lr, given.schedule, given.ema_decay) == ("sgd", 1e-3, "cosine", 0.99)


def test_recipe_lr_scales_with_the_batch_each_step_takes(data, tmp_path):
    """The recipe's lr is for a global batch of 8 (the original's autoscale): scaled by the
    batch after it is cut to a small set, and by the processes; ``--lr`` is taken as given."""
    cfg = get_config("yolact_resnet18_slim")
    for batch, world, want in ((8, 1, 2e-3), (16, 1, 4e-3), (4, 1, 1e-3), (8, 2, 4e-3)):
        sched, _ = build_schedule(cfg, TrainOptions(batch_size=batch, iters=10), 5, world, recipe_lr=FAST.lr)
        assert sched.base_lr == pytest.approx(want)
    assert build_schedule(cfg, TrainOptions(batch_size=16, iters=10), 5, 1)[0].base_lr == pytest.approx(2e-3)
    assert build_schedule(cfg, TrainOptions(batch_size=16, lr=5e-3, iters=10), 5, 1, FAST.lr)[0].base_lr == 5e-3
    # 8 training images and --batch-size 16: the batch is cut, and the lr with it (was 4e-3)
    tr = make_trainer(data, tmp_path / "cut", FAST, iters=2, batch=16)
    assert tr.opts.batch_size <= 8 and tr.base_lr == pytest.approx(2e-3 * tr.opts.batch_size / 8)
    assert make_trainer(data, tmp_path / "orig", ORIGINAL, iters=2, batch=16).base_lr == pytest.approx(1e-3)


def test_ema_ramp_values():
    assert ema_decay_at(0.9999, 2000, 0) == 0
    assert ema_decay_at(0.9999, 2000, 2000) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert ema_decay_at(0.9999, 2000, 10 ** 6) == pytest.approx(0.9999)
    # the averaged model follows the formula: first update copies, then d_n * ema + (1 - d_n) * w
    net = torch.nn.Linear(1, 1, bias=False)
    ema = build_ema(net, 0.9, tau=2.0)
    expected = None
    for n, value in enumerate([1.0, 3.0, -2.0, 5.0]):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update_parameters(net)
        expected = value if n == 0 else expected * ema_decay_at(0.9, 2.0, n) + value * (1 - ema_decay_at(0.9, 2.0, n))
        assert float(ema.module.weight.detach()) == pytest.approx(expected)


def test_linear_schedule_values():
    # warm-up 10 iterations from 1e-4 to 1e-3, then linear to 1% at 110
    assert lr_at(5, 1e-3, 1e-4, 10, [], 0.1, "linear", 110) == pytest.approx(5.5e-4)
    assert lr_at(10, 1e-3, 1e-4, 10, [], 0.1, "linear", 110) == pytest.approx(1e-3)
    assert lr_at(60, 1e-3, 1e-4, 10, [], 0.1, "linear", 110) == pytest.approx(1e-3 * (1 - 0.99 * 0.5))
    assert lr_at(110, 1e-3, 1e-4, 10, [], 0.1, "linear", 110) == pytest.approx(1e-5)


def test_fast_trainer_wiring(data, tmp_path):
    tr = make_trainer(data, tmp_path, FAST, iters=40, batch=2)
    bpe = 4  # 8 images, batch 2
    assert tr.opts.optimizer == "adamw" and isinstance(tr.optimizer, torch.optim.AdamW)
    assert tr.warmup == min(3 * bpe, int(0.2 * 40)) and tr.opts.val_interval == 2 * bpe
    assert tr.schedule.kind == "linear" and tr.ema is not None
    assert isinstance(tr.train_set.augment, ModernAugment)
    assert tr.train_set.augment.mosaic_until == 10 - 2  # 10 epochs, the last 15% (2) without mosaic
    assert tr.model.criterion.options.conf_loss == "ohem" and tr.model.criterion.options.center_topk == 4
    assert tr.model.criterion.options.mask_target == "soft"
    focal = make_trainer(data, tmp_path / "focal", replace(FAST, conf_loss="focal"), iters=2)
    assert focal.model.criterion.options.conf_loss == "focal"
    plain = make_trainer(data, tmp_path / "o", ORIGINAL)
    assert plain.train_set.augment is None and plain.model.criterion.options == LossOptions()
    assert plain.ema is None and plain.opts.optimizer == "sgd"


def test_focal_loss_matches_its_formula():
    torch.manual_seed(0)
    conf = torch.randn(2, 5, 4)
    conf_t = torch.tensor([[0, 1, -1, 3, 0], [2, 0, 0, -1, 1]])
    p = conf.softmax(-1)
    expected = 0.0
    for b in range(2):
        for i in range(5):
            t = int(conf_t[b, i])
            if t >= 0:
                expected += -(1 - p[b, i, t]) ** 2 * math.log(p[b, i, t])
    assert float(focal_conf_loss(conf, conf_t, 2.0)) == pytest.approx(float(expected), rel=1e-5)


def test_center_prior_adds_positives_inside_the_box():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.55, 0.5, 0.3, 0.3], [0.9, 0.9, 0.2, 0.2],
                           [0.45, 0.45, 0.6, 0.6]])
    truths = torch.tensor([[0.3, 0.3, 0.7, 0.7]])
    labels = torch.tensor([2])
    plain = match(truths, labels, priors, 0.5, 0.4)
    # IoUs with the object: 0.25, 0.5625, 0, 0.444 -> background, positive, background, ignored
    assert plain.conf_t.tolist() == [0, 3, 0, -1]
    iou = box_iou(truths, point_form(priors))
    assert center_prior(iou, truths, priors, 2).tolist() == [[False, True, False, True]]
    # the k best-overlapping priors whose centres lie in the box become positives (prior 2's
    # centre lies outside)
    assert match(truths, labels, priors, 0.5, 0.4, center_topk=2).conf_t.tolist() == [0, 3, 0, 3]
    assert match(truths, labels, priors, 0.5, 0.4, center_topk=3).conf_t.tolist() == [3, 3, 0, 3]


def test_center_prior_positive_belongs_to_the_object_that_picked_it():
    """Prior 0's centre lies in A only, and A picks it (IoU 0.2); it overlaps B more (0.3, below
    the thresholds, centre outside B). It trains on A, as ATSS assigns, not on B."""
    priors = torch.tensor([[0.3, 0.5, 0.2, 0.2], [0.425, 0.5, 0.35, 0.4], [0.195, 0.5, 0.19, 0.2]])
    truths = torch.tensor([[0.25, 0.3, 0.6, 0.7], [0.1, 0.4, 0.29, 0.6]])  # A, B: priors 1 and 2 are their boxes
    labels = torch.tensor([0, 1])
    iou = box_iou(truths, point_form(priors))
    assert iou[:, 0].tolist() == pytest.approx([0.2, 0.3], abs=1e-4)
    assert match(truths, labels, priors, 0.5, 0.4).conf_t.tolist() == [0, 1, 2]
    m = match(truths, labels, priors, 0.5, 0.4, center_topk=2)
    assert m.conf_t.tolist() == [1, 1, 2] and m.idx_t.tolist() == [0, 0, 1]
    assert torch.equal(m.boxes_t[0], truths[0])


def test_checkpoint_holds_the_recipe_and_resume_checks_it(data, tmp_path):
    tr = make_trainer(data, tmp_path / "f", FAST, iters=2)
    tr.train()
    obj = torch.load(tmp_path / "f" / "last.pt", weights_only=True)
    assert json.loads(obj["recipe"]) == FAST.to_dict()
    with pytest.raises(YolactError, match="--recipe fast"):
        make_trainer(data, tmp_path / "o", ORIGINAL, iters=4).resume(str(tmp_path / "f" / "last.pt"))
    other = replace(FAST, mosaic=0.0)
    with pytest.raises(YolactError, match=r"another form of recipe fast: mosaic 1.0 \(this run: 0.0\); leave the "
                                          r"recipe out to resume under the file's, or start a new run from the file"):
        make_trainer(data, tmp_path / "x", other, iters=4).resume(str(tmp_path / "f" / "last.pt"))


def test_fast_writes_its_inference_options_into_the_model_config(data, tmp_path):
    """The trained model's config (checkpoint, evaluation) scores masks by maskness and
    upsamples them bicubically under fast; original keeps the original's; a fast run from
    before the fields existed resumes with the original's."""
    import yolact

    assert (FAST.mask_score, FAST.mask_interpolation) == ("maskness", "bicubic")
    tr = make_trainer(data, tmp_path / "f", FAST, iters=2)
    assert (tr.cfg.mask_score, tr.cfg.mask_interpolation) == ("maskness", "bicubic")
    tr.train()
    obj = torch.load(tmp_path / "f" / "last.pt", weights_only=True)
    assert (obj["config"]["mask_score"], obj["config"]["mask_interpolation"]) == ("maskness", "bicubic")
    assert yolact.load(str(tmp_path / "f" / "last.pt")).cfg.mask_interpolation == "bicubic"
    tr = make_trainer(data, tmp_path / "o", ORIGINAL, iters=2)
    assert (tr.cfg.mask_score, tr.cfg.mask_interpolation) == ("class", "bilinear")

    # a file written before the fields: its recipe and config lack them
    for key in ("mask_score", "mask_interpolation"):
        del obj["config"][key]
    stored = json.loads(obj["recipe"])
    del stored["mask_score"], stored["mask_interpolation"]
    obj["recipe"] = json.dumps(stored)
    torch.save(obj, tmp_path / "old.pt")
    old = get_recipe(stored)
    tr = make_trainer(data, tmp_path / "r", old, iters=4)
    tr.resume(str(tmp_path / "old.pt"))
    assert tr.cfg.mask_score == "class" and tr.iteration == 2
    with pytest.raises(YolactError, match="recipe fast: mask_score 'x': expected one of class, maskness"):
        replace(FAST, mask_score="x")


def test_resume_exact_under_fast(data, tmp_path):
    """Stopped in the first half and resumed, a fast run ends where an unbroken one does: model,
    EMA, optimizer state, the validations (best.pt) and the mosaic cut-off crossed after the stop."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    iters = 14
    try:
        full = make_trainer(data, tmp_path / "full", FAST, iters=iters, val=True)
        full.train()
        half = make_trainer(data, tmp_path / "half", FAST, iters=iters, val=True)
        step = half._step

        def step_then_signal(images, targets):
            out = step(images, targets)
            if half.iteration == 9:  # after the first validation (every 2 epochs: 8 iterations)
                half._handle_signal(2, None)
            return out

        half._step = step_then_signal
        with pytest.raises(KeyboardInterrupt):
            half.train()
        resumed = make_trainer(data, tmp_path / "resumed", FAST, iters=iters, val=True)
        resumed.resume(str(tmp_path / "half" / "last.pt"))
        assert resumed.iteration == 10
        resumed.train()
    finally:
        torch.set_num_threads(threads)
    # the stop fell while mosaic was on, and the resumed part ran past its cut-off
    until, bpe = full.train_set.augment.mosaic_until, full.batches_per_epoch
    assert until is not None and 9 // bpe < until <= (iters - 1) // bpe
    for a, b in ((full.model, resumed.model), (full.ema.module, resumed.ema.module)):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    oa, ob = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert oa["param_groups"] == ob["param_groups"]
    for k in oa["state"]:
        for name in oa["state"][k]:
            assert torch.equal(oa["state"][k][name], ob["state"][k][name]), (k, name)
    vals = [[h for h in t.history if "val_mask_ap" in h] for t in (full, resumed)]
    assert len(vals[0]) >= 2 and vals[0] == vals[1]  # validations before and after the stop
    assert full.best_val is not None and full.best_val == resumed.best_val  # what best.pt holds


def test_fast_refuses_the_original_augmentation_flags_and_takes_ema_0(data, tmp_path):
    common = dict(train_ann=str(data / "train.json"), train_images=str(data / "train"), config="yolact_resnet18_slim",
                  img_size=64, iters=1, batch_size=2, workers=0, backbone_weights="none", quiet=True, recipe="fast")
    with pytest.raises(YolactError, match=r"^--no-expand: applies to the original recipe's augmentation \(SSD\)"):
        train(no_expand=True, out=str(tmp_path / "a"), **common)
    with pytest.raises(YolactError, match=r"^--mask-resize area: applies to the original recipe's"):
        train(mask_resize="area", out=str(tmp_path / "b"), **common)
    assert not (tmp_path / "a").exists()
    for bad in (1.0, 1.5, -1.0):
        with pytest.raises(YolactError, match=rf"^--ema {bad}: expected a decay in \[0, 1\) \(0: no EMA\)$"):
            train(ema=bad, out=str(tmp_path / "e"), **common)
    train(no_expand=True, no_augment=True, ema=0, out=str(tmp_path / "c"), **common)  # nothing ignored silently
    options = json.loads(torch.load(tmp_path / "c" / "last.pt", weights_only=True)["options"])
    assert options["ema_decay"] is None and options["optimizer"] == "adamw"  # --ema 0: no EMA under fast


def test_train_api_with_recipe_writes_it_and_resumes(data, tmp_path):
    out = tmp_path / "run"
    res = train(train_ann=str(data / "train.json"), train_images=str(data / "train"), config="yolact_resnet18_slim",
                img_size=64, iters=2, batch_size=2, workers=0, backbone_weights="none", out=str(out), quiet=True,
                recipe="fast")
    obj = torch.load(out / "last.pt", weights_only=True)
    assert json.loads(obj["recipe"])["name"] == "fast"
    assert json.loads(obj["options"])["optimizer"] == "adamw"
    # resume from the file alone continues under the same recipe
    res = train(resume=str(out / "last.pt"), iters=3, quiet=True)
    assert res["iterations"] == 3
    # A run from before a recipe field existed (here: fast without mask_target, which meant
    # binary mask targets) resumes under the recipe it was trained with, not today's "fast".
    obj = torch.load(out / "last.pt", weights_only=True)
    obj["recipe"] = json.dumps({k: v for k, v in FAST.to_dict().items() if k != "mask_target"})
    torch.save(obj, out / "last.pt")
    # a recipe given again that differs from the file's is refused with the fields, not swapped silently
    with pytest.raises(YolactError, match=r"another form of recipe fast: mosaic 1.0 \(this run: 0.0\), "
                                          r"mask_target binary \(this run: soft\)"):
        train(resume=str(out / "last.pt"), iters=4, quiet=True, recipe=replace(FAST, mosaic=0.0))
    # the package's "fast" given again means the run's recipe
    res = train(resume=str(out / "last.pt"), iters=4, quiet=True, recipe=FAST)
    assert res["iterations"] == 4
    assert json.loads(torch.load(out / "last.pt", weights_only=True)["recipe"])["mask_target"] == "binary"
    # a recipe with a value no loss takes: one line
    with pytest.raises(YolactError, match="recipe fast: mask_dice -1.0: expected 0 or more"):
        make_trainer(data, tmp_path / "bad", replace(FAST, mask_dice=-1.0), iters=2)


def test_fast_fine_tunes_from_the_demo_weights(data, tmp_path):
    from yolact.config import DEMO_WEIGHTS

    res = train(train_ann=str(data / "train.json"), train_images=str(data / "train"), config="yolact_resnet18_slim",
                iters=1, batch_size=2, workers=0, weights=str(DEMO_WEIGHTS), out=str(tmp_path / "ft"), quiet=True,
                recipe="fast")
    assert res["iterations"] == 1


def test_amp_for_follows_the_recipe_and_the_hardware(monkeypatch):
    from yolact.training import recipes

    assert recipes.amp_for(ORIGINAL, "cuda") == (False, "") and ORIGINAL.amp == "off"
    assert FAST.amp == "auto" and recipes.amp_for(FAST, "cuda:1")[0]  # GPUs: Ultralytics' default
    assert recipes.amp_for(FAST, "mps") == (False, "")  # not measured there
    monkeypatch.setattr(recipes, "cpu_has_amx", lambda: True)
    assert recipes.amp_for(FAST, "cpu") == (True, "recipe fast: bf16 autocast, this CPU has AMX (--no-amp: float32)")
    on, why = recipes.amp_for(FAST, "cpu", small_p7=True)  # oneDNN's bf16 gradient of a 1x1 stride-2 conv is wrong
    assert not on and "--img-size 96 or more" in why
    monkeypatch.setattr(recipes, "cpu_has_amx", lambda: False)
    on, why = recipes.amp_for(FAST, "cpu")
    assert not on and why.startswith("recipe fast: float32")
    with pytest.raises(YolactError, match="recipe fast: amp 'always': expected off or auto"):
        replace(FAST, amp="always")
    # a checkpoint's recipe from before the field: float32 unless asked, as it trained
    assert get_recipe({k: v for k, v in FAST.to_dict().items() if k != "amp"}).amp == "off"


def test_cpu_has_amx_answers_a_bool_and_never_raises(monkeypatch):
    from yolact.training import recipes

    assert recipes.cpu_has_amx() in (True, False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: 1 / 0, raising=False)
    assert recipes.cpu_has_amx() is False
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert recipes.cpu_has_amx() is False


@pytest.mark.parametrize("amx", [True, False])
def test_fast_decides_amp_once_and_a_resume_keeps_it(data, tmp_path, monkeypatch, capsys, amx):
    """Neither --amp nor --no-amp: fast turns bf16 autocast on where the CPU has AMX; the decision
    is stored with the run's arguments, so a resume on a machine of the other kind keeps it."""
    from yolact.training import recipes

    monkeypatch.setattr(recipes, "cpu_has_amx", lambda: amx)
    out = tmp_path / "run"
    common = dict(train_ann=str(data / "train.json"), train_images=str(data / "train"), config="yolact_resnet18_slim",
                  img_size=96, batch_size=2, workers=0, backbone_weights="none", quiet=True)
    train(**dict(common, quiet=False), iters=1, out=str(out), recipe="fast")
    # one line says which: the trainer's note when on, the recipe's reason when off
    printed = [line for line in capsys.readouterr().out.splitlines() if "mixed precision" in line or "float32" in line]
    assert printed == (["note: mixed precision: bf16 autocast on cpu (the mask loss in float32; --no-amp: float32)"]
                       if amx else ["recipe fast: float32 (bf16 autocast only on CPUs with AMX, where it is faster)"])
    options = json.loads(torch.load(out / "last.pt", weights_only=True)["options"])
    assert options["amp"] is amx and options["run_args"]["amp"] is amx
    monkeypatch.setattr(recipes, "cpu_has_amx", lambda: not amx)  # the other machine
    train(resume=str(out / "last.pt"), iters=2)
    assert json.loads(torch.load(out / "last.pt", weights_only=True)["options"])["amp"] is amx
    printed = capsys.readouterr().out
    assert "recipe fast:" not in printed and ("note: mixed precision" in printed) == amx  # not decided again
    # --no-amp and the original recipe: float32 whatever the machine
    monkeypatch.setattr(recipes, "cpu_has_amx", lambda: True)
    for name, kw in (("no_amp", dict(recipe="fast", amp=False)), ("original", dict(recipe="original"))):
        train(**common, iters=1, out=str(tmp_path / name), **kw)
        assert json.loads(torch.load(tmp_path / name / "last.pt", weights_only=True)["options"])["amp"] is False


def test_no_amp_with_an_amp_dtype_is_one_error(data, tmp_path, capsys):
    with pytest.raises(YolactError, match=r"^--amp-dtype bf16 turns mixed precision on, --no-amp off"):
        train(train_ann=str(data / "train.json"), train_images=str(data / "train"), out=str(tmp_path / "r"),
              amp=False, amp_dtype="bf16", iters=1)
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--amp, --no-amp" in capsys.readouterr().out


def test_no_amp_on_resume_wins_over_a_stored_amp_dtype(data, tmp_path, capsys):
    """A run stored with --amp-dtype bf16, resumed with --no-amp: float32, with a notice naming the
    flags (not the stored dtype switching it back on silently)."""
    common = dict(train_ann=str(data / "train.json"), train_images=str(data / "train"), config="yolact_resnet18_slim",
                  img_size=96, batch_size=2, workers=0, backbone_weights="none", quiet=True)
    out = tmp_path / "run"
    train(**common, iters=1, out=str(out), amp_dtype="bf16")
    assert json.loads(torch.load(out / "last.pt", weights_only=True)["options"])["amp"] is True
    capsys.readouterr()
    train(resume=str(out / "last.pt"), iters=2, amp=False, given=["resume", "iters", "amp"])
    options = json.loads(torch.load(out / "last.pt", weights_only=True)["options"])
    assert options["amp"] is False and options["amp_dtype"] is None
    assert "--resume: --no-amp replaces the checkpoint's" in capsys.readouterr().out
