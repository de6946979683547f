import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from yolact.config import get_config
from yolact.data.coco import CocoDataset
from yolact.data.synth import generate
from yolact.training import Trainer, TrainOptions, lr_at
from yolact.training.weights import backbone_key, init_weights, load_backbone_weights, load_finetune_weights
from yolact.errors import YolactError
import yolact


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    generate(root, 8, 4, size=80, seed=1, max_objects=3)
    return root


def make_trainer(data, out, iters=4, batch=4, augment=False, **kw):
    ds = CocoDataset(data / "train.json", data / "train", train=True, verbose=False)
    cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=64, fpn_channels=32)
    if not augment:
        cfg = cfg.replace(augment_photometric=False, augment_expand=False, augment_crop=False, augment_mirror=False)
    ds.cfg = cfg
    opts = TrainOptions(out=str(out), iters=iters, batch_size=batch, progress=False, log_interval=1, **kw)
    return Trainer(cfg, ds, opts)


def test_lr_schedule():
    assert lr_at(0, 1e-3, 1e-4, 10, [100, 200], 0.1) == pytest.approx(1e-4)
    assert lr_at(5, 1e-3, 1e-4, 10, [100, 200], 0.1) == pytest.approx(5.5e-4)
    assert lr_at(50, 1e-3, 1e-4, 10, [100, 200], 0.1) == pytest.approx(1e-3)
    assert lr_at(150, 1e-3, 1e-4, 10, [100, 200], 0.1) == pytest.approx(1e-4)
    assert lr_at(250, 1e-3, 1e-4, 10, [100, 200], 0.1) == pytest.approx(1e-5)
    # cosine: the same warm-up, then half a cosine from the base lr to 0 at the end
    assert lr_at(5, 1e-3, 1e-4, 10, [], 0.1, "cosine", 110) == pytest.approx(5.5e-4)
    assert lr_at(60, 1e-3, 1e-4, 10, [], 0.1, "cosine", 110) == pytest.approx(5e-4)
    assert lr_at(110, 1e-3, 1e-4, 10, [], 0.1, "cosine", 110) == pytest.approx(0, abs=1e-12)


def test_schedule_defaults_follow_the_original(data, tmp_path):
    ds = CocoDataset(data / "train.json", data / "train", train=True, verbose=False)
    cfg = get_config("yolact_base", class_names=ds.class_names).replace(max_size=64)
    ds.cfg = cfg
    # no --iters: the preset's 800k iterations and steps, autoscaled by batch / 8 like the original
    tr = Trainer(cfg, ds, TrainOptions(out=str(tmp_path), batch_size=4, progress=False))
    assert tr.max_iter == 1_600_000 and tr.lr_steps == [560_000, 1_200_000, 1_400_000, 1_500_000]
    assert tr.base_lr == pytest.approx(5e-4) and tr.warmup == 500
    # warm-up starts at the absolute 1e-4 (not scaled with the batch), reaching the base at 500
    assert lr_at(0, tr.base_lr, cfg.warmup_init, tr.warmup, tr.lr_steps, 0.1) == pytest.approx(1e-4)
    # with --iters, the preset's steps at the same fractions
    tr = Trainer(cfg, ds, TrainOptions(out=str(tmp_path), batch_size=8, iters=8000, progress=False))
    assert tr.lr_steps == [2800, 6000, 7000, 7500] and tr.base_lr == pytest.approx(1e-3)


@pytest.mark.parametrize("batch,frozen", [(2, True), (5, True), (6, False)])
def test_batchnorm_frozen_below_six_images_per_process(data, tmp_path, batch, frozen):
    tr = make_trainer(data, tmp_path, iters=1, batch=batch)
    assert tr.freeze_bn == frozen
    bn = tr.model.backbone.bn1
    before = bn.running_mean.clone()
    tr.train()
    assert (not bn.weight.requires_grad) == frozen
    assert torch.equal(bn.running_mean, before) == frozen
    assert make_trainer(data, tmp_path / "o", iters=1, batch=2, freeze_bn=False).freeze_bn is False


