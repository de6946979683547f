"""A run's wall-clock: the time it has trained over all its resumes, and ``--time``'s budget
(Ultralytics' ``time=``): after every epoch, the length in whole epochs that fits what is left
at the run's mean pace so far, validation included."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from ..errors import YolactError


class RunClock:
    """Seconds of wall-clock a run has trained (validation and checkpoints included), counted on
    across resumes (``used_before``: from the checkpoint), and the ``--time`` budget in seconds
    (None: the run has a length instead). ``clock``: seconds, monotonic (tests give their own)."""

    def __init__(self, hours: Optional[float] = None, clock=time.monotonic):
        self.budget_s = hours * 3600 if hours is not None else None
        self.used_before, self.clock = 0.0, clock
        self.last_validation_s = 0.0  # what the final validation is expected to cost
        self.estimated = False        # whether a length was fitted yet (the pace is measured)
        self._start: Optional[float] = None

    def start(self) -> None:
        """Training starts (or resumes) now: the clock goes on from ``used_before``."""
        self._start = self.clock() - self.used_before

    def elapsed(self) -> float:
        return self.used_before if self._start is None else self.clock() - self._start

    def spent(self) -> bool:
        """True when what is left of the budget would not hold the final validation."""
        return self.elapsed() + self.last_validation_s >= self.budget_s

    def epochs_that_fit(self, iterations: int, batches_per_epoch: int, current_epochs: int) -> int:
        """The run's length in epochs at its mean pace so far (``iterations`` done), the final
        validation's time kept. One epoch more than ``current_epochs`` keeps the current length:
        the pace wobbles by a validation from epoch to epoch, and a length that moves up and down
        moves the learning rate with it; fewer epochs are taken at once (else the stop cuts the
        decay short)."""
        per_iteration = self.elapsed() / max(iterations, 1)
        epochs = max(1, round((self.budget_s - self.last_validation_s) / per_iteration / batches_per_epoch))
        if self.estimated and current_epochs <= epochs <= current_epochs + 1:
            return current_epochs
        return epochs

    def check_resumable(self, path: str) -> str:
        """A resume under ``--time``: YolactError when the budget is spent; else the note saying
        what is left."""
        hours, used = self.budget_s / 3600, self.used_before / 3600
        if self.used_before >= self.budget_s:
            raise YolactError(f"{path}: the run has trained {used:.3f} h, not less than --time {hours:g} (its weights "
                              f"are {Path(path).parent / 'last.pt'} and best.pt): a --time over {used:.3f} continues "
                              f"it, --weights {path} starts a new run from it")
        return f"note: --time {hours:g} h counts the run's {used:.3f} h so far: {hours - used:.3f} h left"
