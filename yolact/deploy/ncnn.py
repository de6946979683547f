"""NCNN: the core graph (:class:`~yolact.deploy.graph.CoreGraph`) at a fixed input size,
TorchScript-traced and converted by ``pnnx`` into an NCNN model folder, and
:class:`NcnnPredictor`, which runs it with the ``ncnn`` Python bindings behind the common
predictor interface (the ``ncnn`` extra).

The folder (``NAME_ncnn/``, the Ultralytics layout) holds ``model.ncnn.param`` (the graph),
``model.ncnn.bin`` (float32 weights) and ``metadata.json`` (the yolact config, the input and
output blob names and shapes). The graph's input blob ``in0`` is float32 [3, S, S] (BGR,
0..255, resized to S x S; NCNN's Mat has no batch axis); its outputs ``out0``..``out3`` are the
core graph's without the batch axis: ``boxes`` [P, 4] relative x1, y1, x2, y2, ``scores``
[P, C+1] softmax with background first, ``coefs`` [P, K], ``proto`` [Hp, Wp, K]. Threshold,
Fast NMS and mask assembly run on the host (:class:`PostProcess`), as for the ONNX core graph.

NCNN stores and computes in fp16 on CPUs that have it by default; ``precision='fp32'`` (the
default here) turns that off, so the detections are PyTorch fp32's; ``precision='fp16'`` lets
NCNN use fp16 storage and arithmetic where the CPU has them (on x86 only storage, with F16C).

int8 (``export --format ncnn --int8``): the same folder with int8 convolutions, written by
ncnn's ``ncnn2table``/``ncnn2int8`` (:mod:`yolact.deploy.ncnn_int8`); the predictor tells it by
its layers' int8 scale terms and runs it with NCNN's int8 inference.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..config import MEANS_BGR, STD_BGR
from ..errors import YolactError
from ..model.yolact import decode_heads
from .graph import (CORE_OUTPUTS, CoreGraph, export_core_graph, GraphPredictor, read_metadata,
                    refuse_compile, refuse_core_only_options)
from .ncnn_folder import BIN, META, PARAM, check_files, file_record, replace_dir

INSTALL = "pip install 'yolact[ncnn]'"
INPUT = "in0"
OUTPUTS = [f"out{i}" for i in range(len(CORE_OUTPUTS))]
FOLDER_SUFFIX = "_ncnn"
# Why the NCNN folder holds the core graph only (checked: pnnx on the EdgeGraph of the tiny model
# leaves these as unconverted torch ops in the .param, which NCNN cannot load)
HOST_STEPS_WHY = ("NCNN has no TopK, gather-by-index, comparison or where layers (pnnx leaves torch.topk, "
                  "Tensor.index, torch.gt/ge/le/lt, torch.where and triu unconverted), so threshold, Fast NMS, "
                  "top-k and mask assembly run on the host through PostProcess")


def _pnnx_binary() -> str:
    """The pnnx converter shipped in the ``pnnx`` wheel (the package's import pulls in nothing
    else)."""
    try:
        import pnnx
    except ImportError:
        raise YolactError(f"NCNN export needs pnnx: {INSTALL}") from None
    return pnnx.EXEC_PATH


class NcnnGraph(CoreGraph):
    """The core graph as NCNN can run it: the BGR -> RGB channel swap as three slices and a
    concatenation (NCNN has no gather by index, ``images[:, (2, 1, 0)]``). The same arithmetic
    as :meth:`YolactTransform.normalize`, element for element, so the outputs are identical."""

    def heads(self, images: torch.Tensor):
        if self.transform.normalization == "imagenet":
            mean = torch.tensor(MEANS_BGR, dtype=images.dtype).view(1, 3, 1, 1)
            std = torch.tensor(STD_BGR, dtype=images.dtype).view(1, 3, 1, 1)
            images = (images - mean) / std
        else:
            images = images / 255
        rgb = torch.cat([images[:, 2:3], images[:, 1:2], images[:, 0:1]], 1)
        return tuple(decode_heads(self.net.forward_heads(rgb), self.priors))


def export_ncnn(model, path: Union[str, os.PathLike], img_size: Optional[int] = None) -> Path:
    """Write an NCNN model folder (``model.ncnn.param``, ``model.ncnn.bin`` float32,
    ``metadata.json``) of ``model``'s core graph at input ``img_size`` (a multiple of 32;
    default the model's) at ``path``; ``model`` is not changed. The folder appears whole or not
    at all. Raises YolactError when pnnx is missing or the conversion fails (one line)."""
    exe = _pnnx_binary()
    graph, net, size = export_core_graph(model, img_size, NcnnGraph)
    dummy = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        shapes = [list(t.shape[1:]) for t in graph(dummy)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.absolute().with_name(path.name + ".part")  # absolute: pnnx runs in its own folder
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.trace(graph, (dummy,), check_trace=False).save(str(work / "model.pt"))
            # pnnx writes its intermediate files (pnnx.param, .py, .onnx) beside the TorchScript file;
            # only the two NCNN files go to the folder. fp16=0: float32 weights (NCNN may still
            # store them as fp16 at run time; see NcnnPredictor's precision).
            cmd = [exe, str(work / "model.pt"), f"inputshape=[1,3,{size},{size}]f32", "device=cpu", "fp16=0",
                   f"ncnnparam={tmp / PARAM}", f"ncnnbin={tmp / BIN}", f"ncnnpy={work / 'model_ncnn.py'}"]
            run = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if run.returncode != 0 or not (tmp / PARAM).exists() or not (tmp / BIN).exists():
                lines = [ln for ln in run.stdout.strip().splitlines() if ln.strip()] or [f"exit {run.returncode}"]
                raise YolactError(f"NCNN conversion (pnnx) failed: {lines[-1][:300]}")
        meta = {"yolact_config": net.cfg.to_dict(), "include_postprocess": False, "input": INPUT,
                "input_shape": [3, size, size], "outputs": dict(zip(CORE_OUTPUTS, OUTPUTS)),
                "output_shapes": dict(zip(CORE_OUTPUTS, shapes)), "files": file_record(tmp)}
        (tmp / META).write_text(json.dumps(meta, indent=1))
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _folder_of(path: Path) -> Path:
    """The model folder of what the user named: the folder itself, or its ``.param`` file."""
    return path.parent if path.suffix.lower() == ".param" else path


class NcnnPredictor(GraphPredictor):
    """An NCNN model folder from :func:`export_ncnn` (or its ``.param`` file) run by the ``ncnn``
    Python bindings on the CPU, with the common ``predict``. ``precision``: 'fp32' (NCNN's fp16
    and bf16 storage and arithmetic off: PyTorch fp32's detections) or 'fp16' (NCNN's defaults
    where the CPU has them). A folder with int8 layers (``export --int8``) runs NCNN's int8
    inference and reports ``precision == 'int8'`` whatever was asked (its other layers float:
    fp32, or fp16 where the CPU has it with 'fp16'). Raises YolactError for a missing,
    unloadable or foreign folder, or when ncnn is not installed."""

    backend = "ncnn"

    def __init__(self, path: Union[str, os.PathLike], precision: str = "fp32", threads: Optional[int] = None):
        try:
            import ncnn
        except ImportError:
            raise YolactError(f"the NCNN backend needs ncnn: {INSTALL}") from None
        p = Path(path)
        folder = _folder_of(p)
        if not p.exists():
            raise YolactError(f"{p}: no such NCNN model folder")
        param = p if p.suffix.lower() == ".param" else folder / PARAM
        weights = param.with_suffix(".bin")
        meta = None
        if (folder / META).exists():
            try:
                meta = json.loads((folder / META).read_text())
            except ValueError:
                raise YolactError(f"{folder / META}: not JSON") from None
        self.cfg, self.include_postprocess = read_metadata(folder, meta)
        if not param.exists() or not weights.exists():
            raise YolactError(f"{folder}: an NCNN model folder needs {param.name} and {weights.name}")
        check_files(folder, param, weights, meta)  # before NCNN reads a mismatched pair (it may crash)
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = False
        opt.use_int8_inference = True
        if precision in ("fp32", "int8"):
            opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
            opt.use_bf16_storage = False
        opt.num_threads = int(threads or torch.get_num_threads())
        with _native_stderr() as said:  # NCNN prints its reasons on fd 2: into the one line instead
            ok = self.net.load_param(str(param)) == 0 and self.net.load_model(str(weights)) == 0
        if not ok:
            why = f": {said[-1][:200]}" if said else ""
            raise YolactError(f"{folder}: not a loadable NCNN model ({param.name}, {weights.name}){why}")
        from .ncnn_int8 import int8_layers
        int8 = int8_layers(param)[0] > 0  # the int8 scale terms ncnn2int8 writes
        self.meta = meta
        self.input_name = meta.get("input", INPUT)
        self.output_names = [meta.get("outputs", {}).get(k, v) for k, v in zip(CORE_OUTPUTS, OUTPUTS)]
        # what runs: a float folder asked for int8 runs fp32 (load_ncnn refuses that ask)
        self.path, self.tracker = folder, None
        self.precision = "int8" if int8 else "fp32" if precision == "int8" else precision
        self._mat = ncnn.Mat

    def file_io(self) -> dict:
        """The blobs' shapes as the export recorded them in ``metadata.json`` (NCNN's Mat has no
        batch axis): input ``in0`` [3, S, S], outputs ``out0``..``out3`` (boxes, scores, coefs,
        proto); {} for a folder without them."""
        meta = self.meta or {}
        if "input_shape" not in meta or "output_shapes" not in meta:
            return {}
        names = meta.get("outputs", {})
        return {"inputs": {self.input_name: list(meta["input_shape"])},
                "outputs": {names.get(k, k): list(v) for k, v in meta["output_shapes"].items()}}

    def run_each(self, images: np.ndarray) -> list:
        """Float32 images [N, 3, S, S] (BGR 0..255, resized) -> per image the core graph's four
        outputs (``CORE_OUTPUTS``, no batch axis); one extractor run per image."""
        out = []
        for i in range(len(images)):
            ex = self.net.create_extractor()
            ex.input(self.input_name, self._mat(np.ascontiguousarray(images[i], dtype=np.float32)))
            res = []
            for name in self.output_names:
                rc, mat = ex.extract(name)
                if rc != 0:
                    raise YolactError(f"{self.path}: NCNN could not compute output {name} (code {rc})")
                res.append(np.array(mat, dtype=np.float32, copy=True))
            out.append(res)
        return out


@contextlib.contextmanager
def _native_stderr():
    """Capture what native code writes to file descriptor 2 (NCNN's load errors) while inside;
    yields the list its non-empty lines are put in on exit."""
    lines: list = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines.extend(ln.strip() for ln in captured.read().decode(errors="replace").splitlines() if ln.strip())


# ---------------------------------------------------------------- the row of yolact.formats
def load_ncnn(path, config=None, device=None, precision: str = "fp32", strict: bool = True, compile=None):
    """An NcnnPredictor for ``path`` (a ``NAME_ncnn`` folder or its ``.param`` file; fp32 or fp16;
    int8 meaning: what the folder holds, an int8 folder runs int8 either way; no ``compile``);
    ``config``, ``device``, ``strict`` are not used."""
    refuse_compile(path, compile, NcnnPredictor.backend)
    if precision not in ("fp32", "fp16", "int8"):
        raise YolactError(f"{path}: an NCNN model runs fp32, fp16 or int8 (--precision {precision} is not available)")
    model = NcnnPredictor(path, precision)
    if precision == "int8" and model.precision != "int8":
        raise YolactError(f"{path}: an fp32 NCNN model; export an int8 one with "
                          "yolact export --format ncnn --int8 --calib DIR")
    return model


def default_out(weights) -> Path:
    """``yolact export --format ncnn``'s folder when no ``--out``: ``<weights stem>_ncnn``."""
    return Path(Path(str(weights or "yolact")).stem + FOLDER_SUFFIX)


def check_replaceable(path: Path) -> None:
    """Refuse (YolactError) to write the model folder over a file, or over a folder that is
    not an earlier NCNN export (it would be replaced whole, with whatever else it holds)."""
    if path.is_file():
        raise YolactError(f"{path}: is a file; an NCNN model is written as a folder (e.g. {default_out(path)})")
    if path.is_dir() and any(path.iterdir()) and not ((path / PARAM).exists() and (path / META).exists()):
        raise YolactError(f"{path}: a folder that is not an NCNN export of yolact; it would be replaced whole, so "
                          "name a new folder")


def export_ncnn_file(model, options, log=print) -> Path:
    """``yolact export --format ncnn`` (see yolact.formats for ``options``): the core graph as an
    NCNN model folder, fp32 or (``--int8``) quantised by ncnn2table/ncnn2int8 on ``--calib``;
    flags it cannot honour, and missing int8 tools, are refused before any work."""
    int8 = getattr(options, "int8", None)
    if int8 not in (None, "full"):
        raise YolactError(f"--int8 {int8}: --format ncnn quantises every convolution (--int8 or --int8 full)")
    refuse_core_only_options(options, "ncnn", "model", why=f" ({HOST_STEPS_WHY.split(', so')[0]})", int8=True)
    out = Path(options.out) if options.out else default_out(options.weights)
    check_replaceable(out)
    if int8:
        from .calibration import calibration_images
        from .ncnn_int8 import find_tools, quantize_ncnn
        find_tools()  # missing tools: one line, before the calibration images and the export
        calib = calibration_images(options.calib, options.calib_images, options.calib_count,
                                   options.img_size or model.cfg.max_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        # the fp32 folder is a temporary one, so the int8 name never holds an fp32 model
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            fp32 = export_ncnn(model, Path(tmp) / ("fp32" + FOLDER_SUFFIX), img_size=options.img_size)
            done, total = quantize_ncnn(fp32, out, calib)
        what = (f"NCNN int8 core graph: {done} of {total} convolution layers int8 (ncnn2table KL + ncnn2int8), "
                f"calibrated on {len(calib)} images; other layers and the outputs float")
    else:
        out = export_ncnn(model, out, img_size=options.img_size)
        what = f"NCNN fp32 core graph: {PARAM}, {BIN}, {META}"
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    log(f"wrote {out} ({size:.1f} MB, {what})")
    log(f"note: {HOST_STEPS_WHY}")
    return out


def benchmark_ncnn(weights: str, base, precision: str, work: Path, calibration) -> NcnnPredictor:
    """The NCNN model of one ``benchmark --backend all`` row: ``base`` exported into ``work``
    (int8: quantised by ncnn2table/ncnn2int8 on ``calibration``; YolactError when the tools are
    not built, and the row is skipped)."""
    path = work / ("model" + FOLDER_SUFFIX)
    if not path.exists():
        export_ncnn(base, path)
    if precision == "int8":
        from .ncnn_int8 import quantize_ncnn
        quantized = work / ("model_int8" + FOLDER_SUFFIX)
        if not quantized.exists():
            quantize_ncnn(path, quantized, calibration, progress=False)
        return NcnnPredictor(quantized, precision)
    return NcnnPredictor(path, precision)