def test_ema_is_evaluated_saved_and_resumed(data, tmp_path):
    tr = make_trainer(data, tmp_path / "a", iters=4, batch=2, ema_decay=0.9, lr=1e-2, warmup_iters=0)
    tr.train()
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=True)["model"]
    ema = tr.ema.module.state_dict()
    raw = tr.model.state_dict()
    key = "prediction_layers.0.conf_layer.weight"
    assert torch.equal(best[key], ema[key]) and not torch.equal(ema[key], raw[key])
    # resuming restores the average too: two more iterations match an uninterrupted 6-iteration run
    full = make_trainer(data, tmp_path / "f", iters=6, batch=2, ema_decay=0.9, lr=1e-2, warmup_iters=0)
    full.train()
    resumed = make_trainer(data, tmp_path / "r", iters=6, batch=2, ema_decay=0.9, lr=1e-2, warmup_iters=0)
    resumed.resume(str(tmp_path / "a" / "last.pt"))
    resumed.train()
    assert torch.allclose(full.ema.module.state_dict()[key], resumed.ema.module.state_dict()[key], atol=1e-6)
    make_trainer(data, tmp_path / "plain", iters=1, batch=2).train()
    with pytest.raises(YolactError, match="without --ema"):
        make_trainer(data, tmp_path / "x", iters=6, batch=2, ema_decay=0.9).resume(str(tmp_path / "plain" / "last.pt"))
    with pytest.raises(YolactError, match="with --ema"):
        make_trainer(data, tmp_path / "y", iters=6, batch=2).resume(str(tmp_path / "f" / "last.pt"))


def test_patience_stops_when_val_ap_stalls(data, tmp_path):
    ds = CocoDataset(data / "train.json", data / "train", train=True, verbose=False)
    cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=64, fpn_channels=32)
    ds.cfg = cfg
    opts = TrainOptions(out=str(tmp_path), iters=12, batch_size=2, progress=False, val_interval=2, patience=1,
                        lr=1e-6, warmup_iters=0)
    tr = Trainer(cfg, ds, opts, val_ann=str(data / "val.json"), val_images=str(data / "val"))
    summary = tr.train()
    # a near-zero lr: the AP of the second evaluation is no better than the first -> stop there
    assert summary["stopped_early"] and summary["iterations"] == 4
    assert [h["iteration"] for h in tr.history if "val_mask_ap" in h] == [2, 4]


def test_gradient_clipping_bounds_the_update(data, tmp_path):
    free = make_trainer(data, tmp_path / "a", iters=1, batch=2, lr=1e-2, warmup_iters=0, freeze_bn=True)
    clipped = make_trainer(data, tmp_path / "b", iters=1, batch=2, lr=1e-2, warmup_iters=0, freeze_bn=True,
                           clip_grad_norm=1e-3)
    key = "prediction_layers.0.bbox_layer.weight"
    start = clipped.model.state_dict()[key].clone()
    assert torch.equal(start, free.model.state_dict()[key])  # same seed, same init
    free.train()
    clipped.train()
    norm = clipped.history[0]["grad_norm"]
    assert norm > 1e-3  # the logged norm is the one before clipping
    d_free = (free.model.state_dict()[key] - start).norm()
    d_clip = (clipped.model.state_dict()[key] - start).norm()
    assert d_clip < d_free * 1e-2


def test_training_loss_drops(data, tmp_path):
    tr = make_trainer(data, tmp_path, iters=30, batch=4, lr=3e-3, warmup_iters=0, lr_steps=())
    summary = tr.train()
    hist = [h["total"] for h in tr.history if "total" in h]
    assert summary["iterations"] == 30 and len(hist) == 30
    assert sum(hist[-5:]) / 5 < 0.7 * sum(hist[:3]) / 3
    for name in ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "training.png"):
        assert (tmp_path / name).exists(), name
    model = yolact.load(tmp_path / "last.pt")  # self-describing
    assert model.class_names == tr.cfg.class_names


