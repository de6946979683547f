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


LOCK_NAME = ".yolact-run.lock"


@contextmanager
def run_lock(path: Path) -> Iterator[Path]:
    """Context for a run writing into folder ``path`` (made if missing): holds an exclusive lock,
    ``<path>/.yolact-run.lock`` holding this process's pid, so a second run into the same folder
    at the same time stops at once. The lock is the kernel's (``flock``): a run killed even with
    SIGKILL leaves no stale lock, only the file, which the next run takes over; the file is
    removed on leaving. Raises YolactError naming the folder and the other process's pid. Where
    ``fcntl`` is missing (Windows) no lock is taken."""
    import os

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs are not guarded there
        yield path
        return
    lock = path / LOCK_NAME
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            from .errors import YolactError

            raise YolactError(f"{path}: another yolact run (pid {pid}) is writing into this folder; wait for it "
                              "to end, or give another --out") from None
        try:  # the file may have been removed by the holder we waited on: lock the one the path names
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        try:
            os.unlink(lock)  # while still held: a later run makes a fresh file
        except OSError:
            pass
        os.close(fd)  # releases the flock
