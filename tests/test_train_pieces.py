"""The trainer's pieces (issue #17) and training edges (issue #18 items 4, 7, 8): background
images, fine-tuning key rules, the warm-up cap, validation logs, --resume from the file alone."""
import argparse
import csv
import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import yolact
from yolact.config import get_config
from yolact.data.coco import CocoDataset
from yolact.training import EarlyStopping, Trainer, TrainOptions, build_schedule
from yolact.training.log import write_csv
from yolact.training.weights import load_finetune_weights
from yolact.errors import YolactError
from yolact.loss import YolactCriterion
from yolact.model.yolact import HeadOutputs, Yolact
from yolact.ops.boxes import center_size


def _tiny(cfg):
    return cfg.replace(max_size=64, fpn_channels=32)


def _coco_with_background(tmp_path, n=10, empty=(1, 4, 6, 9)):
    """n 48x64 images; those in ``empty`` have no annotation, the others one square object."""
    images, anns = [], []
    for i in range(n):
        img = np.full((48, 64, 3), 90, np.uint8)
        if i not in empty:
            img[10:30, 20:40] = (30, 200, 60)
            anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [20, 10, 20, 20], "iscrowd": 0,
                         "area": 400, "segmentation": [[20, 10, 40, 10, 40, 30, 20, 30]]})
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 48, "width": 64})
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}))
    return path


def _trainer(ann, root, out, **kw):
    ds = CocoDataset(ann, root, train=True, verbose=False, skip_empty=kw.pop("dataset_skip_empty", False))
    cfg = _tiny(get_config("yolact_resnet18", class_names=ds.class_names))
    ds.cfg = cfg
    opts = TrainOptions(out=str(out), progress=False, log_interval=1, **kw)
    return Trainer(cfg, ds, opts)


# ---------------------------------------------------------------------------- background images
def test_background_images_are_trained_and_counted(tmp_path):
    ann = _coco_with_background(tmp_path)
    tr = _trainer(ann, tmp_path, tmp_path / "a", epochs=1, batch_size=2)
    assert len(tr.train_set) == 10 and tr.batches_per_epoch == 5 and tr.max_iter == 5
    assert "4 of 10 training images have no objects" in tr.notes[0]
    # the opt-out, as a trainer option or as the dataset's argument: 6 images, 3 iterations
    for kw in ({"skip_empty": True}, {"dataset_skip_empty": True}):
        skipped = _trainer(ann, tmp_path, tmp_path / "b", epochs=1, batch_size=2, **kw)
        assert skipped.batches_per_epoch == 3 and "4 of 10" in skipped.notes[0] and "left out" in skipped.notes[0]
    # the loader gives every image once per epoch, background ones included, with empty targets
    seen = [t for _, targets in tr._loader(0, 0) for t in targets]
    assert len(seen) == 10 and sum(t["boxes"].shape[0] == 0 for t in seen) == 4


def test_background_image_survives_augmentation(tmp_path):
    ann = _coco_with_background(tmp_path)
    ds = CocoDataset(ann, tmp_path, train=True, verbose=False)
    ds.cfg = _tiny(get_config("yolact_resnet18", class_names=ds.class_names))  # every augmentation on
    bg = [i for i in range(len(ds)) if not ds.has_objects(i)]
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in bg:  # not replaced by another image, not stuck in the crop's retry loop
            image, target = ds[i]
            assert image.shape == (3, 64, 64) and torch.isfinite(image).all()
            assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, 64, 64)


def test_only_background_images_is_an_error(tmp_path):
    ann = _coco_with_background(tmp_path, n=3, empty=(0, 1, 2))
    with pytest.raises(YolactError, match="no training image has objects"):
        _trainer(ann, tmp_path, tmp_path / "o", iters=1, batch_size=2)


def _outputs(batch, priors, classes=2, k=4, proto=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = priors.shape[0]
    return HeadOutputs(loc=torch.randn(batch, p, 4, generator=g), conf=torch.randn(batch, p, classes + 1, generator=g),
                       coef=torch.tanh(torch.randn(batch, p, k, generator=g)),
                       proto=torch.rand(batch, proto, proto, k, generator=g), priors=priors,
                       segm=torch.randn(batch, classes, proto, proto, generator=g))


def _empty_target(size=64):
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
            "masks": torch.zeros(0, size, size), "num_crowds": 0}


