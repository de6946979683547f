"""The files of an NCNN model folder (``NAME_ncnn/``) and how a finished one is put in place,
shared by the exporter (:mod:`yolact.deploy.ncnn`) and the int8 quantiser
(:mod:`yolact.deploy.ncnn_int8`), which import it and not each other."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

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
