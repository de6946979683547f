"""The options of one training run (``yolact train``'s flags)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

# The original freezes BatchNorm whenever a process has fewer images than this per batch.
FREEZE_BN_BELOW = 6


@dataclass
class TrainOptions:
    """The options of one run (``yolact train``'s flags). Lengths are iterations (one optimiser
    step of ``batch_size`` images per process) or epochs; ``out`` is the run folder; ``lr`` is the
    rate after warm-up. None takes the preset's value (scaled as the original where noted); the
    options "beyond the original" are off by default."""
    out: str = "runs/train"
    iters: Optional[int] = None
    epochs: Optional[int] = None
    # A wall-clock budget instead of a length (``--time``, hours, as Ultralytics' ``time=``): the
    # length is re-estimated after every epoch from the run's own pace, validation included.
    time_hours: Optional[float] = None
    batch_size: int = 8
    lr: Optional[float] = None          # default: cfg.lr scaled by batch_size / 8
    workers: int = 0
    device: str = "cpu"
    amp: bool = False
    amp_dtype: Optional[str] = None     # "fp16" or "bf16" under amp; None: bf16 on the CPU, fp16 on a GPU
    freeze_bn: Optional[bool] = None    # default: frozen below 6 images per process, as the original
    sync_bn: bool = False
    seed: int = 0
    val_interval: Optional[int] = None  # iterations between evaluations (default: 4 per run)
    save_interval: Optional[int] = None
    log_interval: int = 10
    max_bad_steps: int = 20
    progress: bool = True               # the progress bar
    verbose: bool = True                # notes and validation lines (False: --quiet)
    lr_steps: Optional[Sequence[float]] = None  # fractions of the run; default: the preset's steps
    warmup_iters: Optional[int] = None          # default: the preset's (500, at most 10% of the run) or the recipe's epochs (at most 20%)
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
