"""NCNN int8: ncnn's own post-training quantisation of an exported NCNN model folder with its
C++ tools ``ncnn2table`` (a calibration table: per-channel weight scales and KL-calibrated
activation scales over the user's images) and ``ncnn2int8`` (the int8 ``.param``/``.bin``).

The tools are not in the ``ncnn``/``pnnx`` wheels nor in Debian 12, so they are built from
source: ``third_party/ncnn_quantize/build.sh`` (ncnn's tool sources at tag 20260526, the C++
library from the ncnn 1.0.20260526 sdist on PyPI, BSD-3) puts them in the cache folder
:func:`tools_cache`. :func:`find_tools` looks in ``$YOLACT_NCNN_TOOLS`` (when set, only
there), then on ``PATH``, then in that cache folder.

What becomes int8: every ``Convolution``, ``ConvolutionDepthWise`` and ``InnerProduct`` layer of
the graph (int8 weights per output channel, int8 input activations; the rest of the graph stays
float, its weights stored as fp16 by ``ncnn2int8``). The graph's input (``in0`` float32
[3, S, S], BGR 0..255) and outputs stay float32, so :class:`~yolact.deploy.ncnn.NcnnPredictor`
and the host post-processing do not change. The calibration images reach ``ncnn2table`` as
``.npy`` arrays of exactly that input (``type=1``), so they are preprocessed as predict does.

:func:`quantize_ncnn` checks the result: a folder in which no layer became int8 is an error,
never an fp32 model under the int8 name. ``yolact.load`` tells an int8 folder by the
``int8_scale_term`` of its layers (:func:`int8_layers`).
"""
from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import YolactError

TOOLS_TAG = "20260526"  # ncnn's release of third_party/ncnn_quantize (its build.sh says the same)
TOOLS = ("ncnn2table", "ncnn2int8")
TOOLS_ENV = "YOLACT_NCNN_TOOLS"
BUILD = "third_party/ncnn_quantize/build.sh"
METHOD = "kl"  # ncnn2table's default calibration (KL divergence over activation histograms)
TABLE = "model.ncnn.table"
# the layers ncnn2int8 quantises in a CNN, and the param key of their int8_scale_term
INT8_KEYS = {"Convolution": "8", "ConvolutionDepthWise": "8", "InnerProduct": "8"}


def tools_cache() -> Path:
    """Where ``third_party/ncnn_quantize/build.sh`` puts the tools: ``$YOLACT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/yolact``, else ``~/.cache/yolact``; then ``ncnn-tools-<tag>/bin``."""
    from .int8 import cache_root
    return cache_root().parent / f"ncnn-tools-{TOOLS_TAG}" / "bin"


def find_tools() -> Dict[str, Path]:
    """tool name -> executable for ``ncnn2table`` and ``ncnn2int8``: in ``$YOLACT_NCNN_TOOLS`` when
    it is set (a folder; only there), else on ``PATH``, else in :func:`tools_cache`. Raises
    YolactError (one line) naming the missing tools and how to build them."""
    env = os.environ.get(TOOLS_ENV)
    found: Dict[str, Path] = {}
    for tool in TOOLS:
        if env:
            candidates = [Path(env) / tool]
        else:
            on_path = shutil.which(tool)
            candidates = ([Path(on_path)] if on_path else []) + [tools_cache() / tool]
        hit = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
        if hit is not None:
            found[tool] = hit
    missing = [t for t in TOOLS if t not in found]
    if missing:
        where = f"${TOOLS_ENV}={env}" if env else f"PATH or {tools_cache()}"
        raise YolactError(f"NCNN int8 needs ncnn's C++ tools {' and '.join(missing)} (not in the ncnn wheel; "
                          f"none in {where}): build them with {BUILD} from a yolact source checkout "
                          f"(a few minutes), or set {TOOLS_ENV} to the folder holding them")
    return found


def int8_layers(param: Union[str, os.PathLike]) -> Tuple[int, int]:
    """(int8 layers, layers ncnn2int8 can quantise) of an NCNN ``.param`` file: the
    ``Convolution``, ``ConvolutionDepthWise`` and ``InnerProduct`` layers, int8 when their
    ``int8_scale_term`` (param key 8) is not 0. Raises YolactError for a file that is not a
    text ``.param``."""
    try:
        lines = Path(param).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise YolactError(f"{param}: not a readable NCNN .param file ({e})") from None
    if not lines or lines[0].strip() != "7767517":
        raise YolactError(f"{param}: not an NCNN .param file (no 7767517 magic)")
    int8 = total = 0
    for line in lines[2:]:
        tokens = line.split()
        if not tokens or tokens[0] not in INT8_KEYS:
            continue
        total += 1
        key = INT8_KEYS[tokens[0]] + "="
        term = next((t[len(key):] for t in tokens[1:] if t.startswith(key)), "0")
        int8 += term not in ("0", "")
    return int8, total


