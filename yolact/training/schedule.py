"""The learning rate of every iteration: the original's warm-up and step decay (or a cosine),
and the run's length, autoscaled with the global batch as the original."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..config import YolactConfig
from ..errors import YolactError
from .options import TrainOptions

# The preset's warm-up (500 iterations) is cut to this fraction of shorter runs.
MAX_WARMUP_FRACTION = 0.1


def lr_at(it: int, base_lr: float, warmup_init: float, warmup: int, steps: Sequence[int], gamma: float,
          schedule: str = "step", max_iter: int = 0, final_fraction: float = 0.01) -> float:
    """Linear warm-up from ``warmup_init`` to ``base_lr`` (as the original), then either x gamma
    at each step (the original's), a cosine from ``base_lr`` to 0 at ``max_iter``, or a linear
    decay from ``base_lr`` to ``base_lr x final_fraction`` at ``max_iter`` (Ultralytics')."""
    if warmup > 0 and it < warmup:
        return warmup_init + (base_lr - warmup_init) * it / warmup
    if schedule == "linear":
        span = max(max_iter - warmup, 1)
        return base_lr * (1 - (1 - final_fraction) * min(it - warmup, span) / span)
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
    final_fraction: float = 0.01

    def lr(self, it: int) -> float:
        """The learning rate for iteration ``it`` (0-based: steps taken so far), see :func:`lr_at`;
        the original's ``train.py`` warm-up and ``set_lr`` step decay."""
        return lr_at(it, self.base_lr, self.warmup_init, self.warmup, self.steps, self.gamma, self.kind, self.max_iter,
                     self.final_fraction)


def build_schedule(cfg: YolactConfig, opts: TrainOptions, batches_per_epoch: int, world: int,
                   recipe_lr: Optional[float] = None) -> Tuple[Schedule, List[str]]:
    """The original's autoscale: lr x (global batch / 8), of the recipe's lr (``recipe_lr``, for
    a batch of 8) or else the preset's; ``opts.lr`` (``--lr``) is taken as given. The preset's
    iterations and steps / the same factor. ``--iters``/``--epochs`` set the length (the preset's
    steps at the same fractions). The preset's warm-up is cut to 10% of shorter runs. Returns the
    schedule and notes for the user."""
    if opts.schedule not in ("step", "cosine", "linear"):
        raise YolactError(f"unknown schedule '{opts.schedule}' (step, cosine or linear)")
    factor = opts.batch_size * world / cfg.batch_size
    base_lr = opts.lr if opts.lr is not None else (cfg.lr if recipe_lr is None else recipe_lr) * factor
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
            notes.append(f"note: warm-up shortened from {warmup} iterations to {cap or 'none'}: at most "
                         f"{MAX_WARMUP_FRACTION:.0%} of this {max_iter}-iteration run (--warmup-iters sets it)")
            warmup = cap
    return Schedule(base_lr, cfg.warmup_init, warmup, steps, cfg.gamma, opts.schedule, max_iter), notes
