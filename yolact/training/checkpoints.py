"""Checkpoint files of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from ..checkpoint import atomic_save


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