# ncnn2table's progress lines: "count the absmax 0.00% [ 0 / 48 ]", "build histogram ..."
_PROGRESS = re.compile(r"^(count the absmax|build histogram) [\d.]+% \[ (\d+) / (\d+) \]")


def _run(cmd, cwd: Path, what: str, bar=None) -> None:
    """Run one of the tools; its output goes to ``bar`` (progress) and, on failure, its last line
    into a one-line YolactError."""
    tail: collections.deque = collections.deque(maxlen=8)
    with subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        for line in proc.stdout:
            line = line.strip()
            if line:
                tail.append(line)
            m = _PROGRESS.match(line)
            if m and bar is not None:
                phase = 0 if m.group(1).startswith("count") else 1
                bar.n = phase * int(m.group(3)) + int(m.group(2))
                bar.set_postfix_str(m.group(1))
    if proc.returncode != 0:
        raise YolactError(f"NCNN int8: {what} failed (exit {proc.returncode}): {(list(tail) or ['no output'])[-1][:300]}")


def quantize_ncnn(folder: Union[str, os.PathLike], path: Union[str, os.PathLike], calibration: Sequence[np.ndarray],
                  threads: Optional[int] = None, progress: bool = True) -> Tuple[int, int]:
    """Write the NCNN model folder ``path``: the fp32 folder ``folder`` (from
    :func:`~yolact.deploy.ncnn.export_ncnn`) quantised to int8 by ``ncnn2table`` (KL calibration
    on ``calibration``: graph inputs [1, 3, S, S] float32, BGR 0..255, as
    :func:`~yolact.deploy.calibration.calibration_images` makes them) and ``ncnn2int8``. The folder
    holds ``model.ncnn.param``/``.bin`` (int8), ``metadata.json`` (``precision: int8``) and the
    calibration table ``model.ncnn.table`` (comment a line out and rerun ``ncnn2int8`` to keep a
    layer float). It appears whole or not at all, replacing an earlier export there. Returns
    (int8 layers, quantisable layers). Raises YolactError when the tools are missing, the images
    do not fit the input, a tool fails, or no layer became int8."""
    from tqdm import tqdm

    from .ncnn_folder import BIN, META, PARAM, file_record, replace_dir

    tools = find_tools()
    # absolute: the tools run in a temporary folder (cwd), where a relative path means nothing
    folder, path = Path(folder).absolute(), Path(path).absolute()
    if not calibration:
        raise YolactError("NCNN int8 needs calibration images")
    try:
        meta = json.loads((folder / META).read_text())
        c, h, w = (int(s) for s in meta["input_shape"])
    except (OSError, ValueError, KeyError, TypeError):
        raise YolactError(f"{folder}: not an NCNN export of yolact (no readable {META} with input_shape)") from None
    if tuple(calibration[0].shape) != (1, c, h, w):
        raise YolactError(f"NCNN int8: calibration images are {tuple(calibration[0].shape)}, the model takes "
                          f"{(1, c, h, w)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.absolute().with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            names = []
            for i, image in enumerate(calibration):
                np.save(work / f"{i}.npy", np.ascontiguousarray(image[0], dtype=np.float32))  # [C, H, W]
                names.append(str(work / f"{i}.npy"))
            (work / "images.txt").write_text("\n".join(names) + "\n")
            n = len(names)
            with tqdm(total=2 * n, desc="NCNN int8 calibration (2 passes)", unit="img", disable=not progress) as bar:
                # shape is ncnn's [w, h, c]; type=1: the list holds .npy inputs (no image decoding)
                _run([tools["ncnn2table"], folder / PARAM, folder / BIN, work / "images.txt", tmp / TABLE,
                      f"shape=[{w},{h},{c}]", f"thread={threads or os.cpu_count() or 1}", f"method={METHOD}",
                      "type=1"], work, "ncnn2table", bar)
                bar.n = 2 * n
                bar.refresh()
            if not (tmp / TABLE).exists() or not (tmp / TABLE).read_text().strip():
                raise YolactError(f"NCNN int8: ncnn2table wrote no calibration table for {folder / PARAM}")
            _run([tools["ncnn2int8"], folder / PARAM, folder / BIN, tmp / PARAM, tmp / BIN, tmp / TABLE],
                 work, "ncnn2int8")
        if not (tmp / PARAM).exists() or not (tmp / BIN).exists():
            raise YolactError(f"NCNN int8: ncnn2int8 wrote no model for {folder / PARAM}")
        done, total = int8_layers(tmp / PARAM)
        if done == 0:
            raise YolactError(f"NCNN int8: no layer of {folder / PARAM} was quantised (0 of {total}); "
                              "an int8 folder would hold an fp32 model")
        meta.update(precision="int8", int8={"tool": f"ncnn2table + ncnn2int8 (ncnn {TOOLS_TAG})", "method": METHOD,
                                            "calibration_images": n, "int8_layers": done, "layers": total},
                    files=file_record(tmp))
        (tmp / META).write_text(json.dumps(meta, indent=1))
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done, total
