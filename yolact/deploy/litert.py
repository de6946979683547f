"""LiteRT (TFLite): the core graph (:class:`~yolact.deploy.graph.CoreGraph`) at a fixed input
size converted by ``litert-torch`` into one ``.tflite`` file, and :class:`LiteRTPredictor`,
which runs it with ``ai_edge_litert``'s Interpreter behind the common predictor interface (the
``litert`` extra).

By default the file holds the whole pipeline (:class:`~yolact.deploy.graph.EdgeGraph`: Fast
NMS, top-K, mask assembly and crop, YOLACT++ re-scoring inside): input uint8 [1, S, S, 3] BGR,
outputs in order ``boxes`` [K, 4] (pixels of the S x S input), ``scores`` [K],
``class_scores`` [K], ``labels`` [K] int32, ``masks`` [K, Hp, Wp], ``count`` [1] int32, then the
metadata (below). The README's "Edge files: I/O contract" runs it with ai_edge_litert and numpy.

With ``include_postprocess=False`` (``--no-include-postprocess``) it holds the core graph: input
``images`` float32 [1, 3, S, S] (BGR, 0..255, resized to S x S); its outputs, in order, are the core graph's (``boxes`` [1, P, 4] relative x1, y1, x2, y2,
``scores`` [1, P, C+1] softmax with background first, ``coefs`` [1, P, K], ``proto``
[1, Hp, Wp, K]) and a fifth, the yolact metadata: its UTF-8 JSON bytes as float32 values
(computed from the input times 0, so the converter keeps it as an output). Threshold, Fast NMS
and mask assembly run on the host (:class:`PostProcess`), as for the ONNX core graph.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn as nn

from ..errors import YolactError
from .graph import (CORE_OUTPUTS, EDGE_INPUT, EDGE_OUTPUTS, CoreGraph, EdgeGraph, GraphPredictor, edge_dummy,
                    edge_graph, edge_postprocess, export_copy, read_metadata, refuse_compile, refuse_core_only_options)

INSTALL = "pip install 'yolact[litert]'"


class _WithMeta(CoreGraph):
    """The core graph with its metadata as a fifth output."""

    def __init__(self, net: nn.Module, size: int, meta: bytes):
        super().__init__(net, size)
        self.register_buffer("yolact_meta", torch.tensor(list(meta), dtype=torch.float32))

    def forward(self, images: torch.Tensor):
        return (*self.heads(images), self.yolact_meta + 0.0 * images.mean())


class _EdgeWithMeta(EdgeGraph):
    """The whole pipeline with its metadata as a seventh output."""

    def __init__(self, net: nn.Module, size: int, meta: bytes):
        super().__init__(net, size)
        self.register_buffer("yolact_meta", torch.tensor(list(meta), dtype=torch.float32))

    def forward(self, image: torch.Tensor):
        return (*super().forward(image), self.yolact_meta + 0.0 * image.float().mean())


def export_litert(model, path: Union[str, os.PathLike], img_size=None, include_postprocess: bool = True,
                  max_det=None) -> Path:
    """Write a ``.tflite`` of ``model`` at input ``img_size`` (a multiple of 32; default the
    model's): the whole pipeline (:class:`EdgeGraph`, K = ``max_det`` rows, default the preset's
    100) or with ``include_postprocess=False`` the core graph, with the yolact metadata as the
    last output; ``model`` is not changed. Raises YolactError when litert-torch is missing or the
    conversion fails (one line)."""
    try:
        import litert_torch
    except ImportError:
        raise YolactError(f"LiteRT export needs litert-torch: {INSTALL}") from None
    if include_postprocess:
        _, net, size = edge_graph(model, img_size, max_det)
        dummy = edge_dummy(size)
    else:
        net = export_copy(model, img_size)
        size = net.cfg.max_size
        dummy = torch.zeros(1, 3, size, size)
    meta = json.dumps({"yolact_config": net.cfg.to_dict(), "include_postprocess": bool(include_postprocess),
                       "edge_graph": bool(include_postprocess)}).encode("utf-8")
    module = (_EdgeWithMeta if include_postprocess else _WithMeta)(net, size, meta).eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = litert_torch.convert(module, (dummy,))
    except Exception as e:  # noqa: BLE001 - any converter failure becomes one line
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
        raise YolactError(f"LiteRT conversion failed: {last}") from e
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.tflite")
    converted.export(str(tmp))
    os.replace(tmp, path)
    return path


def _output_order(details) -> list:
    """Output details in the converter's order (``..._output_<i>...``), else as listed."""
    def key(d):
        m = re.search(r"output_(\d+)", d["name"])
        return int(m.group(1)) if m else d["index"]
    return sorted(details, key=key)


