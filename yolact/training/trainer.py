"""The training loop: single process on CPU/GPU, or many through torchrun + DistributedDataParallel.

Exact resume: the checkpoint holds model, optimiser, iteration, epoch and RNG state; the data
order is a function of (seed, epoch) (DistributedSampler) and augmentation of (seed, epoch,
index), so a resumed run replays the same batches as an uninterrupted one.

``Trainer`` wires the pieces of the other modules, each usable alone: ``build_model``
(weights: seed, init, weights), ``build_schedule`` (schedule: the original's autoscaled steps and
warm-up), ``build_loader`` (loader: one epoch's batches from an iteration on), ``TrainLog`` (log:
console, metrics.jsonl, metrics.csv, TensorBoard, plot), ``Checkpointer`` (checkpoints: atomic
files), ``validate`` and ``EarlyStopping`` (validation), and here ``build_optimizer`` and
``build_ema``. ``Trainer.train_one_step`` is one optimiser step.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader

from ..checkpoint import read_checkpoint, stored_config
from ..checks import resolve_device
from ..config import YolactConfig
from ..data.coco import CocoDataset
from ..errors import StoppedBySignal, YolactError
from ..model.yolact import Yolact
from .budget import RunClock
from .checkpoints import Checkpointer
from .distributed import dist_info, place_model, rank0_decides, rank0_number
from .loader import background_note, build_loader, training_indices
from .log import TrainLog, save_best_plots
from .options import FREEZE_BN_BELOW, TrainOptions
from .recipes import ORIGINAL, Recipe, epochs_to_iters, field_differences, get_recipe, recipe_differences
from .schedule import build_schedule
from .validation import EarlyStopping, validate
from .weights import build_model, freeze_batchnorm


def build_optimizer(model: nn.Module, name: str, lr: float, cfg: YolactConfig) -> torch.optim.Optimizer:
    """SGD with the preset's momentum and weight decay (the original's), or AdamW (wd 0.05)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    raise YolactError(f"unknown optimizer '{name}' (sgd or adamw)")


def ema_avg(decay: float):
    """EMA update for ``AveragedModel``: decay ramps up as (1 + n) / (10 + n) so that the
    average is not dominated by the initial weights in short runs."""
    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        return averaged * d + current * (1 - d)
    return avg


def ema_decay_at(decay: float, tau: float, updates: int) -> float:
    """Ultralytics' ramped EMA decay after ``updates`` averaged updates: decay x (1 - exp(-n / tau)),
    so the average follows the weights closely at first and settles to ``decay``."""
    return decay * (1 - math.exp(-updates / tau))


def ema_avg_ramped(decay: float, tau: float):
    """EMA update for ``AveragedModel`` with :func:`ema_decay_at` (``num_averaged`` counts the
    updates before this one; the first update copies the weights)."""
    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = ema_decay_at(decay, tau, int(num_averaged))
        return averaged * d + current * (1 - d)
    return avg


def build_ema(model: nn.Module, decay: Optional[float], tau: Optional[float] = None):
    """An ``AveragedModel`` of the weights and buffers, or None without a decay. ``tau``: the
    ramp of :func:`ema_decay_at` (None: the ramp of :func:`ema_avg`)."""
    if decay is None:
        return None
    if not 0 < decay < 1:
        raise YolactError(f"EMA decay {decay} must lie in (0, 1)")
    avg_fn = ema_avg(decay) if tau is None else ema_avg_ramped(decay, tau)
    ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=avg_fn, use_buffers=True)
    ema.eval()
    return ema


