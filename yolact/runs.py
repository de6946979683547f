"""Run folders: where a verb (or ``yolact.training.train``) writes its files."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def run_dir(out: Optional[str], default: str, exist_ok: bool = False) -> Path:
    """The output folder of a verb: ``out`` when given; else ``default`` (``runs/predict``) when it
    does not exist yet or ``exist_ok``, else the first free ``default2``, ``default3``, ... so a
    second run never mixes its files with the first one's. The folder is not created here."""
    if out:
        return Path(out)
    base = Path(default)
    if exist_ok or not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}{n}").exists():
        n += 1
    return base.with_name(f"{base.name}{n}")
