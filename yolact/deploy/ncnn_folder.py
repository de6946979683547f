"""The files of an NCNN model folder (``NAME_ncnn/``) and how a finished one is put in place,
shared by the exporter (:mod:`yolact.deploy.ncnn`) and the int8 quantiser
(:mod:`yolact.deploy.ncnn_int8`), which import it and not each other."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Optional

from ..errors import YolactError

PARAM, BIN, META = "model.ncnn.param", "model.ncnn.bin", "metadata.json"


def replace_dir(tmp: Path, path: Path) -> None:
    """Put the finished folder ``tmp`` at ``path``, replacing what is there: a folder is swapped
    in by renames, so ``path`` is never a half-written folder."""
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def file_record(folder: Path) -> dict:
    """What ``metadata.json`` records of the model files (``files``): the ``.param``'s size and
    SHA-256 and the ``.bin``'s size, so that a loader can tell a pair that was not exported
    together (NCNN runs a mismatched pair: wrong numbers, or a crash)."""
    param, weights = folder / PARAM, folder / BIN
    return {PARAM: {"bytes": param.stat().st_size, "sha256": hashlib.sha256(param.read_bytes()).hexdigest()},
            BIN: {"bytes": weights.stat().st_size}}


def check_files(folder: Path, param: Path, weights: Path, meta: Optional[dict]) -> None:
    """Raise YolactError (one line) when the folder's ``.param``/``.bin`` are not the files its
    ``metadata.json`` recorded at export (:func:`file_record`); folders exported before the
    record, or files under other names, are not checked."""
    record = (meta or {}).get("files")
    if not isinstance(record, dict) or param.name != PARAM or weights.name != BIN:
        return
    want = record.get(PARAM, {}), record.get(BIN, {})
    for path, w in zip((param, weights), want):
        if "bytes" in w and path.stat().st_size != w["bytes"]:
            raise YolactError(f"{folder}: {path.name} is not the file this folder was exported with "
                              f"({path.stat().st_size} bytes, {META} says {w['bytes']}); export it again")
    if "sha256" in want[0] and hashlib.sha256(param.read_bytes()).hexdigest() != want[0]["sha256"]:
        raise YolactError(f"{folder}: {PARAM} is not the file this folder was exported with (its SHA-256 differs "
                          f"from {META}'s); export it again")