class LiteRTPredictor(GraphPredictor):
    """A ``.tflite`` from :func:`export_litert` run by ``ai_edge_litert``'s Interpreter (XNNPACK
    on the CPU), with the common ``predict``. Raises YolactError for a missing, unloadable or
    foreign file, or when ai-edge-litert is not installed."""

    backend = "litert"

    def __init__(self, path: Union[str, os.PathLike]):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise YolactError(f"the LiteRT backend needs ai-edge-litert: {INSTALL}") from None
        p = Path(path)
        if not p.exists():
            raise YolactError(f"{p}: no such LiteRT file")
        try:
            self.interpreter = Interpreter(model_path=str(p))
            self.interpreter.allocate_tensors()
        except Exception as e:  # noqa: BLE001
            raise YolactError(f"{p}: not a loadable LiteRT model ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") \
                from None
        inp = self.interpreter.get_input_details()[0]
        self.input = inp["index"]
        self.outputs = [d["index"] for d in _output_order(self.interpreter.get_output_details())]
        meta = None
        if len(self.outputs) in (5, 7):  # the core graph's 4 or the whole pipeline's 6, then the metadata
            self.interpreter.set_tensor(self.input, np.zeros(tuple(inp["shape"]), inp["dtype"]))
            self.interpreter.invoke()
            raw = np.rint(self.interpreter.get_tensor(self.outputs[-1])).astype(np.uint8)
            try:
                meta = json.loads(bytes(raw).decode("utf-8"))
            except ValueError:
                meta = None
        self.cfg, self.include_postprocess = read_metadata(p, meta)
        self.edge_outputs = bool(meta.get("edge_graph"))
        # an int8 file (export --int8): its network's tensors are int8; inputs and outputs are float32
        int8 = any(np.dtype(d["dtype"]) == np.int8 for d in self.interpreter.get_tensor_details())
        self.path, self.tracker, self.precision = p, None, "int8" if int8 else "fp32"

    def file_io(self) -> dict:
        """The file's input and outputs (name -> shape) as the Interpreter reads them from the
        model's tensors: ``image`` [1, S, S, 3] and ``EDGE_OUTPUTS`` (K rows) for the whole
        pipeline, ``images`` [1, 3, S, S] and ``CORE_OUTPUTS`` for the core graph; then
        ``yolact_meta``, the metadata bytes."""
        names = (EDGE_OUTPUTS if self.edge_outputs else CORE_OUTPUTS) + ["yolact_meta"]
        details = _output_order(self.interpreter.get_output_details())
        inp = self.interpreter.get_input_details()[0]
        return {"inputs": {EDGE_INPUT if self.edge_outputs else "images": [int(x) for x in inp["shape"]]},
                "outputs": {n: [int(x) for x in d["shape"]] for n, d in zip(names, details)}}

    def run_each(self, images: np.ndarray) -> list:
        """Float32 images [N, 3, S, S] (BGR 0..255, resized) -> per image the file's outputs without
        the batch axis (the core graph's four, or the whole pipeline's six, fed uint8 NHWC); one
        batch-1 invocation per image."""
        out = []
        for i in range(len(images)):
            if self.edge_outputs:
                self.interpreter.set_tensor(self.input, self.edge_input(images[i]))
            else:
                self.interpreter.set_tensor(self.input, np.ascontiguousarray(images[i:i + 1], dtype=np.float32))
            self.interpreter.invoke()
            if self.edge_outputs:
                out.append([self.interpreter.get_tensor(j).copy() for j in self.outputs[:6]])
            else:
                out.append([self.interpreter.get_tensor(j)[0].copy() for j in self.outputs[:4]])
        return out


# ---------------------------------------------------------------- the row of yolact.formats
def load_litert(path, config=None, device=None, precision: str = "fp32", strict: bool = True, compile=None):
    """A LiteRTPredictor for ``path`` (precision fp32, or int8 meaning: what the file holds; an
    int8 file runs int8 either way; no ``compile``); ``config``, ``device``, ``strict`` are not used."""
    refuse_compile(path, compile, LiteRTPredictor.backend)
    if precision not in ("fp32", "int8"):
        raise YolactError(f"{path}: a LiteRT file runs fp32 or int8 (--precision {precision} is not available)")
    model = LiteRTPredictor(path)
    if precision == "int8" and model.precision != "int8":
        raise YolactError(f"{path}: an fp32 LiteRT file; export an int8 one with "
                          "yolact export --format litert --int8 --calib DIR")
    return model


def export_litert_file(model, options, log=print) -> Path:
    """``yolact export --format litert``: the whole pipeline (default) or, with
    ``--no-include-postprocess``, the core graph as a ``.tflite``, fp32 or (``--int8``) with the
    network in static int8; flags it cannot honour are refused before any work."""
    int8 = getattr(options, "int8", None)
    if int8 not in (None, "full"):
        raise YolactError(f"--int8 {int8}: --format litert quantises the whole network (--int8 or --int8 full)")
    refuse_core_only_options(options, "litert", "model", full_graph=True, int8=True)
    full = edge_postprocess(options)
    what = "whole pipeline (NMS and masks inside)" if full else "core graph"
    out = Path(options.out or Path(str(options.weights or "yolact")).with_suffix(".tflite").name)
    max_det = getattr(options, "max_det", None)
    if int8:
        import tempfile

        from .calibration import calibration_images
        from .litert_int8 import quantize_litert
        # calibration first (a bad --calib stops before the export); the fp32 file is a
        # temporary one, so the int8 name never holds an fp32 model
        calib = calibration_images(options.calib, options.calib_images, options.calib_count,
                                   options.img_size or model.cfg.max_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            fp32 = export_litert(model, Path(tmp) / "fp32.tflite", img_size=options.img_size,
                                 include_postprocess=full, max_det=max_det)
            done, total = quantize_litert(fp32, out, model, calib)
        path = out
        log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, LiteRT int8 {what}: {done} of {total} "
            f"convolutions int8, calibrated on {len(calib)} images; decoding, post-processing and outputs float32)")
        return path
    path = export_litert(model, out, img_size=options.img_size, include_postprocess=full, max_det=max_det)
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, LiteRT fp32 {what})")
    return path


def benchmark_litert(weights: str, base, precision: str, work: Path, calibration) -> LiteRTPredictor:
    """The LiteRT model of one ``benchmark --backend all`` row: ``base`` exported into ``work``
    (int8: quantised by ai-edge-quantizer on ``calibration``)."""
    path = work / "model.tflite"
    if not path.exists():
        export_litert(base, path)
    if precision == "int8":
        from .litert_int8 import quantize_litert
        quantized = work / "model_int8.tflite"
        if not quantized.exists():
            quantize_litert(path, quantized, base, calibration)
        return LiteRTPredictor(quantized)
    return LiteRTPredictor(path)