@contextlib.contextmanager
def catch_stop_signals(handler):
    """SIGINT/SIGTERM call ``handler`` instead of stopping (restored on exit; main thread only)."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


# ---------------------------------------------------------------------------- the trainer
def stride2_conv_on_one_pixel(size: int, num_downsample: int) -> bool:
    """Whether one of the FPN's stride-2 3x3 convolutions (P6 from P5, P7 from P6) takes a 1x1
    map at a square input of ``size`` pixels (P5 = ceil(size / 32)): 64 px and below."""
    side = -(-int(size) // 32)
    for _ in range(num_downsample):
        if side == 1:
            return True
        side = (side - 1) // 2 + 1
    return False


def check_resumable(obj: Dict, path: str) -> None:
    """Refuse (YolactError) a checkpoint a run cannot go on from: one without training state, or
    a best.pt, whose weights are the evaluated ones (the EMA's under fast) and whose counters may
    be older than last.pt's."""
    if "optimizer" not in obj or "iteration" not in obj:
        raise YolactError(f"{path}: not a training checkpoint (no optimiser state); use --weights to fine-tune")
    # files from before "saved_as" are told by their name
    if obj.get("saved_as", "best" if Path(path).name == "best.pt" else "last") == "best":
        raise YolactError(f"{path}: holds the weights chosen by validation (best.pt), not the training state to "
                          f"go on from: resume from {Path(path).parent / 'last.pt'}, or start a new run from "
                          f"this file with --weights {path}")


class Trainer:
    """One training run. ``train_set``: a ``CocoDataset`` (with ``cfg`` set); ``val_ann`` and
    ``val_images``: the val split (optional); ``weights``: a checkpoint to fine-tune from;
    ``backbone_weights``: ImageNet weights; ``recipe``: how to train (its optimizer, schedule
    and EMA decay are applied to ``opts`` by the caller, see ``recipes.apply_recipe``; the
    trainer applies the rest: its lr scaled to the batch each step takes where ``opts.lr`` is
    None, warm-up and validation in epochs where ``opts`` leaves them None,
    the EMA ramp, the loss options, the augmentation, and the inference options
    ``mask_score``/``mask_interpolation`` it writes into ``cfg``, replacing the caller's).
    ``train()`` runs to the end (or to
    early stopping, or a signal: then last.pt is saved and KeyboardInterrupt raised) and
    returns a summary."""

    def __init__(self, cfg: YolactConfig, train_set: CocoDataset, opts: TrainOptions,
                 val_ann: Optional[str] = None, val_images: Optional[str] = None,
                 weights: Optional[str] = None, backbone_weights: Optional[str] = None,
                 recipe: Recipe = ORIGINAL):
        cfg = recipe.model_config(cfg)  # the recipe's inference options travel in the checkpoint
        self.cfg, self.opts, self.train_set, self.recipe = cfg, opts, train_set, recipe
        self.val_ann, self.val_images = val_ann, val_images
        self.rank, self.world = dist_info()
        self.device = resolve_device(opts.device, "device")  # CUDA with an index: 'cuda' -> cuda:<current>
        self.out = Path(opts.out)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self.model, self.reports = build_model(cfg, opts.seed, weights, backbone_weights)
        self.notes: List[str] = []
        self.indices = self._training_images()
        opts = self.opts = self._fit_batch_to_the_data(opts)
        # The original trains BatchNorm only with at least 6 images per process (per GPU).
        self.freeze_bn = opts.freeze_bn if opts.freeze_bn is not None else opts.batch_size < FREEZE_BN_BELOW
        self.model, self.ddp = place_model(self.model, self.device, self.world, self.freeze_bn, opts.sync_bn)
        self.batches_per_epoch = max(1, len(self.indices) // (opts.batch_size * self.world))
        self._opts_without_lengths = opts  # what --time's re-estimates start from
        if opts.time_hours is not None and (opts.iters is not None or opts.epochs is not None):
            raise YolactError("--time and --iters/--epochs contradict each other: give one of them")
        opts = self.opts = self._recipe_lengths(opts)
        self.schedule, notes = build_schedule(cfg, opts, self.batches_per_epoch, self.world, recipe.lr)
        self.schedule.final_fraction = recipe.final_lr_fraction  # the linear schedule's end
        self.notes += notes
        self.base_lr, self.max_iter = self.schedule.base_lr, self.schedule.max_iter
        self.lr_steps, self.warmup = self.schedule.steps, self.schedule.warmup
        self.clock = RunClock(opts.time_hours)  # the time trained, and --time's budget
        self._evaluated_at = -1
        self.optimizer = build_optimizer(self.model, opts.optimizer, self.base_lr, cfg)
        self.ema = build_ema(self.model, opts.ema_decay, recipe.ema_tau)
        self._apply_recipe_to_data_and_loss()
        self.stopping = EarlyStopping(opts.patience)
        self.checkpoints = Checkpointer(self.out, self.rank)
        self.iteration, self.bad_steps, self.skipped_steps = 0, 0, 0
        self.stopped_early = False
        self.best_val: Optional[Dict[str, float]] = None
        self.history: List[Dict] = []
        if opts.amp_dtype not in (None, "fp16", "bf16"):
            raise YolactError(f"amp dtype '{opts.amp_dtype}': expected fp16 or bf16")
        if opts.amp and opts.amp_dtype == "fp16" and self.device.type == "cpu":
            raise YolactError("--amp-dtype fp16 is for GPUs (fp16 with loss scaling); on the CPU use --amp "
                              "(bf16 autocast) or --amp-dtype bf16")
        bf16 = opts.amp_dtype == "bf16" or (opts.amp_dtype is None and self.device.type == "cpu")
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        if opts.amp and bf16 and self.device.type == "cpu" and stride2_conv_on_one_pixel(cfg.max_size,
                                                                                          cfg.num_downsample):
            # oneDNN's bf16 backward of that convolution leaves NaN in the weight gradient (the taps
            # that only see padding) on AVX-512 bf16 CPUs, with or without AMX (torch 2.13): every
            # step would be skipped as non-finite
            raise YolactError(f"--amp at --img-size {cfg.max_size}: the FPN's stride-2 convolution on a 1x1 map "
                              "gets NaN gradients from oneDNN's bf16 kernels on the CPU; train at --img-size 96 "
                              "or more, or without --amp")
        if opts.amp:
            scaling = ", with loss scaling" if self.amp_dtype == torch.float16 else ""
            self.notes.append(f"note: mixed precision: {'bf16' if bf16 else 'fp16'} autocast on "
                              f"{self.device.type}{scaling} (the mask loss in float32; --no-amp: float32)")
        # Loss scaling is for fp16's narrow range; bf16 has float32's exponent and needs none.
        self.scaler = torch.amp.GradScaler("cuda", enabled=opts.amp and self.device.type == "cuda"
                                          and self.amp_dtype == torch.float16)
        self._stop_signal: Optional[str] = None

    def _training_images(self) -> List[int]:
        """The dataset indices trained on; notes the background images."""
        note = background_note(self.train_set, self.opts.skip_empty)
        if note:
            self.notes.append(note)
        indices = training_indices(self.train_set, self.opts.skip_empty)
        if not any(self.train_set.has_objects(i) for i in indices):
            raise YolactError(f"{self.train_set.ann_file}: no training image has objects (nothing to learn)")
        return indices

    def _fit_batch_to_the_data(self, opts: TrainOptions) -> TrainOptions:
        """A batch larger than the images one process gets would never fill (the loader drops
        incomplete batches, so the run would never take a step and never end): cut it to
        what each process has, with a note. Fewer images than processes stops with one line."""
        per_process = len(self.indices) // self.world
        if per_process == 0:
            raise YolactError(f"{self.train_set.ann_file}: {len(self.indices)} training image(s) for "
                              f"{self.world} processes; each process needs at least one")
        if per_process >= opts.batch_size:
            return opts
        where = "" if self.world == 1 else f" per process ({self.world} processes)"
        self.notes.append(f"note: --batch-size {opts.batch_size} cut to {per_process}: the training set has "
                          f"{len(self.indices)} usable image(s){where}; "
                          + ("the learning rate scales with it" if opts.lr is None else f"--lr {opts.lr} is used as given"))
        return replace(opts, batch_size=per_process)

    def _recipe_lengths(self, opts: TrainOptions, notes: bool = True) -> TrainOptions:
        """The recipe's warm-up and validation interval (in epochs) where ``opts`` has none.
        The warm-up stays within 20% of the run (``notes``: say so)."""
        r, bpe = self.recipe, self.batches_per_epoch
        changes = {}
        if opts.warmup_iters is None and r.warmup_epochs is not None:
            length = opts.iters if opts.iters is not None else (opts.epochs or 0) * bpe
            full = epochs_to_iters(r.warmup_epochs, bpe)
            changes["warmup_iters"] = min(full, max(int(0.2 * length), 0)) if length else full
            if changes["warmup_iters"] < full and notes:
                self.notes.append(f"note: warm-up shortened from {full} iterations ({r.warmup_epochs:g} epochs) to "
                                  f"{changes['warmup_iters'] or 'none'}: at most 20% of this {length}-iteration run "
                                  "(--warmup-iters sets it)")
        if opts.val_interval is None and r.val_every_epochs is not None:
            changes["val_interval"] = epochs_to_iters(r.val_every_epochs, bpe)
        return replace(opts, **changes) if changes else opts

    def _apply_recipe_to_data_and_loss(self) -> None:
        """The recipe's loss options (a new criterion: it has no state) and augmentation."""
        r = self.recipe
        from ..loss import LossOptions, YolactCriterion

        try:
            options = LossOptions(**r.loss_options())
        except ValueError as e:  # a hand-made recipe (API, or an edited checkpoint): one line, no traceback
            raise YolactError(f"recipe {r.name}: {e}") from None
        if options != LossOptions():
            self.model.criterion = YolactCriterion(self.cfg, options=options)
        if r.augment == "modern" and self._augments():
            from ..data.mosaic import ModernAugment

            self.train_set.augment = ModernAugment(mosaic=r.mosaic, scale=r.scale, translate=r.translate,
                                                   copy_paste=r.copy_paste, hsv=r.hsv, flip=r.flip,
                                                   mosaic_until=self._mosaic_until())
        elif r.augment not in ("ssd", "modern"):
            raise YolactError(f"recipe {r.name}: unknown augment '{r.augment}' (ssd or modern)")

    def _mosaic_until(self) -> Optional[int]:
        """The epoch from which the recipe's mosaic is off: its last ``close_mosaic`` fraction of
        the run (None: never off)."""
        epochs = -(-self.max_iter // self.batches_per_epoch)
        close = int(round(self.recipe.close_mosaic * epochs))
        return epochs - close if close else None

    def _augments(self) -> bool:
        """False when the config has every augmentation off (--no-augment)."""
        c = self.cfg
        return c.augment_photometric or c.augment_expand or c.augment_crop or c.augment_mirror

    # ------------------------------------------------------------------ state
    @property
    def best_ap(self) -> float:
        """The best val mask AP so far (0..1; -1 before any evaluation)."""
        return self.stopping.best_ap

    @property
    def bad_evals(self) -> int:
        """Evaluations since the val mask AP last improved."""
        return self.stopping.bad_evals

    def state(self) -> Dict:
        """The checkpoint dict (format "yolact-py/1"): config, model, optimiser and EMA state dicts,
        iteration, best AP and early-stopping count, torch RNG state, base lr and ``max_iter``;
        ``best_val``, ``history``, ``options`` and ``data`` (the run's files) as JSON strings."""
        return {"format": "yolact-py/1", "config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "optimizer_name": self.opts.optimizer,
                "iteration": self.iteration, "best_ap": self.stopping.best_ap,
                "best_val": json.dumps(self.best_val),
                "skipped_steps": self.skipped_steps, "bad_evals": self.stopping.bad_evals,
                "rng_torch": torch.get_rng_state(), "base_lr": self.base_lr, "max_iter": self.max_iter,
                "time_used_s": self.clock.elapsed(),
                "history": json.dumps(self.history), "options": json.dumps(asdict(self.opts)),
                "recipe": json.dumps(self.recipe.to_dict()),
                "data": json.dumps({"train_ann": self.train_set.ann_file, "train_images": str(self.train_set.image_dir),
                                    "val_ann": self.val_ann, "val_images": self.val_images}),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {})}

    def eval_model(self) -> Yolact:
        """What is evaluated and saved as best.pt: the EMA when on, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def save(self, name: str, weights: Optional[nn.Module] = None) -> Path:
        """Write the training state; ``weights`` replaces the model's (best.pt holds the EMA)."""
        if self.rank != 0:
            return self.out / name
        state = self.state()
        if weights is not None:
            state["model"] = weights.state_dict()
        # what the file is for: a resume continues from "last" only (best.pt's weights are the
        # evaluated ones, the EMA's under fast, and its counters may be older than last.pt's)
        state["saved_as"] = "best" if weights is not None else "last"
        return self.checkpoints.save(name, state)

    def resume(self, path: str) -> None:
        """Continue a run from its last.pt exactly (model, optimiser, EMA, counters, RNG)."""
        obj = read_checkpoint(path)
        check_resumable(obj, path)
        # the recipe first: it also sets config fields (the inference options), and its message is the clearer
        stored = json.loads(obj.get("recipe", "null")) or {"name": "original"}
        if stored.get("name") != self.recipe.name:
            raise YolactError(f"{path}: was trained with --recipe {stored.get('name')}; resume with the same recipe")
        if len(stored) > 1:  # its fields (a field added since takes its default: the old behaviour)
            trained = get_recipe(stored)
            diff = recipe_differences(trained, self.recipe)
            if diff:
                raise YolactError(f"{path}: was trained with another form of recipe {trained.name}: {', '.join(diff)}; "
                                  "leave the recipe out to resume under the file's, or start a new run from the file "
                                  "(--weights)")
        saved = stored_config(path, obj["config"])
        if saved.category_ids is None:  # a file from before category ids were stored
            saved = saved.replace(category_ids=self.cfg.category_ids)
        if saved != self.cfg:
            diff = field_differences(saved, self.cfg)
            raise YolactError(f"{path}: was trained with another config: {', '.join(diff)}; cannot resume")
        trained_with = obj.get("optimizer_name", "sgd")  # files from before the option used SGD
        if trained_with != self.opts.optimizer:
            raise YolactError(f"{path}: was trained with --optimizer {trained_with}; resume with the same optimizer")
        if self.ema is None and "ema" in obj:
            raise YolactError(f"{path}: was trained with --ema; resume with it")
        if self.ema is not None and "ema" not in obj:
            raise YolactError(f"{path}: was trained without --ema; resume without it")
        self.model.load_state_dict(obj["model"])
        self.optimizer.load_state_dict(obj["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(obj["ema"])
        self.iteration = int(obj["iteration"])
        self.clock.used_before = float(obj.get("time_used_s", 0.0))
        if self.clock.budget_s is not None:
            self.notes.append(self.clock.check_resumable(path))
            length, bpe = int(obj["max_iter"]), self.batches_per_epoch
            if self.iteration >= length:  # it ended: what its pace so far fits into the new budget
                length = max(self.clock.epochs_that_fit(self.iteration, bpe, 0) * bpe, self.iteration + bpe)
            self._set_length(length)  # until the first estimate
        elif self.iteration > self.max_iter:
            raise YolactError(f"{path}: has trained {self.iteration} iterations already, more than this run's "
                              f"{self.max_iter}: give a longer --iters or --epochs to go on, or start a new run "
                              f"from it with --weights {path}")
        if self.iteration >= self.max_iter:  # else it would train nothing and rewrite the files quietly
            hours = self.clock.used_before / 3600
            raise YolactError(f"{path}: the run is complete ({self.iteration} iterations trained, this run has "
                              f"{self.max_iter}; its weights are {Path(path).parent / 'last.pt'} and best.pt): a longer "
                              f"--iters or --epochs (or a --time over the {hours:.3f} h trained) continues it, "
                              f"--weights {path} starts a new run from it")
        self.stopping.best_ap = float(obj["best_ap"])
        self.stopping.bad_evals = int(obj.get("bad_evals", 0))
        self.best_val = json.loads(obj.get("best_val", "null"))
        self.skipped_steps = int(obj.get("skipped_steps", 0))
        self.history = json.loads(obj.get("history", "[]"))
        torch.set_rng_state(obj["rng_torch"])

    # ------------------------------------------------------------------ a wall-clock budget (--time)
    def _set_length(self, max_iter: int) -> None:
        """The run is now ``max_iter`` iterations long, as if given with --iters: the schedule
        (warm-up cap, steps, decay to the end), mosaic's last epochs and the validation interval
        follow. The learning rate so far stays what it was; from here it follows the new length."""
        opts = self._recipe_lengths(replace(self._opts_without_lengths, iters=max_iter), notes=False)
        schedule, _ = build_schedule(self.cfg, opts, self.batches_per_epoch, self.world, self.recipe.lr)
        schedule.final_fraction = self.recipe.final_lr_fraction
        self.opts = replace(opts, iters=None)  # stored as given: a --time run, not an --iters one
        self.schedule, self.max_iter = schedule, schedule.max_iter
        self.lr_steps, self.warmup = schedule.steps, schedule.warmup
        augment = getattr(self.train_set, "augment", None)
        if hasattr(augment, "mosaic_until"):
            augment.mosaic_until = self._mosaic_until()

    def _fit_to_time(self, log: TrainLog) -> None:
        """After an epoch: the length that fits the rest of the budget (RunClock.epochs_that_fit).
        Rank 0's clock decides for every rank."""
        bpe = self.batches_per_epoch
        epochs = self.clock.epochs_that_fit(self.iteration, bpe, -(-self.max_iter // bpe))
        length = rank0_number(max(epochs * bpe, self.iteration), self.world, self.device)
        if length != self.max_iter:
            self._set_length(length)
            log.set_total(length)
        if not self.clock.estimated:
            self.clock.estimated = True
            log.write(f"--time {self.clock.budget_s / 3600:g} h: about {-(-length // bpe)} epochs ({length} "
                      "iterations) fit at this pace; re-estimated after every epoch")

    # ------------------------------------------------------------------ one step
    def _move(self, images, targets):
        images = images.to(self.device, non_blocking=True)
        targets = [{k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
        return images, targets

    def _all_finite(self, total: torch.Tensor) -> bool:
        finite = torch.isfinite(total)
        if self.world > 1:  # every rank must agree to skip, or DDP would hang
            flag = finite.float().to(self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag > 0
        return bool(finite)

    def _skip_bad_loss(self) -> None:
        """NaN guard: count a skipped step; stop after ``max_bad_steps`` in a row."""
        self.bad_steps += 1
        self.skipped_steps += 1
        if self.bad_steps >= self.opts.max_bad_steps:
            raise YolactError(f"training diverged: {self.bad_steps} consecutive non-finite losses at "
                              f"iteration {self.iteration} (lower --lr, or check the data)")

    def train_one_step(self, images: torch.Tensor, targets: List[Dict]) -> Optional[Dict[str, float]]:
        """Forward, backward and one optimiser step at this iteration's learning rate.
        Returns the loss terms (and 'lr', 'grad_norm' with clipping), or None for a skipped
        step (non-finite loss or gradient)."""
        lr = self.schedule.lr(self.iteration)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        images, targets = self._move(images, targets)
        net = self.ddp or self.model
        net.train()
        if self.freeze_bn:
            freeze_batchnorm(self.model)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.opts.amp):
            losses = net(images, targets)
        finite = self._all_finite(losses["total"])
        self.optimizer.zero_grad(set_to_none=True)
        if not finite:
            self._skip_bad_loss()
            return None
        self.bad_steps = 0
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not all(torch.isfinite(g).all() for g in grads):
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            # The scaler saw the overflow in unscale_: let it lower the scale and reset its
            # per-step state, or the next step's unscale_ raises (fp16 AMP overflows early).
            self.scaler.update()
            return None
        out = {k: float(v.detach()) for k, v in losses.items()}
        if self.opts.clip_grad_norm is not None:
            out["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.opts.clip_grad_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        out["lr"] = lr
        return out

    def _step(self, images, targets) -> Optional[Dict[str, float]]:
        """The loop's call (a hook: tests wrap it)."""
        return self.train_one_step(images, targets)

    def _handle_signal(self, signum, frame):
        self._stop_signal = signal.Signals(signum).name

    # ------------------------------------------------------------------ validation
    def validate(self) -> Optional[Dict[str, float]]:
        """Box and mask AP of ``eval_model()`` on the val split (rank 0; None elsewhere or without one)."""
        res = validate(self.eval_model(), self.val_ann, self.val_images)
        self.model.train()
        return res

    def _evaluate_and_keep_best(self, log: TrainLog) -> bool:
        """Validate, log, save best.pt (and its plots) when better. True: stop early."""
        t0 = self.clock.clock()
        res = self.validate()
        self._evaluated_at = self.iteration
        if self.rank == 0 and res is not None:
            log.validation(self.iteration, res["box_ap"], res["mask_ap"])
            if self.stopping.update(res["mask_ap"]):
                self.best_val = {"iteration": self.iteration, "box_ap": res["box_ap"], "mask_ap": res["mask_ap"]}
                self.save("best.pt", self.eval_model())
                save_best_plots(res["coco"], self.out)
        self.clock.last_validation_s = self.clock.clock() - t0
        if self.iteration < self.max_iter and rank0_decides(self.stopping.exhausted, self.world, self.device):
            log.write(f"iteration {self.iteration}: no better val mask AP in {self.opts.patience} "
                      f"evaluations; stopping (best {self.stopping.best_ap:.3f})")
            return True
        return False

    # ------------------------------------------------------------------ the loop
    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        return build_loader(self.train_set, self.indices, epoch, skip_batches, self.opts.batch_size, self.rank,
                            self.world, self.opts.seed, self.opts.workers, self.device.type == "cuda")

    def _intervals(self):
        """(iterations between evaluations, between saves of last.pt): the options', else 4
        evaluations per run and a save at each, at most every 500 iterations."""
        val_interval = self.opts.val_interval or max(1, self.max_iter // 4)
        return val_interval, self.opts.save_interval or max(1, min(val_interval, 500))

    def _run_epochs(self, log: TrainLog) -> None:
        budget = self.clock.budget_s
        while self.iteration < self.max_iter:
            epoch, skip = divmod(self.iteration, self.batches_per_epoch)
            val_interval, save_interval = self._intervals()  # --time: the length may change each epoch
            for images, targets in self._loader(epoch, skip):
                if self.iteration >= self.max_iter or self._stop_signal:
                    break
                res = self._step(images, targets)
                self.iteration += 1
                log.step(self.iteration, epoch, res, images.shape[0] * self.world, self.skipped_steps)
                if budget and self.iteration < self.max_iter and rank0_decides(self.clock.spent(), self.world,
                                                                               self.device):
                    untimed = ("" if self.clock.last_validation_s else
                               " (no validation timed yet: the final one comes on top)")
                    log.write(f"iteration {self.iteration}: the --time budget ({budget / 3600:g} h) is spent{untimed}")
                    self.max_iter = self.iteration
                    log.set_total(self.iteration)
                if self.iteration % save_interval == 0:
                    self.save("last.pt")
                if self.iteration % val_interval == 0 or self.iteration == self.max_iter:
                    if self._evaluate_and_keep_best(log):
                        self.stopped_early = True
                        return
            if self._stop_signal:
                path = self.save("last.pt")
                log.write(f"{self._stop_signal}: saved {path} at iteration {self.iteration}; "
                          f"resume with --resume {path}")
                raise StoppedBySignal(signal.Signals[self._stop_signal])
            if budget and self.iteration < self.max_iter:
                self._fit_to_time(log)
                if self.iteration >= self.max_iter and self._evaluated_at != self.iteration:
                    log.write(f"iteration {self.iteration}: the --time budget ({budget / 3600:g} h) holds no "
                              "further epoch")
                    if self._evaluate_and_keep_best(log):
                        self.stopped_early = True
                        return

    def train(self) -> Dict:
        """Run to ``max_iter``; last.pt and best.pt (the best val mask AP, or the last weights
        without a val split), metrics.jsonl/.csv and training.png in ``opts.out``.

        Returns {'iterations', 'seconds', 'images_per_s', 'skipped_steps', 'stopped_early'} and,
        with a val split, 'best_mask_ap' and 'best_box_ap' (0..1, at the best checkpoint)."""
        opts = self.opts
        # --time: no total for the bar until the first epoch has measured the pace (a resume has its length)
        total = None if self.clock.budget_s is not None and not self.iteration else self.max_iter
        log = TrainLog(self.out, self.rank, self.history, opts.log_interval, opts.progress, total,
                       self.iteration, verbose=opts.verbose)
        for note in self.notes if opts.verbose else ():  # --quiet: errors and the summary only
            log.write(note)
        try:
            self.clock.start()  # a resume goes on counting
            with catch_stop_signals(self._handle_signal):
                self._run_epochs(log)
        finally:
            log.close()
        self.save("last.pt")
        if self.rank == 0:
            if self.best_val is None:  # no validation set: the last weights are the best we know
                self.save("best.pt", self.eval_model())
            log.finish()
        if self.iteration and self.skipped_steps * 2 > self.iteration:
            raise YolactError(f"training failed: {self.skipped_steps} of {self.iteration} steps were skipped "
                              f"(non-finite loss or gradients); weights saved in {self.out / 'last.pt'} are not "
                              f"trustworthy (lower --lr, turn off --amp, or check the data)")
        elapsed = time.time() - log.t0
        summary = {"iterations": self.iteration, "seconds": elapsed, "images_per_s": log.seen / max(elapsed, 1e-9),
                   "skipped_steps": self.skipped_steps, "stopped_early": self.stopped_early}
        if self.best_val is not None:
            summary["best_mask_ap"], summary["best_box_ap"] = self.best_val["mask_ap"], self.best_val["box_ap"]
        return summary