def _hardest_negatives_ce(conf, n):
    """Brute force: CE (target background) of the n priors with the largest background loss."""
    bg = torch.logsumexp(conf, -1) - conf[:, 0]
    idx = bg.argsort(descending=True)[:n]
    return F.cross_entropy(conf[idx], torch.zeros(n, dtype=torch.long), reduction="sum")


def test_loss_on_an_all_background_batch():
    cfg = _tiny(get_config("yolact_resnet18", class_names=["a", "b"]))
    priors = center_size(torch.tensor([[0.1 * (i % 8), 0.1 * (i // 8), 0.1 * (i % 8) + 0.2, 0.1 * (i // 8) + 0.2]
                                       for i in range(40)]))
    out = _outputs(2, priors)
    losses = YolactCriterion(cfg)(out, [_empty_target(), _empty_target()])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["box"].item() == 0.0 and losses["mask"].item() == 0.0
    # no positive in the batch: 3 hardest negatives per image, normalised by max(positives, 1) = 1
    expected = sum(_hardest_negatives_ce(out.conf[b], 3) for b in range(2))
    assert losses["conf"].item() == pytest.approx(expected.item(), rel=1e-6) and losses["conf"].item() > 0
    # the semantic head learns "nothing here" too: BCE against an all-zero target
    sem = sum(F.binary_cross_entropy_with_logits(out.segm[b], torch.zeros_like(out.segm[b]), reduction="sum")
              / 64 for b in range(2)) / 2
    assert losses["semantic"].item() == pytest.approx(sem.item(), rel=1e-6)


def test_background_image_takes_as_many_negatives_as_an_average_image():
    cfg = _tiny(get_config("yolact_resnet18", class_names=["a", "b"]))
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    far = torch.tensor([[0.05 * i, 0.6, 0.05 * i + 0.1, 0.7] for i in range(18)])  # background priors
    priors = center_size(torch.cat([boxes, far]))
    out = _outputs(2, priors)
    masks = torch.zeros(2, 64, 64)
    masks[0, :32, :32] = 1
    masks[1, 32:, 32:] = 1
    with_objects = {"boxes": boxes, "labels": torch.tensor([0, 1]), "masks": masks, "num_crowds": 0}
    losses = YolactCriterion(cfg)(out, [with_objects, _empty_target()])
    # image 0: 2 positives (priors 0, 1) and its 6 hardest negatives; image 1: 3 x 2 = 6 as well
    bg0 = torch.logsumexp(out.conf[0], -1) - out.conf[0, :, 0]
    bg0[:2] = 0
    neg0 = bg0.argsort(descending=True)[:6]
    ce0 = F.cross_entropy(out.conf[0, :2], torch.tensor([1, 2]), reduction="sum") + F.cross_entropy(
        out.conf[0, neg0], torch.zeros(6, dtype=torch.long), reduction="sum")
    expected = (ce0 + _hardest_negatives_ce(out.conf[1], 6)) / 2
    assert losses["conf"].item() == pytest.approx(expected.item(), rel=1e-6)
    # alone, the image with objects gives what the original's per-image 3:1 rule gives
    first = out._replace(loc=out.loc[:1], conf=out.conf[:1], coef=out.coef[:1], proto=out.proto[:1], segm=out.segm[:1])
    alone = YolactCriterion(cfg)(first, [with_objects])
    assert alone["conf"].item() == pytest.approx(ce0.item() / 2, rel=1e-6)


# ---------------------------------------------------------------------------- criterion and model
def test_model_takes_its_criterion_and_has_no_extra_keys():
    cfg = _tiny(get_config("yolact_resnet18", class_names=["a"]))
    bare = Yolact(cfg).train()
    with pytest.raises(ValueError, match="no criterion"):
        bare(torch.zeros(1, 3, 64, 64), [_empty_target()])
    built = yolact.build(cfg)
    assert isinstance(built.criterion, YolactCriterion)
    assert list(built.state_dict()) == list(bare.state_dict())  # the criterion holds no weights


def test_injected_generator_draws_the_mask_subset():
    cfg = _tiny(get_config("yolact_resnet18", class_names=["a", "b"])).replace(masks_to_train=3)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    priors = center_size(boxes).repeat(10, 1)  # 10 positives, 3 trained
    out = _outputs(1, priors)
    masks = torch.zeros(1, 64, 64)
    masks[0, :32, :32] = 1
    targets = [{"boxes": boxes, "labels": torch.tensor([0]), "masks": masks, "num_crowds": 0}]
    a = YolactCriterion(cfg, generator=torch.Generator().manual_seed(5))(out, targets)["mask"]
    state = torch.get_rng_state()
    b = YolactCriterion(cfg, generator=torch.Generator().manual_seed(5))(out, targets)["mask"]
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())  # the global RNG untouched
    torch.manual_seed(5)
    c = YolactCriterion(cfg)(out, targets)["mask"]  # default: the global RNG, as the original
    torch.manual_seed(5)
    assert torch.equal(c, YolactCriterion(cfg)(out, targets)["mask"])


# ---------------------------------------------------------------------------- --weights
def test_weights_of_another_backbone_stop_with_the_keys(tmp_path):
    small = yolact.build(_tiny(get_config("yolact_resnet18")))
    path = tmp_path / "r18.pth"
    torch.save(small.state_dict(), path)
    model = yolact.build(_tiny(get_config("yolact_resnet50", class_names=["x", "y"])))
    with pytest.raises(YolactError, match=r"r18.pth: does not fit config 'yolact_resnet50'.*missing: backbone\."):
        load_finetune_weights(model, str(path))
    # the same through the trainer (`train --config yolact_resnet50 --weights r18.pth`)
    ann = _coco_with_background(tmp_path, n=2, empty=())
    ds = CocoDataset(ann, tmp_path, train=True, verbose=False)
    ds.cfg = _tiny(get_config("yolact_resnet50", class_names=ds.class_names))
    with pytest.raises(YolactError, match=r"r18.pth: does not fit config 'yolact_resnet50'"):
        Trainer(ds.cfg, ds, TrainOptions(out=str(tmp_path / "o"), iters=1, batch_size=2), weights=str(path))
    # YOLACT++ weights into plain YOLACT: the DCN offsets (and more) are unexpected, anchors differ
    plus = yolact.build(_tiny(get_config("yolact_plus_resnet50")))
    torch.save(plus.state_dict(), tmp_path / "plus.pth")
    plain = yolact.build(_tiny(get_config("yolact_resnet50")))
    with pytest.raises(YolactError, match=r"unexpected: backbone.*conv_offset_mask.*mismatched: prediction_layers"):
        load_finetune_weights(plain, str(tmp_path / "plus.pth"))


def test_missing_class_dependent_tensors_are_named(tmp_path):
    cfg = _tiny(get_config("yolact_resnet18", class_names=["x", "y"]))
    sd = yolact.build(cfg).state_dict()
    del sd["semantic_seg_conv.weight"], sd["semantic_seg_conv.bias"]
    torch.save(sd, tmp_path / "w.pth")
    rep = load_finetune_weights(yolact.build(cfg), str(tmp_path / "w.pth"))
    assert sorted(rep["reinitialised"]) == ["semantic_seg_conv.bias", "semantic_seg_conv.weight"]


# ---------------------------------------------------------------------------- schedule
def test_warmup_is_capped_at_a_tenth_of_the_run():
    cfg = get_config("yolact_base")
    sched, notes = build_schedule(cfg, TrainOptions(iters=400, batch_size=8), 10, 1)
    assert sched.warmup == 40 and "shortened from 500 iterations to 40" in notes[0]
    assert sched.lr(40) == pytest.approx(1e-3) and sched.lr(20) < 1e-3  # the run reaches the base lr
    # the preset's long schedule keeps the original's 500; an explicit value is kept as given
    full, notes = build_schedule(cfg, TrainOptions(batch_size=8), 10, 1)
    assert full.warmup == 500 and full.max_iter == 800_000 and notes == []
    assert build_schedule(cfg, TrainOptions(iters=400, warmup_iters=300), 10, 1)[0].warmup == 300


def test_early_stopping_counts_evaluations_without_improvement():
    stop = EarlyStopping(patience=2)
    assert stop.update(0.1) and not stop.update(0.1) and not stop.exhausted
    assert not stop.update(0.05) and stop.exhausted
    assert stop.update(0.2) and stop.bad_evals == 0 and stop.best_ap == 0.2
    assert not EarlyStopping(None).exhausted


def test_metrics_csv_has_training_and_validation_columns(tmp_path):
    history = [{"iteration": 1, "total": 3.0, "box": 1.0}, {"iteration": 2, "val_box_ap": 0.5, "val_mask_ap": 0.4}]
    write_csv(history, tmp_path / "m.csv")
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert rows[0]["total"] == "3.0" and rows[0]["val_mask_ap"] == ""
    assert rows[1]["val_box_ap"] == "0.5" and rows[1]["val_mask_ap"] == "0.4"


def test_validation_of_a_split_without_objects_says_n_a(tmp_path, capsys):
    from yolact.training.log import TrainLog

    log = TrainLog(tmp_path, 0, [], 1, False, 10, 0)
    log.validation(5, -1.0, -1.0)  # pycocotools' -1: nothing to score against
    log.validation(10, 0.25, 0.5)
    log.close()
    out = capsys.readouterr().out
    assert "iteration 5: val box AP n/a, mask AP n/a (the val split has no objects: best.pt is not chosen by AP)" in out
    assert "iteration 10: val box AP 0.250, mask AP 0.500\n" in out


def test_validation_logs_box_and_mask_ap_and_no_val_summary(tmp_path, capsys):
    from yolact.data.synth import generate
    root = tmp_path / "d"
    generate(root, 4, 2, size=80, seed=1, max_objects=2)
    ds = CocoDataset(root / "train.json", root / "train", train=True, verbose=False)
    cfg = _tiny(get_config("yolact_resnet18", class_names=ds.class_names))
    ds.cfg = cfg
    opts = TrainOptions(out=str(tmp_path / "v"), iters=1, batch_size=2, progress=False, log_interval=1)
    tr = Trainer(cfg, ds, opts, val_ann=str(root / "val.json"), val_images=str(root / "val"))
    summary = tr.train()
    assert "val box AP" in capsys.readouterr().out
    recs = [json.loads(line) for line in open(tmp_path / "v" / "metrics.jsonl")]
    val = [r for r in recs if "val_mask_ap" in r]
    assert len(val) == 1 and "val_box_ap" in val[0]
    assert summary["best_mask_ap"] == val[0]["val_mask_ap"] and summary["best_box_ap"] == val[0]["val_box_ap"]
    header = open(tmp_path / "v" / "metrics.csv").readline().strip().split(",")
    assert "val_box_ap" in header and "val_mask_ap" in header
    if importlib.util.find_spec("yolact.evaluation.metrics") is not None:  # the eval pictures (branch data)
        for name in ("best_confusion_matrix.png", "best_pr_curve.png"):
            assert cv2.imread(str(tmp_path / "v" / name)) is not None, name
    # without a val split the summary has no AP at all (it used to say -1.0)
    no_val = Trainer(cfg, ds, TrainOptions(out=str(tmp_path / "n"), iters=1, batch_size=2, progress=False)).train()
    assert "best_mask_ap" not in no_val and "best_box_ap" not in no_val


# ---------------------------------------------------------------------------- --resume from the file alone
def test_resume_takes_data_and_options_from_the_checkpoint(tmp_path, capsys, monkeypatch):
    from yolact.cli import train as cli_train
    from yolact.training import api

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.json").write_text("{}")
    (tmp_path / "imgs").mkdir()

    parser = argparse.ArgumentParser()
    cli_train.add_commands(parser.add_subparsers())
    first = parser.parse_args(["train", "--train-ann", "t.json", "--train-images", "imgs", "--iters", "50",
                               "--batch-size", "4", "--out", str(tmp_path / "run")])
    stored = api._run_args(first)
    assert stored["train_ann"] == str(tmp_path.resolve() / "t.json")  # files stored absolute
    assert "out" not in stored and "resume" not in stored
    torch.save({"optimizer": {}, "iteration": 3, "options": json.dumps({"run_args": stored})}, tmp_path / "last.pt")
    again = parser.parse_args(["train", "--resume", str(tmp_path / "last.pt")])
    merged = api._merge_resume_args(again, 0)
    assert merged.train_ann == stored["train_ann"] and merged.iters == 50 and merged.batch_size == 4
    assert merged.out is None and merged.resume == str(tmp_path / "last.pt")  # the run folder: --resume's
    assert merged.pending_lines == []  # nothing given again: no notice
    override = parser.parse_args(["train", "--resume", str(tmp_path / "last.pt"), "--epochs", "3", "--lr", "0.01"])
    merged = api._merge_resume_args(override, 0)
    assert merged.epochs == 3 and merged.iters is None and merged.lr == 0.01 and merged.batch_size == 4
    out = "\n".join(merged.pending_lines)  # printed by _train_into once the run is sure to start
    assert capsys.readouterr().out == "" and "--epochs 3 replaces" in out and "--lr 0.01 replaces" in out
    # a file without stored arguments (older versions) asks for the data again, saying why
    torch.save({"optimizer": {}, "iteration": 3}, tmp_path / "old.pt")
    with pytest.raises(YolactError, match="holds no data paths"):
        api._merge_resume_args(parser.parse_args(["train", "--resume", str(tmp_path / "old.pt")]), 0)


def test_amp_training_goes_on_after_a_gradient_overflow(tmp_path):
    """fp16 AMP overflows now and then: the scaler skips that step and lowers its scale, and
    the next step must train (it used to raise 'unscale_() has already been called'). A CPU
    GradScaler stands in for CUDA's, whose logic is the same. The forward runs in float32
    (amp=False, the scaler set by hand): CPU bf16 autocast made the follow-up step's own
    gradients non-finite now and then, which is not what this test is about."""
    from yolact.data.synth import generate

    generate(tmp_path / "d", 4, 0, size=80, seed=1, max_objects=3)
    ds = CocoDataset(tmp_path / "d" / "train.json", tmp_path / "d" / "train", train=True, verbose=False)
    cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=64, fpn_channels=32)
    ds.cfg = cfg
    tr = Trainer(cfg, ds, TrainOptions(out=str(tmp_path / "run"), iters=3, batch_size=2, amp=False, progress=False))
    tr.scaler = torch.amp.GradScaler("cpu")
    images, targets = next(iter(tr._loader(0, 0)))
    scale = tr.scaler.get_scale()
    hook = tr.model.prediction_layers[0].conf_layer.bias.register_hook(lambda g: g * float("inf"))
    assert tr._step(images, targets) is None  # the overflowing step is skipped
    hook.remove()
    assert tr._step(images, targets) is not None
    assert tr.scaler.get_scale() < scale


