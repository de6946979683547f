"""Where a training iteration's time goes: ``--recipe fast`` on ``yolact_resnet18_slim`` beside
Ultralytics' YOLO26n-seg, stage by stage, at the issue's settings (192 px, batch 8, one thread).

    python benchmarks/train_profile.py --data /tmp/synth400 [--iters 24] [--yolo-python PY]

``--data``: a set made by ``yolact data synth`` (COCO ``train.json``/``val.json`` beside
``train/``/``val/``), as ``benchmarks/recipe_vs_yolo.py`` takes it. Each model runs in its own
process on one thread; every figure is that process's CPU time (``time.process_time``), so a
shared machine changes the wall-clock but little the split.

Stages, per iteration of batch 8 (after ``--warmup`` untimed ones):
- **data**: the loader's next batch (reading, augmentation with mosaic on, as in the first 85%
  of either run, collation; ``workers=0`` as both runs), and YOLO's ``preprocess_batch``;
- **forward**, split into the backbone, the neck (our FPN; YOLO's head layers before the last)
  and the heads (our protonet, prediction head, semantic head; YOLO's ``Segment`` layer);
- **loss**, split into the assignment of anchors to objects (our ``match_batch``; YOLO's
  assigners) and the rest, and for ours each term;
- **backward**; **optimizer + EMA** (YOLO steps once every ``accumulate`` iterations, its
  nominal batch 64, and its step includes zeroing, unscaling and clipping the gradients; its
  cost is spread over them);
- **rest of the step**: the step's time less the stages named in it (ours: the lr, zeroing the
  gradients, the finite checks, the losses as floats; YOLO's: its loop's bookkeeping);
- **validation + checkpoints**, spread over the iterations between two validations (ours every
  2 epochs, with a last.pt saved each time; YOLO's every epoch, with its last.pt and best.pt).
  A best.pt of ours, saved when the AP improves, is not counted.

YOLO (AGPL) is never imported here: its half runs in its own virtual environment
(``--yolo-python``) through a subprocess, only when that exists.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import recipe_vs_yolo as rvy  # its sibling (benchmarks/ is sys.path[0]): the same data, threads and YOLO setup

STAGES = ["data", "forward", "forward: backbone", "forward: neck (FPN)", "forward: heads", "loss",
          "loss: assignment", "loss: boxes", "loss: classes", "loss: masks", "loss: other", "backward",
          "optimizer + EMA", "rest of the step", "validation + checkpoints (spread)", "total"]


class Clock:
    """CPU seconds per named stage, from wrapped callables and module hooks."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.on = False

    def wrap(self, name, fn):
        def timed(*a, **k):
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                if self.on:
                    self.seconds[name] += time.process_time() - t0
        return timed

    def hook(self, name, module):
        def pre(m, args):
            m._clock_t0 = time.process_time()

        def post(m, args, out):
            if self.on:
                self.seconds[name] += time.process_time() - m._clock_t0
        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def profile_ours(data: Path, iters: int, warmup: int, epochs: int) -> dict:
    """Per-iteration CPU seconds of each stage of ``yolact train --recipe fast`` (one thread)."""
    import torch
    from unittest import mock

    torch.set_num_threads(1)
    from yolact.training import api
    from yolact.training.trainer import Trainer

    made = {}

    class Built(Trainer):  # the real construction path (recipe, data, loss); the loop is ours
        def train(self):
            made["trainer"] = self
            return {}

    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(api, "Trainer", Built):
        api.train(train_ann=str(data / "train.json"), train_images=str(data / "train"),
                  val_ann=str(data / "val.json"), val_images=str(data / "val"), config=rvy.CONFIG, epochs=epochs,
                  batch_size=8, workers=0, backbone_weights="none", out=tmp, exist_ok=True, quiet=True,
                  recipe="fast", amp=False)  # float32, as YOLO trains on a CPU
        tr = made["trainer"]
        clock = Clock()
        model, crit = tr.model, tr.model.criterion
        clock.hook("forward: backbone", model.backbone)
        clock.hook("forward: neck (FPN)", model.fpn)
        for m in (model.proto_net, model.prediction_layers[0], model.semantic_seg_conv):
            clock.hook("forward: heads", m)
        model.forward_heads = clock.wrap("forward", model.forward_heads)
        crit.forward = clock.wrap("loss", crit.forward)
        for name, method in (("loss: assignment", "match_batch"), ("loss: boxes", "loss_boxes"),
                             ("loss: classes", "loss_conf"), ("loss: masks", "loss_masks")):
            setattr(crit, method, clock.wrap(name, getattr(crit, method)))
        tr.optimizer.step = clock.wrap("optimizer + EMA", tr.optimizer.step)
        if tr.ema is not None:
            tr.ema.update_parameters = clock.wrap("optimizer + EMA", tr.ema.update_parameters)
        batches = (b for epoch in range(epochs) for b in tr._loader(epoch, 0))  # a small set: several epochs
        with mock.patch.object(torch.Tensor, "backward", clock.wrap("backward", torch.Tensor.backward)):
            for i in range(warmup + iters):
                clock.on = i >= warmup
                t0 = time.process_time()
                images, targets = next(batches)
                t1 = time.process_time()
                tr.train_one_step(images, targets)
                if clock.on:
                    clock.seconds["data"] += t1 - t0
                    clock.seconds["step"] += time.process_time() - t1
        clock.on = False  # validation's forward (of the EMA copy, or of the model itself) is its own stage
        t0 = time.process_time()
        tr.validate()
        tr.save("last.pt")
        val = time.process_time() - t0
    per = {k: v / iters for k, v in clock.seconds.items()}
    every = tr.opts.val_interval or max(1, tr.max_iter // 4)  # as Trainer.train
    per["validation + checkpoints (spread)"] = val / every
    return finish(per, {"validation_s": val, "iterations_between_validations": every,
                        "batches_per_epoch": tr.batches_per_epoch, "torch": torch.__version__})


def finish(per: dict, meta: dict) -> dict:
    """Derived stages, per iteration: the loss's rest, the step's rest (the step as timed less
    the stages named in it; ``step_s`` keeps the step itself) and the total."""
    per = dict(per)
    named = ("loss: assignment", "loss: boxes", "loss: classes", "loss: masks")
    per["loss: other"] = max(0.0, per.get("loss", 0.0) - sum(per.get(k, 0.0) for k in named))
    step = per.pop("step")
    per["rest of the step"] = max(0.0, step - sum(per.get(k, 0.0) for k in
                                                  ("forward", "loss", "backward", "optimizer + EMA")))
    per["total"] = sum(per.get(k, 0.0) for k in ("data", "forward", "loss", "backward", "optimizer + EMA",
                                                   "rest of the step", "validation + checkpoints (spread)"))
    return {"per_iteration_s": per, "step_s": step, **meta}


YOLO_PROFILE = r'''
import json, sys, time, torch
torch.set_num_threads(1)
from collections import defaultdict
from unittest import mock
import ultralytics
from ultralytics.models.yolo.segment import SegmentationTrainer
a = json.loads(sys.argv[1])
sys.path.insert(0, a["here"])
from train_profile import Clock
tr = SegmentationTrainer(overrides=dict(model=a["yaml"], data=a["data"], epochs=a["epochs"], imgsz=192, batch=8,
                                        workers=0, plots=False, device="cpu", project=a["project"], name="profile",
                                        exist_ok=True, pretrained=False, amp=False, verbose=False))
tr._setup_train()
model = tr.model
model.train()
clock = Clock()
layers = list(model.model)
n_backbone = len(model.yaml["backbone"])
for i, layer in enumerate(layers):
    clock.hook("forward: backbone" if i < n_backbone else "forward: heads" if i == len(layers) - 1
               else "forward: neck (FPN)", layer)
loader = (b for _ in range(a["epochs"]) for b in tr.train_loader)  # a small set: several epochs
optimizer_calls = 0
def assigners(obj, depth=0):
    found = []
    for k, v in vars(obj).items():
        if k == "assigner":
            found.append(v)
        elif depth < 2 and hasattr(v, "__dict__") and type(v).__module__.startswith("ultralytics.utils"):
            found += assigners(v, depth + 1)
    return found
with mock.patch.object(torch.Tensor, "backward", clock.wrap("backward", torch.Tensor.backward)):
    for i in range(a["warmup"] + a["iters"]):
        clock.on = i >= a["warmup"]
        t0 = time.process_time()
        batch = tr.preprocess_batch(next(loader))
        t1 = time.process_time()
        preds = model(batch["img"])
        t2 = time.process_time()
        loss, items = model.loss(batch, preds)
        t3 = time.process_time()
        if i == 0:
            for asg in assigners(model.criterion):
                asg.forward = clock.wrap("loss: assignment", asg.forward)
        loss.sum().backward()
        t4 = time.process_time()
        if (i + 1) % tr.accumulate == 0:
            tr.optimizer_step()
            if clock.on:
                clock.seconds["optimizer_s"] += time.process_time() - t4
                optimizer_calls += 1
        if clock.on:
            clock.seconds["data"] += t1 - t0
            clock.seconds["forward"] += t2 - t1
            clock.seconds["loss"] += t3 - t2
            clock.seconds["step_without_optimizer"] += t4 - t1
clock.on = False
tr.loss_items, tr.tloss, tr.loss, tr.epoch = items, items, loss.sum().detach(), 0  # what the validator and save_model read of the loop
t0 = time.process_time()
tr.metrics, tr.fitness = tr.validate()
tr.save_model()
val = time.process_time() - t0
print(json.dumps({"seconds": clock.seconds, "validation_s": val, "batches_per_epoch": len(tr.train_loader),
                  "accumulate": tr.accumulate, "optimizer_calls": optimizer_calls,
                  "ultralytics": ultralytics.__version__, "torch": torch.__version__}))
'''


def profile_yolo(py: str, data: Path, out: Path, iters: int, warmup: int, epochs: int) -> dict:
    """The same stages for YOLO26n-seg, in its own environment (one thread)."""
    yaml = rvy.yolo_data(data, out)
    a = {"here": str(Path(__file__).parent), "yaml": "yolo26n-seg.yaml", "data": str(yaml), "epochs": epochs,
         "project": str(out), "iters": iters, "warmup": warmup}
    run = subprocess.run([py, "-c", YOLO_PROFILE, json.dumps(a)], capture_output=True, text=True, cwd=str(out),
                         env={**os.environ, **rvy.ONE_THREAD, "YOLO_OFFLINE": "1"})
    if run.returncode != 0:
        raise SystemExit(f"YOLO profile failed:\n{run.stderr[-3000:]}")
    res = json.loads(run.stdout.strip().splitlines()[-1])
    seconds = res.pop("seconds")
    if not res["optimizer_calls"]:
        raise SystemExit(f"YOLO profile: no optimizer step in {iters} iterations (it steps every "
                         f"{res['accumulate']}): give --iters {res['accumulate']} or more")
    per = {k: v / iters for k, v in seconds.items() if k not in ("optimizer_s", "step_without_optimizer")}
    # one step per `accumulate` iterations: its mean cost spread over them, whatever the window held
    per["optimizer + EMA"] = seconds["optimizer_s"] / res["optimizer_calls"] / res["accumulate"]
    per["step"] = seconds["step_without_optimizer"] / iters + per["optimizer + EMA"]
    per["validation + checkpoints (spread)"] = res["validation_s"] / res["batches_per_epoch"]
    return finish(per, res)


def table(ours: dict, yolo: dict = None) -> str:
    cols = ["ours, fast (ms)", "share"] + (["YOLO26n-seg (ms)", "share"] if yolo else [])
    lines = ["| stage, per iteration of 8 images | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for stage in STAGES:
        row = []
        for res in (ours, yolo) if yolo else (ours,):
            per = res["per_iteration_s"]
            v = per.get(stage)
            row += ["–", ""] if v is None else [f"{1000 * v:.0f}", f"{100 * v / per['total']:.0f}%"]
        if all(c in ("–", "") for c in row):
            continue
        name = f"**{stage}**" if ":" not in stage else "&nbsp;&nbsp;" + stage.split(": ", 1)[1]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a set from yolact data synth (train.json, val.json)")
    p.add_argument("--iters", type=int, default=24, help="timed iterations (default 24)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    p.add_argument("--epochs", type=int, default=140, help="the run's length, for its schedules (default 140)")
    p.add_argument("--yolo-python", default=rvy.YOLO_PYTHON, help="python of the Ultralytics venv (skipped if absent)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)
    if a.iters < 1 or a.warmup < 1:
        raise SystemExit("--iters and --warmup: expected 1 or more")
    for f in ("train.json", "val.json"):
        if not (a.data / f).exists():
            raise SystemExit(f"{a.data / f}: not found (make the set with yolact data synth)")
    os.environ.update(rvy.ONE_THREAD)
    ours = profile_ours(a.data, a.iters, a.warmup, a.epochs)
    yolo = None
    if Path(a.yolo_python).exists():
        with tempfile.TemporaryDirectory() as tmp:
            yolo = profile_yolo(a.yolo_python, a.data, Path(tmp), a.iters, a.warmup, a.epochs)
    else:
        print(f"note: {a.yolo_python} not found: YOLO26n-seg's column is left out", file=sys.stderr)
    print(f"{rvy.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, one thread, batch 8, 192 px")
    print(table(ours, yolo))
    if a.json:
        a.json.write_text(json.dumps({"ours": ours, "yolo": yolo, "machine": rvy.machine(),
                                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))


if __name__ == "__main__":
    main()
