"""ExecuTorch: the core graph (:class:`~yolact.deploy.graph.CoreGraph`) at a fixed input size,
``torch.export``-ed and lowered to the XNNPACK delegate into one ``.pte`` program, and
:class:`ExecuTorchPredictor`, which runs it with ``executorch.runtime`` behind the common
predictor interface (the ``executorch`` extra).

By default the program holds the whole pipeline (:class:`~yolact.deploy.graph.EdgeGraph`: Fast
NMS, top-K, mask assembly and crop, YOLACT++ re-scoring inside): ``forward`` takes uint8
[1, S, S, 3] BGR and returns ``EDGE_OUTPUTS`` (``boxes`` [K, 4] pixels of the S x S input,
``scores`` [K], ``class_scores`` [K], ``labels`` [K] int32, ``masks`` [K, Hp, Wp], ``count`` [1]
int32; see the README's "Edge files: I/O contract").

With ``include_postprocess=False`` the program's ``forward`` takes ``images`` float32 [1, 3, S, S] (BGR, 0..255, resized to S x S)
and returns the core graph's outputs (``CORE_OUTPUTS``: ``boxes`` [1, P, 4] relative x1, y1, x2,
y2, ``scores`` [1, P, C+1] softmax with background first, ``coefs`` [1, P, K], ``proto``
[1, Hp, Wp, K]); threshold, Fast NMS and mask assembly run on the host (:class:`PostProcess`),
as for the ONNX core graph. The yolact config travels inside the program as a second method,
``yolact_meta``, that returns the UTF-8 JSON metadata as a uint8 tensor, so the ``.pte`` needs
nothing beside it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..errors import YolactError
from .graph import (CORE_OUTPUTS, EDGE_INPUT, EDGE_OUTPUTS, edge_dummy, edge_graph, edge_postprocess,
                    export_core_graph, GraphPredictor, read_metadata, refuse_compile, refuse_core_only_options)

META_METHOD = "yolact_meta"
INSTALL = "pip install 'yolact[executorch]'"


@contextlib.contextmanager
def _quiet_stderr():
    """Keep back what the native libraries print on fd 2 while loading (executorch's cpuinfo
    probe lines, torchao's missing CUDA kernels): noise on every run, not the user's business."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def export_executorch(model, path: Union[str, os.PathLike], img_size: Optional[int] = None,
                      include_postprocess: bool = True, max_det: Optional[int] = None) -> Path:
    """Write an ExecuTorch program (``.pte``) of ``model`` at input ``img_size`` (a multiple of
    32; default the model's): the whole pipeline (:class:`EdgeGraph`, K = ``max_det`` rows,
    default the preset's 100) or with ``include_postprocess=False`` the core graph, delegated to
    XNNPACK, with the config in its ``yolact_meta`` method; ``model`` itself is not changed.
    Raises YolactError when executorch is missing or the export or lowering fails (one line)."""
    try:
        with _quiet_stderr():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
    except ImportError:
        raise YolactError(f"ExecuTorch export needs executorch: {INSTALL}") from None
    if include_postprocess:
        graph, net, size = edge_graph(model, img_size, max_det)
        dummy = edge_dummy(size)
    else:
        graph, net, size = export_core_graph(model, img_size)
        dummy = torch.zeros(1, 3, size, size)
    meta = json.dumps({"yolact_config": net.cfg.to_dict(), "include_postprocess": bool(include_postprocess),
                       "edge_graph": bool(include_postprocess)})
    meta_tensor = torch.tensor(list(meta.encode("utf-8")), dtype=torch.uint8)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(graph, (dummy,), strict=False)
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()],
                                                  constant_methods={META_METHOD: meta_tensor}).to_executorch()
    except Exception as e:  # noqa: BLE001 - any exporter failure becomes one line
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
        raise YolactError(f"ExecuTorch export failed: {last}") from e
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(program.buffer)
    os.replace(tmp, path)  # atomic: a failed write leaves no half program
    return path


