"""Run folders: where a verb (or ``yolact.training.train``) writes its files."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


def run_dir(out: Optional[str], default: str, exist_ok: bool = False) -> Path:
    """The output folder of a verb: ``out`` when given; else ``default`` (``runs/predict``) when it
    does not exist yet or ``exist_ok``, else the first free ``default2``, ``default3``, ... so a
    second run never mixes its files with the first one's. The folder is not created here.
    Raises YolactError when ``out`` names an existing file (a folder is meant)."""
    if out:
        if Path(out).exists() and not Path(out).is_dir():
            from .errors import YolactError

            raise YolactError(f"--out {out}: is a file; a folder is meant")
        return Path(out)
    base = Path(default)
    if exist_ok or not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}{n}").exists():
        n += 1
    return base.with_name(f"{base.name}{n}")


@contextmanager
def removed_if_failed(path: Path) -> Iterator[Path]:
    """Context for a run writing into ``path``: when the body raises (an error, Ctrl-C) and the
    folder did not exist before, the folders it left without any file are removed, so a failed
    run leaves no empty run folder (files it did write are kept). Re-raises the error."""
    path = Path(path)
    made = [p for p in (path, *path.parents) if not p.exists()]  # this run's folders (runs/, runs/predict)
    try:
        yield path
    except BaseException:
        if made and path.is_dir():
            for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(sub.iterdir()):
                    sub.rmdir()
            for folder in made:  # deepest first
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise
