"""Training loop: single process on CPU/GPU, or many through torchrun + DistributedDataParallel.

Exact resume: the checkpoint holds model, optimiser, iteration, epoch and RNG state; the data
order is a function of (seed, epoch) (DistributedSampler) and augmentation of (seed, epoch,
index), so a resumed run replays the same batches as an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..checkpoint import atomic_save, compare_keys, read_checkpoint, split_checkpoint, apply_legacy_rules
from ..config import YolactConfig
from ..data.coco import CocoDataset, collate
from ..errors import YolactError
from ..loss import YolactLoss
from ..model.yolact import Yolact
from .predictor import TorchPredictor
from .evaluate import evaluate

# The original freezes BatchNorm whenever a process has fewer images than this per batch.
FREEZE_BN_BELOW = 6
# Parameters whose shape depends on the number of classes (re-initialised when fine-tuning).
CLASS_DEPENDENT = ("prediction_layers.0.conf_layer.", "semantic_seg_conv.", "maskiou_net.maskiou_net.10.")


@dataclass
class TrainOptions:
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
    warmup_iters: Optional[int] = None          # default: the preset's (500)
    optimizer: str = "sgd"  # "sgd" (the original's) or "adamw" (faster from scratch)
    # Beyond the original, each off by default:
    schedule: str = "step"                  # "step" (the original's) or "cosine" (to 0 after warm-up)
    ema_decay: Optional[float] = None       # EMA of the weights; it is what is evaluated and saved as best.pt
    patience: Optional[int] = None          # stop after this many evaluations without a better val mask AP
    clip_grad_norm: Optional[float] = None  # clip the global gradient norm to this


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


def ema_avg(decay: float):
    """EMA update for ``AveragedModel``: decay ramps up as (1 + n) / (10 + n) so that the
    average is not dominated by the initial weights in short runs."""
    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        return averaged * d + current * (1 - d)
    return avg


def init_weights(model: Yolact) -> None:
    """Xavier-uniform for every conv outside the backbone, zero biases (as the original)."""
    backbone = set(model.backbone.modules())
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m not in backbone:
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def freeze_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def load_finetune_weights(model: Yolact, path: str) -> Dict[str, List[str]]:
    """Load a (possibly official COCO) checkpoint into a model with maybe other classes:
    class-dependent layers whose shapes differ are re-initialised and reported."""
    sd, _ = split_checkpoint(read_checkpoint(path), path)
    sd = apply_legacy_rules(sd, model.cfg)
    rep = compare_keys(model, sd)
    own = model.state_dict()
    reinit = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    bad = [k for k in reinit if not k.startswith(CLASS_DEPENDENT)]
    if bad:
        raise YolactError(f"{path}: shapes differ outside the class-dependent layers: {', '.join(bad[:5])}")
    missing = [k for k in rep["missing"] if not k.startswith(CLASS_DEPENDENT)]
    if missing:
        raise YolactError(f"{path}: checkpoint lacks {len(missing)} keys of '{model.cfg.name}': {', '.join(missing[:5])}")
    model.load_state_dict({k: v for k, v in sd.items() if k in own and k not in reinit}, strict=False)
    return {"loaded": [k for k in sd if k in own and k not in reinit], "reinitialised": reinit,
            "ignored": rep["unexpected"]}


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


class Trainer:
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
        torch.manual_seed(opts.seed)
        self.model = TorchPredictor(cfg, criterion=YolactLoss(cfg))
        init_weights(self.model)
        self.reports = {}
        if backbone_weights:
            self.reports["backbone"] = load_backbone_weights(self.model, backbone_weights)
        if weights:
            self.reports["weights"] = load_finetune_weights(self.model, weights)
        # The original trains BatchNorm only with at least 6 images per process (per GPU).
        self.freeze_bn = opts.freeze_bn if opts.freeze_bn is not None else opts.batch_size < FREEZE_BN_BELOW
        if self.freeze_bn:
            freeze_batchnorm(self.model)
        self.model.to(self.device)
        if opts.sync_bn and self.world > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.ddp = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if self.world > 1 else None
        # The original's autoscale: lr x (global batch / 8); iterations and steps / the same.
        global_batch = opts.batch_size * self.world
        factor = global_batch / cfg.batch_size
        self.base_lr = opts.lr if opts.lr is not None else cfg.lr * factor
        params = [p for p in self.model.parameters() if p.requires_grad]
        if opts.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=self.base_lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay)
        elif opts.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=self.base_lr, weight_decay=0.05)
        else:
            raise YolactError(f"unknown optimizer '{opts.optimizer}' (sgd or adamw)")
        self.batches_per_epoch = max(1, len(train_set) // global_batch)
        if opts.iters is not None:
            self.max_iter = opts.iters
        elif opts.epochs is not None:
            self.max_iter = opts.epochs * self.batches_per_epoch
        else:  # the preset's schedule, scaled as the original
            self.max_iter = int(cfg.max_iter // factor)
        if opts.lr_steps is not None:
            self.lr_steps = [int(f * self.max_iter) for f in opts.lr_steps]
        elif opts.iters is None and opts.epochs is None:
            self.lr_steps = [int(st // factor) for st in cfg.lr_steps]
        else:  # the preset's steps at the same fractions of this run
            self.lr_steps = [int(st / cfg.max_iter * self.max_iter) for st in cfg.lr_steps]
        if opts.schedule not in ("step", "cosine"):
            raise YolactError(f"unknown schedule '{opts.schedule}' (step or cosine)")
        self.warmup = opts.warmup_iters if opts.warmup_iters is not None else cfg.warmup_until
        self.ema = None
        if opts.ema_decay is not None:
            if not 0 < opts.ema_decay < 1:
                raise YolactError(f"EMA decay {opts.ema_decay} must lie in (0, 1)")
            self.ema = torch.optim.swa_utils.AveragedModel(self.model, avg_fn=ema_avg(opts.ema_decay), use_buffers=True)
            self.ema.eval()
        self.iteration, self.best_ap, self.bad_steps, self.skipped_steps = 0, -1.0, 0, 0
        self.bad_evals, self.stopped_early = 0, False
        self.history: List[Dict] = []
        self.scaler = torch.amp.GradScaler("cuda", enabled=opts.amp and self.device.type == "cuda")
        self._stop_signal: Optional[str] = None

    # ------------------------------------------------------------------ state
    def state(self) -> Dict:
        return {"format": "yolact-py/1", "config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "optimizer_name": self.opts.optimizer,
                "iteration": self.iteration, "best_ap": self.best_ap,
                "skipped_steps": self.skipped_steps, "bad_evals": self.bad_evals, "rng_torch": torch.get_rng_state(),
                "base_lr": self.base_lr, "max_iter": self.max_iter, "history": json.dumps(self.history),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {})}

    def eval_model(self) -> Yolact:
        """What is evaluated and saved as best.pt: the EMA when on, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def save(self, name: str, weights: Optional[nn.Module] = None) -> Path:
        """Write the training state; ``weights`` replaces the model's (best.pt holds the EMA)."""
        path = self.out / name
        if self.rank == 0:
            state = self.state()
            if weights is not None:
                state["model"] = weights.state_dict()
            atomic_save(state, path)
        return path

    def resume(self, path: str) -> None:
        obj = read_checkpoint(path)
        if "optimizer" not in obj or "iteration" not in obj:
            raise YolactError(f"{path}: not a training checkpoint (no optimiser state); use --weights to fine-tune")
        if YolactConfig.from_dict(obj["config"]) != self.cfg:
            raise YolactError(f"{path}: was trained with another config or class list; cannot resume")
        trained_with = obj.get("optimizer_name", "sgd")  # files from before the option used SGD
        if trained_with != self.opts.optimizer:
            raise YolactError(f"{path}: was trained with --optimizer {trained_with}; resume with the same optimizer")
        self.model.load_state_dict(obj["model"])
        self.optimizer.load_state_dict(obj["optimizer"])
        self.iteration, self.best_ap = int(obj["iteration"]), float(obj["best_ap"])
        self.skipped_steps = int(obj.get("skipped_steps", 0))
        self.bad_evals = int(obj.get("bad_evals", 0))
        self.history = json.loads(obj.get("history", "[]"))
        if self.ema is not None:
            if "ema" not in obj:
                raise YolactError(f"{path}: was trained without --ema; resume without it")
            self.ema.load_state_dict(obj["ema"])
        elif "ema" in obj:
            raise YolactError(f"{path}: was trained with --ema; resume with it")
        torch.set_rng_state(obj["rng_torch"])

    # ------------------------------------------------------------------ loop
    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank, shuffle=True,
                                     seed=self.opts.seed, drop_last=True)
        sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        order = list(sampler)
        usable = len(order) // self.opts.batch_size * self.opts.batch_size
        order = order[skip_batches * self.opts.batch_size:usable]
        return DataLoader(self.train_set, batch_size=self.opts.batch_size, sampler=order, collate_fn=collate,
                          num_workers=self.opts.workers, drop_last=True,
                          persistent_workers=False, pin_memory=self.device.type == "cuda")

    def _step(self, images, targets) -> Optional[Dict[str, float]]:
        # The warm-up starts from the preset's absolute warmup_init, as the original.
        lr = lr_at(self.iteration, self.base_lr, self.cfg.warmup_init, self.warmup, self.lr_steps, self.cfg.gamma,
                   self.opts.schedule, self.max_iter)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        images = images.to(self.device, non_blocking=True)
        targets = [{k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
        net = self.ddp or self.model
        net.train()
        if self.freeze_bn:
            freeze_batchnorm(self.model)
        amp_dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        with torch.autocast(self.device.type, dtype=amp_dtype, enabled=self.opts.amp):
            losses = net(images, targets)
        total = losses["total"]
        finite = torch.isfinite(total)
        if self.world > 1:  # every rank must agree to skip, or DDP would hang
            flag = finite.float().to(self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag > 0
        self.optimizer.zero_grad(set_to_none=True)
        if not bool(finite):
            self.bad_steps += 1
            self.skipped_steps += 1
            if self.bad_steps >= self.opts.max_bad_steps:
                raise YolactError(f"training diverged: {self.bad_steps} consecutive non-finite losses at "
                                  f"iteration {self.iteration} (lower --lr, or check the data)")
            return None
        self.bad_steps = 0
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not all(torch.isfinite(g).all() for g in grads):
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
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

    def _handle_signal(self, signum, frame):
        self._stop_signal = signal.Signals(signum).name

    def validate(self) -> Optional[float]:
        if not self.val_ann:
            return None
        model = self.eval_model()
        model.eval()
        metrics = evaluate(model, self.val_ann, self.val_images, progress=False)
        self.model.train()
        if self.rank == 0:
            return metrics["segm"]["AP"]
        return None

    def train(self) -> Dict:
        opts = self.opts
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self._handle_signal)
            except ValueError:  # not the main thread
                pass
        val_interval = opts.val_interval or max(1, self.max_iter // 4)
        save_interval = opts.save_interval or max(1, min(val_interval, 500))
        bar = tqdm(total=self.max_iter, initial=self.iteration, desc="train", unit="it",
                   disable=not opts.progress or self.rank != 0, dynamic_ncols=True)
        log_path = self.out / "metrics.jsonl"
        tb = self._tensorboard()
        t0, seen = time.time(), 0
        running: Dict[str, float] = {}
        try:
            while self.iteration < self.max_iter:
                epoch, skip = divmod(self.iteration, self.batches_per_epoch)
                for images, targets in self._loader(epoch, skip):
                    if self.iteration >= self.max_iter or self._stop_signal:
                        break
                    res = self._step(images, targets)
                    self.iteration += 1
                    seen += images.shape[0] * self.world
                    bar.update(1)
                    if res is not None:
                        for k, v in res.items():
                            running[k] = 0.9 * running.get(k, v) + 0.1 * v if k != "lr" else v
                        bar.set_postfix({k: f"{v:.3g}" for k, v in running.items() if k in ("total", "box", "conf", "mask", "lr")})
                    if self.rank == 0 and res is not None and (self.iteration % opts.log_interval == 0 or self.iteration == 1):
                        rec = {"iteration": self.iteration, "epoch": epoch, **res,
                               "images_per_s": seen / max(time.time() - t0, 1e-9), "skipped_steps": self.skipped_steps}
                        self.history.append(rec)
                        with open(log_path, "a") as f:
                            f.write(json.dumps(rec) + "\n")
                        if tb:
                            for k, v in res.items():
                                tb.add_scalar(f"train/{k}", v, self.iteration)
                    if self.iteration % save_interval == 0:
                        self.save("last.pt")
                    if self.iteration % val_interval == 0 or self.iteration == self.max_iter:
                        ap = self.validate()
                        if self.rank == 0 and ap is not None:
                            self.history.append({"iteration": self.iteration, "val_mask_ap": ap})
                            with open(log_path, "a") as f:
                                f.write(json.dumps({"iteration": self.iteration, "val_mask_ap": ap}) + "\n")
                            if tb:
                                tb.add_scalar("val/mask_AP", ap, self.iteration)
                            bar.write(f"iteration {self.iteration}: val mask AP {100 * ap:.2f}")
                            if ap > self.best_ap:
                                self.best_ap, self.bad_evals = ap, 0
                                self.save("best.pt", self.eval_model())
                            else:
                                self.bad_evals += 1
                        if (opts.patience is not None and self.iteration < self.max_iter
                                and self._agree(self.bad_evals >= opts.patience)):
                            self.stopped_early = True
                            if self.rank == 0:
                                bar.write(f"iteration {self.iteration}: no better val mask AP in {opts.patience} "
                                          f"evaluations; stopping (best {100 * self.best_ap:.2f})")
                            break
                if self.stopped_early:
                    break
                if self._stop_signal:
                    path = self.save("last.pt")
                    bar.write(f"{self._stop_signal}: saved {path} at iteration {self.iteration}; "
                              f"resume with --resume {path}")
                    raise KeyboardInterrupt
        finally:
            bar.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
            if tb:
                tb.close()
        self.save("last.pt")
        if self.rank == 0:
            if self.best_ap < 0:  # no validation set: the last weights are the best we know
                self.save("best.pt", self.eval_model())
            self._write_csv()
            try:
                plot_history(self.history, self.out / "training.png")
            except Exception as e:  # a plot must never lose a finished run
                print(f"yolact: could not draw the training plot: {e}")
        elapsed = time.time() - t0
        return {"iterations": self.iteration, "best_mask_ap": self.best_ap, "seconds": elapsed,
                "images_per_s": seen / max(elapsed, 1e-9), "skipped_steps": self.skipped_steps,
                "stopped_early": self.stopped_early}

    def _agree(self, flag: bool) -> bool:
        """Rank 0 decides (it alone holds the val AP); every rank follows, or DDP would hang."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def _tensorboard(self):
        if self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
            return SummaryWriter(str(self.out / "tb"))
        except Exception:
            return None

    def _write_csv(self) -> None:
        rows = [h for h in self.history if "total" in h]
        if not rows:
            return
        keys = sorted({k for r in rows for k in r})
        with open(self.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


def plot_history(history: List[Dict], path: Path) -> None:
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
        ax.plot([h["iteration"] for h in val], [100 * h["val_mask_ap"] for h in val], "o-")
        ax.set_xlabel("iteration")
        ax.set_ylabel("mask AP")
        ax.set_title("validation mask AP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