class ExecuTorchPredictor(GraphPredictor):
    """An ExecuTorch program (``.pte`` from :func:`export_executorch`) run by
    ``executorch.runtime`` on the CPU (XNNPACK), with the common ``predict``. Raises YolactError
    for a missing, unloadable or foreign file, or when executorch is not installed."""

    backend = "executorch"

    def __init__(self, path: Union[str, os.PathLike]):
        try:
            with _quiet_stderr():
                from executorch.runtime import Runtime
        except ImportError:
            raise YolactError(f"the ExecuTorch backend needs executorch: {INSTALL}") from None
        p = Path(path)
        if not p.exists():
            raise YolactError(f"{p}: no such ExecuTorch program")
        try:
            with _quiet_stderr():
                self.program = Runtime.get().load_program(p)
            names = set(self.program.method_names)
        except Exception as e:  # noqa: BLE001 - the runtime's errors become one line
            raise YolactError(f"{p}: not a loadable ExecuTorch program ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") \
                from None
        meta = None
        if META_METHOD in names:
            raw = self.program.load_method(META_METHOD).execute([])[0]
            meta = json.loads(bytes(np.asarray(raw, dtype=np.uint8)).decode("utf-8"))
        self.cfg, self.include_postprocess = read_metadata(p, meta)
        self.edge_outputs = bool(meta.get("edge_graph"))
        if "forward" not in names:
            raise YolactError(f"{p}: no forward method in this ExecuTorch program")
        with _quiet_stderr():
            self.method = self.program.load_method("forward")
        self.path, self.tracker, self.precision = p, None, "fp32"

    def file_io(self) -> dict:
        """The ``forward`` method's input and outputs (name -> shape) from the program's method
        metadata: ``image`` [1, S, S, 3] and ``EDGE_OUTPUTS`` (K rows) for the whole pipeline,
        ``images`` [1, 3, S, S] and ``CORE_OUTPUTS`` for the core graph."""
        meta = self.program.metadata("forward")
        names = EDGE_OUTPUTS if self.edge_outputs else CORE_OUTPUTS
        return {"inputs": {EDGE_INPUT if self.edge_outputs else "images":
                           [int(x) for x in meta.input_tensor_meta(0).sizes()]},
                "outputs": {n: [int(x) for x in meta.output_tensor_meta(i).sizes()]
                            for i, n in zip(range(meta.num_outputs()), names)}}

    def run_each(self, images: np.ndarray) -> list:
        """Float32 images [N, 3, S, S] (BGR 0..255, resized) -> per image the program's outputs
        without the batch axis (``CORE_OUTPUTS``, or ``EDGE_OUTPUTS`` fed uint8 NHWC); one batch-1
        run per image."""
        out = []
        for i in range(len(images)):
            if self.edge_outputs:
                res = self.method.execute([torch.from_numpy(self.edge_input(images[i]))])
                out.append([np.asarray(r).copy() for r in res])
                continue
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + 1], dtype=np.float32))
            res = self.method.execute([x])
            out.append([np.asarray(r)[0].copy() for r in res])
        return out


# ---------------------------------------------------------------- the row of yolact.formats
def load_executorch(path, config=None, device=None, precision: str = "fp32", strict: bool = True, compile=None):
    """An ExecuTorchPredictor for ``path`` (fp32 only; no ``compile``); ``config``, ``device``,
    ``strict`` are not used."""
    refuse_compile(path, compile, ExecuTorchPredictor.backend)
    if precision != "fp32":
        raise YolactError(f"{path}: an ExecuTorch program runs fp32 (--precision {precision} is not available)")
    return ExecuTorchPredictor(path)


def export_executorch_file(model, options, log=print) -> Path:
    """``yolact export --format executorch`` (see yolact.formats for ``options``): the whole
    pipeline (default) or, with ``--no-include-postprocess``, the core graph as an
    XNNPACK-delegated ``.pte``; flags it cannot honour are refused before any work."""
    refuse_core_only_options(options, "executorch", "program", full_graph=True)
    full = edge_postprocess(options)
    out = Path(options.out or Path(str(options.weights or "yolact")).with_suffix(".pte").name)
    path = export_executorch(model, out, img_size=options.img_size, include_postprocess=full,
                             max_det=getattr(options, "max_det", None))
    what = "whole pipeline (NMS and masks inside)" if full else "core graph"
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, ExecuTorch XNNPACK fp32 {what})")
    return path


def benchmark_executorch(weights: str, base, precision: str, work: Path, calibration) -> ExecuTorchPredictor:
    """The ExecuTorch model of one ``benchmark --backend all`` row: ``base`` exported into ``work``."""
    path = work / "model.pte"
    if not path.exists():
        export_executorch(base, path)
    return ExecuTorchPredictor(path)