def test_amp_dtype_option_picks_the_autocast_type_and_the_scaler(tmp_path):
    """--amp-dtype: bf16 (no loss scaling) or fp16 (GPUs only); by default bf16 on the CPU. A bf16 AMP step
    on the CPU trains (the mask loss runs in float32 outside autocast)."""
    from yolact.data.synth import generate

    generate(tmp_path / "d", 2, 0, size=80, seed=1, max_objects=3)
    ds = CocoDataset(tmp_path / "d" / "train.json", tmp_path / "d" / "train", train=True, verbose=False)
    cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=96, fpn_channels=32)
    ds.cfg = cfg

    def trainer(**kw):
        return Trainer(cfg, ds, TrainOptions(out=str(tmp_path / "run"), iters=2, batch_size=2, progress=False, **kw))

    assert trainer(amp=True).amp_dtype == torch.bfloat16
    with pytest.raises(YolactError, match="--amp-dtype fp16 is for GPUs"):  # fp16 autocast is the GPU's
        trainer(amp=True, amp_dtype="fp16")
    tr = trainer(amp=True, amp_dtype="bf16")
    assert tr.amp_dtype == torch.bfloat16 and not tr.scaler.is_enabled()
    with pytest.raises(YolactError, match="amp dtype 'int8'"):
        trainer(amp=True, amp_dtype="int8")
    images, targets = next(iter(tr._loader(0, 0)))
    res = tr._step(images, targets)
    assert res is not None and all(np.isfinite(v) for v in res.values()), res


def test_train_cli_has_amp_dtype(capsys):
    from yolact.cli import main

    with pytest.raises(SystemExit) as e:  # argparse's choices
        main(["train", "--amp-dtype", "int8"])
    assert e.value.code == 2 and "--amp-dtype" in capsys.readouterr().err
