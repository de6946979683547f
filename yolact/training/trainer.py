"""Training loop: single process on CPU/GPU, or many through torchrun + DistributedDataParallel.

Exact resume: the checkpoint holds model, optimiser, iteration, epoch and RNG state; the data
order is a function of (seed, epoch) (DistributedSampler) and augmentation of (seed, epoch,
index), so a resumed run replays the same batches as an uninterrupted one.

The pieces, each usable alone: ``build_model`` (seed, init, weights), ``build_optimizer``,
``build_schedule`` (``Schedule``: the original's autoscaled steps and warm-up), ``build_ema``,
``build_loader`` (one epoch's batches from an iteration on), ``TrainLog`` (console, metrics.jsonl,
metrics.csv, TensorBoard, plot), ``Checkpointer`` (atomic files), ``validate`` (box and mask AP)
and ``EarlyStopping``. ``Trainer`` wires them; ``Trainer.train_one_step`` is one optimiser step.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..checkpoint import KeyReport, apply_legacy_rules, atomic_save, compare_keys, read_checkpoint, split_checkpoint
from ..config import YolactConfig
from ..data.coco import CocoDataset, collate
from ..errors import YolactError
from ..loss import YolactCriterion
from ..model.yolact import Yolact
from ..evaluation.coco import evaluate
from ..prediction.predictor import TorchPredictor

# The original freezes BatchNorm whenever a process has fewer images than this per batch.
FREEZE_BN_BELOW = 6
# Parameters whose shape depends on the number of classes (re-initialised when fine-tuning).
CLASS_DEPENDENT = ("prediction_layers.0.conf_layer.", "semantic_seg_conv.", "maskiou_net.maskiou_net.10.")
# The preset's warm-up (500 iterations) is cut to this fraction of shorter runs.
MAX_WARMUP_FRACTION = 0.1


@dataclass
class TrainOptions:
    """The options of one run (``yolact train``'s flags). Lengths are iterations (one optimiser
    step of ``batch_size`` images per process) or epochs; ``out`` is the run folder; ``lr`` is the
    rate after warm-up. None takes the preset's value (scaled as the original where noted); the
    options "beyond the original" are off by default."""
    out: str = "runs/train"
    iters: Optional[int] = None
    epochs: Optional[int] = None
    batch_size: int = 8
    lr: Optional[float] = None          # default: cfg.lr scaled by batch_size / 8
    workers: int = 0
    device: str = "cpu"
    amp: bool = False
    freeze_bn: Optional[bool] = None    # default: frozen below 6 images per process, as the original
    sync_bn: bool = False
    seed: int = 0
    val_interval: Optional[int] = None  # iterations between evaluations (default: 4 per run)
    save_interval: Optional[int] = None
    log_interval: int = 10
    max_bad_steps: int = 20
    progress: bool = True
    lr_steps: Optional[Sequence[float]] = None  # fractions of the run; default: the preset's steps
    warmup_iters: Optional[int] = None          # default: the preset's (500), at most 10% of the run
    optimizer: str = "sgd"  # "sgd" (the original's) or "adamw" (faster from scratch)
    skip_empty: bool = False  # leave images without objects out (the original's choice)
    # Beyond the original, each off by default:
    schedule: str = "step"                  # "step" (the original's) or "cosine" (to 0 after warm-up)
    ema_decay: Optional[float] = None       # EMA of the weights; it is what is evaluated and saved as best.pt
    patience: Optional[int] = None          # stop after this many evaluations without a better val mask AP
    clip_grad_norm: Optional[float] = None  # clip the global gradient norm to this
    # What started the run (e.g. the command line's arguments), stored in every checkpoint so
    # that a resume can start from the file alone. JSON-serialisable; the trainer never reads it.
    run_args: Optional[Dict] = None


# ---------------------------------------------------------------------------- schedule
def lr_at(it: int, base_lr: float, warmup_init: float, warmup: int, steps: Sequence[int], gamma: float,
          schedule: str = "step", max_iter: int = 0) -> float:
    """Linear warm-up from ``warmup_init`` to ``base_lr`` (as the original), then either x gamma
    at each step (the original's) or a cosine from ``base_lr`` to 0 at ``max_iter``."""
    if warmup > 0 and it < warmup:
        return warmup_init + (base_lr - warmup_init) * it / warmup
    if schedule == "cosine":
        span = max(max_iter - warmup, 1)
        return 0.5 * base_lr * (1 + math.cos(math.pi * min(it - warmup, span) / span))
    return base_lr * gamma ** sum(it >= s for s in steps)


@dataclass
class Schedule:
    """The learning rate of every iteration, and the run's length (iterations)."""
    base_lr: float
    warmup_init: float
    warmup: int
    steps: List[int]
    gamma: float
    kind: str
    max_iter: int

    def lr(self, it: int) -> float:
        """The learning rate for iteration ``it`` (0-based: steps taken so far), see :func:`lr_at`;
        the original's ``train.py`` warm-up and ``set_lr`` step decay."""
        return lr_at(it, self.base_lr, self.warmup_init, self.warmup, self.steps, self.gamma, self.kind, self.max_iter)


def build_schedule(cfg: YolactConfig, opts: TrainOptions, batches_per_epoch: int, world: int) -> Tuple[Schedule, List[str]]:
    """The original's autoscale: lr x (global batch / 8); the preset's iterations and steps / the
    same. ``--iters``/``--epochs`` set the length (the preset's steps at the same fractions).
    The preset's warm-up is cut to 10% of shorter runs. Returns the schedule and notes for the user."""
    if opts.schedule not in ("step", "cosine"):
        raise YolactError(f"unknown schedule '{opts.schedule}' (step or cosine)")
    factor = opts.batch_size * world / cfg.batch_size
    base_lr = opts.lr if opts.lr is not None else cfg.lr * factor
    if opts.iters is not None:
        max_iter = opts.iters
    elif opts.epochs is not None:
        max_iter = opts.epochs * batches_per_epoch
    else:  # the preset's schedule, scaled as the original
        max_iter = int(cfg.max_iter // factor)
    if opts.lr_steps is not None:
        steps = [int(f * max_iter) for f in opts.lr_steps]
    elif opts.iters is None and opts.epochs is None:
        steps = [int(st // factor) for st in cfg.lr_steps]
    else:  # the preset's steps at the same fractions of this run
        steps = [int(st / cfg.max_iter * max_iter) for st in cfg.lr_steps]
    notes = []
    warmup = opts.warmup_iters
    if warmup is None:
        warmup = cfg.warmup_until
        cap = int(MAX_WARMUP_FRACTION * max_iter)
        if warmup > cap:
            notes.append(f"warm-up shortened from {warmup} to {cap} iterations: at most "
                         f"{MAX_WARMUP_FRACTION:.0%} of this {max_iter}-iteration run (--warmup-iters sets it)")
            warmup = cap
    return Schedule(base_lr, cfg.warmup_init, warmup, steps, cfg.gamma, opts.schedule, max_iter), notes


# ---------------------------------------------------------------------------- model and weights
def init_weights(model: Yolact) -> None:
    """Xavier-uniform for every conv outside the backbone, zero biases (as the original)."""
    backbone = set(model.backbone.modules())
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m not in backbone:
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def freeze_batchnorm(model: nn.Module) -> None:
    """Every BatchNorm layer to eval mode (running statistics used, not updated), its weight and
    bias no longer trained (the original's ``Yolact.freeze_bn``). ``model.train()`` undoes the
    mode, so the trainer calls this after each ``train()``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def load_finetune_weights(model: Yolact, path: str) -> Dict[str, List[str]]:
    """Load a (possibly official COCO) checkpoint into a model with maybe other classes, with the
    rules of ``predict``: only class-dependent tensors (``CLASS_DEPENDENT``) may be missing or
    differ in shape; they are re-initialised and named in the report. Any other missing,
    unexpected or mismatched key (another backbone, YOLACT++ weights for YOLACT...) raises
    ``YolactError`` naming the first few.

    Returns {'loaded': keys, 'reinitialised': keys, 'ignored': []}.
    """
    sd, _ = split_checkpoint(read_checkpoint(path), path)
    sd = apply_legacy_rules(sd, model.cfg)
    rep = compare_keys(model, sd)
    own = model.state_dict()
    reshaped = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    absent = [k for k in rep["missing"] if k.startswith(CLASS_DEPENDENT)]
    blocking = KeyReport(missing=[k for k in rep["missing"] if not k.startswith(CLASS_DEPENDENT)],
                         unexpected=rep["unexpected"],
                         mismatched=[m for m in rep["mismatched"] if not m.startswith(CLASS_DEPENDENT)])
    if not blocking.ok():
        raise YolactError(f"{path}: does not fit config '{model.cfg.name}' (another backbone or model?): "
                          f"{blocking.summary(limit=4)}")
    model.load_state_dict({k: v for k, v in sd.items() if k not in reshaped}, strict=False)
    return {"loaded": [k for k in sd if k not in reshaped], "reinitialised": reshaped + absent, "ignored": []}


def backbone_key(k: str) -> str:
    """torchvision / original ImageNet names -> our backbone names (layer1.0 -> layers.0.0)."""
    if k.startswith("module."):
        k = k[len("module."):]
    if k.startswith("backbone."):
        k = k[len("backbone."):]
    if k.startswith("layer") and not k.startswith("layers."):
        n, rest = k[len("layer"):].split(".", 1)
        k = f"layers.{int(n) - 1}.{rest}"
    return k


def load_backbone_weights(model: Yolact, path: str) -> Dict[str, List[str]]:
    """ImageNet weights (torchvision or the original's names) into the backbone; the report
    lists loaded, missing and ignored keys. No matching tensor at all raises ``YolactError``."""
    sd = read_checkpoint(path)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = {backbone_key(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    own = model.backbone.state_dict()
    loaded = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
    if not loaded:
        raise YolactError(f"{path}: no tensor matches the {model.cfg.backbone} backbone (wrong file?)")
    model.backbone.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "missing": sorted(k for k in own if k not in loaded),
            "ignored": sorted(k for k in sd if k not in loaded)}


def build_model(cfg: YolactConfig, seed: int, weights: Optional[str] = None,
                backbone_weights: Optional[str] = None) -> Tuple[TorchPredictor, Dict[str, Dict]]:
    """A seeded, initialised model with its criterion, then ImageNet and/or fine-tuning weights.
    -> (model, {'backbone': report, 'weights': report} for what was loaded)."""
    torch.manual_seed(seed)
    # The network with predict() (validation runs it) and its loss; the state dict is the network's.
    model = TorchPredictor(cfg, criterion=YolactCriterion(cfg))
    init_weights(model)
    reports = {}
    if backbone_weights:
        reports["backbone"] = load_backbone_weights(model, backbone_weights)
    if weights:
        reports["weights"] = load_finetune_weights(model, weights)
    return model, reports


def build_optimizer(model: nn.Module, name: str, lr: float, cfg: YolactConfig) -> torch.optim.Optimizer:
    """SGD with the preset's momentum and weight decay (the original's), or AdamW (wd 0.05)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    raise YolactError(f"unknown optimizer '{name}' (sgd or adamw)")


def place_model(model: Yolact, device: torch.device, world: int, freeze_bn: bool, sync_bn: bool):
    """Freeze BatchNorm (optional), move to the device, SyncBatchNorm and DDP with several
    processes. -> (model, DDP wrapper or None)."""
    if freeze_bn:
        freeze_batchnorm(model)
    model.to(device)
    if sync_bn and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else None
    return model, ddp


def ema_avg(decay: float):
    """EMA update for ``AveragedModel``: decay ramps up as (1 + n) / (10 + n) so that the
    average is not dominated by the initial weights in short runs."""
    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        return averaged * d + current * (1 - d)
    return avg


def build_ema(model: nn.Module, decay: Optional[float]):
    """An ``AveragedModel`` of the weights and buffers, or None without a decay."""
    if decay is None:
        return None
    if not 0 < decay < 1:
        raise YolactError(f"EMA decay {decay} must lie in (0, 1)")
    ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=ema_avg(decay), use_buffers=True)
    ema.eval()
    return ema


# ---------------------------------------------------------------------------- data
def training_indices(dataset: CocoDataset, skip_empty: bool) -> List[int]:
    """The dataset items trained on: all, or only those with objects when ``skip_empty``."""
    if not skip_empty:
        return list(range(len(dataset)))
    return [i for i in range(len(dataset)) if dataset.has_objects(i)]


def build_loader(dataset: CocoDataset, indices: Sequence[int], epoch: int, skip_batches: int, batch_size: int,
                 rank: int, world: int, seed: int, workers: int, pin_memory: bool) -> DataLoader:
    """One epoch's batches for this process, from batch ``skip_batches`` on: the order is a
    function of (seed, epoch) (DistributedSampler over ``indices``), the last partial batch dropped."""
    sampler = DistributedSampler(indices, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    order = [indices[j] for j in sampler]
    usable = len(order) // batch_size * batch_size
    order = order[skip_batches * batch_size:usable]
    return DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate, num_workers=workers,
                      drop_last=True, persistent_workers=False, pin_memory=pin_memory)


def background_note(dataset: CocoDataset, skip_empty: bool) -> Optional[str]:
    """'4 of 10 training images have no objects: ...' or None when every image has objects."""
    kept = sum(not dataset.has_objects(i) for i in range(len(dataset)))
    dropped = getattr(dataset, "skipped_background", 0)
    empty = kept + dropped
    if not empty:
        return None
    total = len(dataset) + dropped
    if skip_empty or not kept:
        return f"{empty} of {total} training images have no objects: left out (--no-background)"
    return (f"{empty} of {total} training images have no objects: trained on as background "
            "(--no-background leaves them out)")


# ---------------------------------------------------------------------------- distributed
def _dist_info():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed(device: str) -> torch.device:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = device.startswith("cuda") and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
    return torch.device(device)


def rank0_decides(flag: bool, world: int, device: torch.device) -> bool:
    """Rank 0's decision for every rank (it alone holds the val AP), or DDP would hang."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


# ---------------------------------------------------------------------------- validation
def validate(model: Yolact, val_ann: Optional[str], val_images: Optional[str]) -> Optional[Dict[str, float]]:
    """COCO box and mask AP (0..1) on the val split: {'box_ap', 'mask_ap'} on rank 0, None on
    the other ranks or without a val split. The model is left in eval mode."""
    if not val_ann:
        return None
    model.eval()
    metrics = evaluate(model, val_ann, val_images, progress=False)
    if not metrics:  # not rank 0
        return None
    return {"box_ap": metrics["bbox"]["AP"], "mask_ap": metrics["segm"]["AP"], "coco": metrics}


def save_best_plots(metrics: Dict, out: Path) -> List[Path]:
    """The eval pictures of the best checkpoint (confusion matrix, precision-recall curve) as
    ``best_confusion_matrix.png`` and ``best_pr_curve.png`` in the run folder (issue #18 item 9).
    A plot that fails never stops the run: one line says why."""
    from ..evaluation.metrics import save_eval_plots

    try:
        return save_eval_plots(metrics, out, prefix="best_")
    except Exception as e:  # a picture must never lose a run
        print(f"yolact: could not draw the best checkpoint's eval plots: {e}")
        return []


class EarlyStopping:
    """The best val mask AP so far and the evaluations since it improved (``patience``: None
    never stops)."""

    def __init__(self, patience: Optional[int] = None):
        self.patience = patience
        self.best_ap = -1.0  # -1: no evaluation yet
        self.bad_evals = 0

    def update(self, ap: float) -> bool:
        """Record one evaluation; True when it is the best so far."""
        if ap > self.best_ap:
            self.best_ap, self.bad_evals = ap, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def exhausted(self) -> bool:
        """True once ``patience`` evaluations in a row brought no better AP (never without one)."""
        return self.patience is not None and self.bad_evals >= self.patience


# ---------------------------------------------------------------------------- logging and files
class TrainLog:
    """Console (tqdm bar and lines), metrics.jsonl, TensorBoard, then metrics.csv and the plot.
    Only rank 0 writes. ``history`` (the caller's list) gets every record."""

    SHOWN = ("total", "box", "conf", "mask", "lr")

    def __init__(self, out: Path, rank: int, history: List[Dict], log_interval: int, progress: bool,
                 total: int, initial: int):
        self.out, self.rank, self.history, self.log_interval = out, rank, history, log_interval
        self.main = rank == 0
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="it", disable=not progress or not self.main,
                        dynamic_ncols=True)
        self.tb = self._tensorboard() if self.main else None
        self.running: Dict[str, float] = {}
        self.t0, self.seen = time.time(), 0

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
            return SummaryWriter(str(self.out / "tb"))
        except Exception:
            return None

    def write(self, line: str) -> None:
        """Print a line above the progress bar (rank 0 only)."""
        if self.main:
            self.bar.write(line)

    def _append(self, rec: Dict) -> None:
        self.history.append(rec)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def step(self, iteration: int, epoch: int, res: Optional[Dict[str, float]], images: int, skipped: int) -> None:
        """After each iteration: the bar, and every ``log_interval`` (and the first) a record."""
        self.seen += images
        self.bar.update(1)
        if res is None:
            return
        for k, v in res.items():
            self.running[k] = 0.9 * self.running.get(k, v) + 0.1 * v if k != "lr" else v
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.running.items() if k in self.SHOWN})
        if self.main and (iteration % self.log_interval == 0 or iteration == 1):
            self._append({"iteration": iteration, "epoch": epoch, **res, "images_per_s": self.images_per_s(),
                          "skipped_steps": skipped})
            if self.tb:
                for k, v in res.items():
                    self.tb.add_scalar(f"train/{k}", v, iteration)

    def validation(self, iteration: int, box_ap: float, mask_ap: float) -> None:
        """Record one evaluation (APs 0..1) in the history, metrics.jsonl and TensorBoard, and print
        it in percent (rank 0 only)."""
        if not self.main:
            return
        self._append({"iteration": iteration, "val_box_ap": box_ap, "val_mask_ap": mask_ap})
        if self.tb:
            self.tb.add_scalar("val/box_AP", box_ap, iteration)
            self.tb.add_scalar("val/mask_AP", mask_ap, iteration)
        self.write(f"iteration {iteration}: val box AP {100 * box_ap:.2f}, mask AP {100 * mask_ap:.2f}")

    def images_per_s(self) -> float:
        """Images of all processes trained per second of wall time since the log was made."""
        return self.seen / max(time.time() - self.t0, 1e-9)

    def close(self) -> None:
        """Close the progress bar and the TensorBoard writer."""
        self.bar.close()
        if self.tb:
            self.tb.close()

    def finish(self) -> None:
        """metrics.csv (training and validation rows) and training.png."""
        if not self.main:
            return
        write_csv(self.history, self.out / "metrics.csv")
        try:
            plot_history(self.history, self.out / "training.png")
        except Exception as e:  # a plot must never lose a finished run
            print(f"yolact: could not draw the training plot: {e}")


def write_csv(history: List[Dict], path: Path) -> None:
    """One row per record (training losses or validation APs), the union of their columns."""
    if not history:
        return
    keys = sorted({k for r in history for k in r} - {"iteration"})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["iteration"] + keys)
        w.writeheader()
        w.writerows(history)


class Checkpointer:
    """Atomic checkpoint files in the run folder, written by rank 0 only."""

    def __init__(self, out: Path, rank: int):
        self.out, self.rank = out, rank

    def save(self, name: str, state: Dict) -> Path:
        """Write ``state`` to ``out/name`` atomically (rank 0; other ranks write nothing) and
        return the path. OSError propagates."""
        path = self.out / name
        if self.rank == 0:
            atomic_save(state, path)
        return path


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
class Trainer:
    """One training run. ``train_set``: a ``CocoDataset`` (with ``cfg`` set); ``val_ann`` and
    ``val_images``: the val split (optional); ``weights``: a checkpoint to fine-tune from;
    ``backbone_weights``: ImageNet weights. ``train()`` runs to the end (or to early stopping,
    or a signal: then last.pt is saved and KeyboardInterrupt raised) and returns a summary."""

    def __init__(self, cfg: YolactConfig, train_set: CocoDataset, opts: TrainOptions,
                 val_ann: Optional[str] = None, val_images: Optional[str] = None,
                 weights: Optional[str] = None, backbone_weights: Optional[str] = None):
        self.cfg, self.opts, self.train_set = cfg, opts, train_set
        self.val_ann, self.val_images = val_ann, val_images
        self.rank, self.world = _dist_info()
        self.device = torch.device(opts.device)
        self.out = Path(opts.out)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self.model, self.reports = build_model(cfg, opts.seed, weights, backbone_weights)
        # The original trains BatchNorm only with at least 6 images per process (per GPU).
        self.freeze_bn = opts.freeze_bn if opts.freeze_bn is not None else opts.batch_size < FREEZE_BN_BELOW
        self.model, self.ddp = place_model(self.model, self.device, self.world, self.freeze_bn, opts.sync_bn)
        self.notes: List[str] = []
        self.indices = self._training_images()
        self.batches_per_epoch = max(1, len(self.indices) // (opts.batch_size * self.world))
        self.schedule, notes = build_schedule(cfg, opts, self.batches_per_epoch, self.world)
        self.notes += notes
        self.base_lr, self.max_iter = self.schedule.base_lr, self.schedule.max_iter
        self.lr_steps, self.warmup = self.schedule.steps, self.schedule.warmup
        self.optimizer = build_optimizer(self.model, opts.optimizer, self.base_lr, cfg)
        self.ema = build_ema(self.model, opts.ema_decay)
        self.stopping = EarlyStopping(opts.patience)
        self.checkpoints = Checkpointer(self.out, self.rank)
        self.iteration, self.bad_steps, self.skipped_steps = 0, 0, 0
        self.stopped_early = False
        self.best_val: Optional[Dict[str, float]] = None
        self.history: List[Dict] = []
        self.scaler = torch.amp.GradScaler("cuda", enabled=opts.amp and self.device.type == "cuda")
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
                "history": json.dumps(self.history), "options": json.dumps(asdict(self.opts)),
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
        return self.checkpoints.save(name, state)

    def resume(self, path: str) -> None:
        """Continue a run from its last.pt exactly (model, optimiser, EMA, counters, RNG)."""
        obj = read_checkpoint(path)
        if "optimizer" not in obj or "iteration" not in obj:
            raise YolactError(f"{path}: not a training checkpoint (no optimiser state); use --weights to fine-tune")
        if YolactConfig.from_dict(obj["config"]) != self.cfg:
            raise YolactError(f"{path}: was trained with another config or class list; cannot resume")
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
        self.stopping.best_ap = float(obj["best_ap"])
        self.stopping.bad_evals = int(obj.get("bad_evals", 0))
        self.best_val = json.loads(obj.get("best_val", "null"))
        self.skipped_steps = int(obj.get("skipped_steps", 0))
        self.history = json.loads(obj.get("history", "[]"))
        torch.set_rng_state(obj["rng_torch"])

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
        amp_dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        with torch.autocast(self.device.type, dtype=amp_dtype, enabled=self.opts.amp):
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
        res = self.validate()
        if self.rank == 0 and res is not None:
            log.validation(self.iteration, res["box_ap"], res["mask_ap"])
            if self.stopping.update(res["mask_ap"]):
                self.best_val = {"iteration": self.iteration, "box_ap": res["box_ap"], "mask_ap": res["mask_ap"]}
                self.save("best.pt", self.eval_model())
                save_best_plots(res["coco"], self.out)
        if self.iteration < self.max_iter and rank0_decides(self.stopping.exhausted, self.world, self.device):
            log.write(f"iteration {self.iteration}: no better val mask AP in {self.opts.patience} "
                      f"evaluations; stopping (best {100 * self.stopping.best_ap:.2f})")
            return True
        return False

    # ------------------------------------------------------------------ the loop
    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        return build_loader(self.train_set, self.indices, epoch, skip_batches, self.opts.batch_size, self.rank,
                            self.world, self.opts.seed, self.opts.workers, self.device.type == "cuda")

    def _run_epochs(self, log: TrainLog, val_interval: int, save_interval: int) -> None:
        while self.iteration < self.max_iter:
            epoch, skip = divmod(self.iteration, self.batches_per_epoch)
            for images, targets in self._loader(epoch, skip):
                if self.iteration >= self.max_iter or self._stop_signal:
                    break
                res = self._step(images, targets)
                self.iteration += 1
                log.step(self.iteration, epoch, res, images.shape[0] * self.world, self.skipped_steps)
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
                raise KeyboardInterrupt

    def train(self) -> Dict:
        """Run to ``max_iter``; last.pt and best.pt (the best val mask AP, or the last weights
        without a val split), metrics.jsonl/.csv and training.png in ``opts.out``.

        Returns {'iterations', 'seconds', 'images_per_s', 'skipped_steps', 'stopped_early'} and,
        with a val split, 'best_mask_ap' and 'best_box_ap' (0..1, at the best checkpoint)."""
        opts = self.opts
        val_interval = opts.val_interval or max(1, self.max_iter // 4)
        save_interval = opts.save_interval or max(1, min(val_interval, 500))
        log = TrainLog(self.out, self.rank, self.history, opts.log_interval, opts.progress, self.max_iter,
                       self.iteration)
        for note in self.notes:
            log.write(note)
        try:
            with catch_stop_signals(self._handle_signal):
                self._run_epochs(log, val_interval, save_interval)
        finally:
            log.close()
        self.save("last.pt")
        if self.rank == 0:
            if self.best_val is None:  # no validation set: the last weights are the best we know
                self.save("best.pt", self.eval_model())
            log.finish()
        elapsed = time.time() - log.t0
        summary = {"iterations": self.iteration, "seconds": elapsed, "images_per_s": log.seen / max(elapsed, 1e-9),
                   "skipped_steps": self.skipped_steps, "stopped_early": self.stopped_early}
        if self.best_val is not None:
            summary["best_mask_ap"], summary["best_box_ap"] = self.best_val["mask_ap"], self.best_val["box_ap"]
        return summary


def plot_history(history: List[Dict], path: Path) -> None:
    """Draw training.png at ``path``: the loss terms per iteration (log scale) and, with
    validation records, box and mask AP in percent. Matplotlib errors propagate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if "total" in h]
    val = [h for h in history if "val_mask_ap" in h]
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(11 if val else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for k in ("total", "box", "conf", "mask", "semantic", "maskiou"):
        pts = [(h["iteration"], h[k]) for h in train if k in h]
        if pts:
            ax.plot(*zip(*pts), label=k, lw=1.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("training losses")
    if val:
        ax = axes[0, 1]
        for key, label in (("val_box_ap", "box AP"), ("val_mask_ap", "mask AP")):
            pts = [(h["iteration"], 100 * h[key]) for h in val if key in h]
            if pts:
                ax.plot(*zip(*pts), "o-", label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel("AP")
        ax.legend()
        ax.set_title("validation AP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