def test_resume_matches_uninterrupted(data, tmp_path):
    torch.set_num_threads(1)
    try:
        full = make_trainer(data, tmp_path / "full", iters=6, batch=2, augment=True)
        full.train()
        # the same run, interrupted (as by SIGINT) after 3 iterations
        half = make_trainer(data, tmp_path / "half", iters=6, batch=2, augment=True)
        step = half._step

        def step_then_signal(images, targets):
            out = step(images, targets)
            if half.iteration == 2:  # the trainer increments after _step returns
                half._handle_signal(2, None)
            return out

        half._step = step_then_signal
        with pytest.raises(KeyboardInterrupt):
            half.train()
        resumed = make_trainer(data, tmp_path / "resumed", iters=6, batch=2, augment=True)
        resumed.resume(str(tmp_path / "half" / "last.pt"))
        assert resumed.iteration == 3
        resumed.train()
    finally:
        torch.set_num_threads(torch.get_num_threads())
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_other_config(data, tmp_path):
    tr = make_trainer(data, tmp_path, iters=1)
    tr.train()
    other = make_trainer(data, tmp_path / "o", iters=1)
    object.__setattr__(other, "cfg", other.cfg.replace(fpn_channels=16))
    with pytest.raises(YolactError, match="another config"):
        other.resume(str(tmp_path / "last.pt"))


def test_adamw_trains_and_resume_checks_optimizer(data, tmp_path):
    tr = make_trainer(data, tmp_path, iters=12, batch=4, lr=2e-3, warmup_iters=0, lr_steps=(), optimizer="adamw")
    tr.train()
    assert isinstance(tr.optimizer, torch.optim.AdamW)
    hist = [h["total"] for h in tr.history if "total" in h]
    assert sum(hist[-3:]) / 3 < sum(hist[:3]) / 3
    sgd = make_trainer(data, tmp_path / "sgd", iters=12)
    with pytest.raises(YolactError, match="--optimizer adamw"):
        sgd.resume(str(tmp_path / "last.pt"))
    with pytest.raises(YolactError, match="unknown optimizer"):
        make_trainer(data, tmp_path / "x", optimizer="lbfgs")


def test_nan_guard_stops_with_message(data, tmp_path):
    tr = make_trainer(data, tmp_path, iters=5, max_bad_steps=2)
    with torch.no_grad():
        tr.model.prediction_layers[0].bbox_layer.bias.fill_(float("nan"))
    with pytest.raises(YolactError, match="diverged"):
        tr.train()
    assert tr.skipped_steps == 2


def test_finetune_reinitialises_class_layers(tmp_path):
    coco = yolact.build("yolact_resnet50")
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(coco.state_dict(), path)
    model = yolact.build(get_config("yolact_resnet50", class_names=["x", "y", "z"]))
    rep = load_finetune_weights(model, str(path))
    assert sorted(rep["reinitialised"]) == sorted([
        "prediction_layers.0.conf_layer.weight", "prediction_layers.0.conf_layer.bias",
        "semantic_seg_conv.weight", "semantic_seg_conv.bias"])
    assert torch.equal(model.state_dict()["fpn.lat_layers.0.weight"], coco.state_dict()["fpn.lat_layers.0.weight"])


def test_backbone_weights_torchvision_names(tmp_path):
    model = yolact.build("yolact_resnet18")
    tv = {"conv1.weight": torch.randn(64, 3, 7, 7), "layer1.0.conv1.weight": torch.randn(64, 64, 3, 3),
          "fc.weight": torch.randn(1000, 512)}
    p = tmp_path / "resnet18.pth"
    torch.save(tv, p)
    rep = load_backbone_weights(model, str(p))
    assert rep["loaded"] == ["conv1.weight", "layers.0.0.conv1.weight"] and rep["ignored"] == ["fc.weight"]
    assert torch.equal(model.backbone.layers[0][0].conv1.weight, tv["layer1.0.conv1.weight"])
    assert backbone_key("module.layer4.2.bn3.weight") == "layers.3.2.bn3.weight"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, data, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        tr = make_trainer(data, out, iters=1, batch=2, freeze_bn=True)
        tr.train()
        torch.save({k: v.clone() for k, v in tr.model.state_dict().items()}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_gloo_match_single_process(data, tmp_path):
    port = _free_port()
    mp.spawn(_ddp_worker, args=(2, port, data, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    single = make_trainer(data, tmp_path / "single", iters=1, batch=4, freeze_bn=True)
    single.train()
    s = single.model.state_dict()
    for k in r0:
        assert torch.allclose(r0[k], s[k], atol=1e-5, rtol=1e-4), k


def test_init_weights_like_the_original():
    import math
    torch.manual_seed(0)
    model = yolact.build(get_config("yolact_plus_resnet50", class_names=["a", "b"]))
    backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    init_weights(model)
    in_backbone = set(model.backbone.modules())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m not in in_backbone]
    assert len(convs) > 15  # FPN, protonet, head, semantic conv, mask-IoU net
    for m in convs:  # Xavier-uniform bound sqrt(6 / (fan_in + fan_out)), zero bias
        fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        assert m.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-7
        assert m.bias is None or not m.bias.any()
    for k, v in model.backbone.state_dict().items():  # the backbone is left alone...
        assert torch.equal(v, backbone[k]), k
    offsets = [m.conv_offset_mask for m in model.backbone.modules() if hasattr(m, "conv_offset_mask")]
    assert offsets and all(not o.weight.any() and not o.bias.any() for o in offsets)  # ...DCN offsets start at 0


def test_a_set_smaller_than_the_batch_trains_with_the_batch_cut(tmp_path):
    # Issue #26 item 5: 3 images and --batch-size 8 never filled a batch (the loader drops
    # incomplete ones), so training never took a step and never ended.
    root = tmp_path / "d"
    generate(root, 3, 1, size=80, seed=2, max_objects=2)
    tr = make_trainer(root, tmp_path / "out", iters=2, batch=8)
    assert tr.opts.batch_size == 3
    assert any("--batch-size 8 cut to 3" in n and "the learning rate scales with it" in n for n in tr.notes)
    summary = tr.train()
    assert summary["iterations"] == 2
    given = make_trainer(root, tmp_path / "lr", iters=2, batch=8, lr=0.01)  # --lr is not scaled: the note says so
    assert any("cut to 3" in n and "--lr 0.01 is used as given" in n for n in given.notes) and given.base_lr == 0.01


def test_fewer_images_than_processes_stop_with_one_line(tmp_path, monkeypatch):
    import yolact.training.trainer as trainer_module

    root = tmp_path / "d"
    generate(root, 1, 1, size=80, seed=2, max_objects=2)
    monkeypatch.setattr(trainer_module, "dist_info", lambda: (0, 2))
    with pytest.raises(YolactError, match="1 training image\\(s\\) for 2 processes"):
        make_trainer(root, tmp_path / "out", iters=2, batch=8)


def test_a_run_of_mostly_skipped_steps_does_not_end_quietly(data, tmp_path):
    # Every step non-finite, but never max_bad_steps in a row: the run used to end as a success.
    tr = make_trainer(data, tmp_path, iters=3, max_bad_steps=100)
    with torch.no_grad():
        tr.model.prediction_layers[0].bbox_layer.bias.fill_(float("nan"))
    with pytest.raises(YolactError, match="3 of 3 steps were skipped"):
        tr.train()
    assert (tmp_path / "last.pt").exists()


def test_sigterm_to_the_process_group_saves_last_pt_with_loader_workers(data, tmp_path):
    """New-user report: `timeout` (like Slurm's scancel, or Ctrl-C in a terminal) signals the
    whole process group. The loader's workers died of SIGTERM, and the next batch raised
    "DataLoader worker ... is killed by signal" with a traceback, before last.pt was saved.
    Workers now leave the stop signals to the trainer."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(yolact.__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "yolact", "train", "--train-ann", str(data / "train.json"),
                          "--train-images", str(data / "train"), "--config", "yolact_resnet18", "--img-size", "64",
                          "--backbone-weights", "none", "--epochs", "1000", "--batch-size", "2", "--workers", "2",
                          "--threads", "1", "--quiet", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None:  # wait for the first logged steps
            if (out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert p.poll() is None, p.stderr.read()
        os.killpg(p.pid, signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert "Traceback" not in stderr and "killed by signal" not in stderr, stderr
    assert "SIGTERM: saved" in stdout and (out / "last.pt").exists()
    assert p.returncode == 143 and "interrupted" in stderr  # 128 + SIGTERM, as a process killed by it
