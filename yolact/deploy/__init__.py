"""Deployment: exported graphs (ONNX, OpenVINO IR), int8 calibration, the runtimes' predictors,
and every inference path side by side (:mod:`yolact.deploy.benchmark`).

:func:`load_predictor` picks the backend from the file, and is what :func:`yolact.load` calls.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..config import YolactConfig
from ..errors import YolactError

SUFFIX_BACKENDS = {".pth": "torch", ".pt": "torch", ".onnx": "onnxruntime", ".xml": "openvino"}
BACKENDS = ("torch", "onnxruntime", "openvino")


def backend_for(path: Union[str, os.PathLike], backend: Optional[str] = None) -> str:
    """The backend of a weights file: ``backend`` when given, else by suffix (.pth/.pt ->
    torch, .onnx -> onnxruntime, .xml -> openvino). Raises YolactError for an unknown one."""
    if backend is not None:
        if backend not in BACKENDS:
            raise YolactError(f"unknown backend '{backend}' ({', '.join(BACKENDS)})")
        return backend
    return SUFFIX_BACKENDS.get(Path(path).suffix.lower(), "torch")  # other names: try a PyTorch file


def load_predictor(path: Union[str, os.PathLike], config: Union[None, str, YolactConfig] = None, device=None,
                   precision: str = "fp32", strict: bool = True, compile: Optional[str] = None,
                   backend: Optional[str] = None):
    """A predictor for ``path`` (see :func:`yolact.load`): TorchPredictor, OnnxPredictor or
    OpenVinoPredictor. ``path``: a file, a zoo name (``yolact_base``), an ``hf://`` URL or 'demo'.
    Raises YolactError naming the file for anything unreadable, and for options the chosen
    backend does not have."""
    from ..hub import resolve_weights

    if str(path) == "demo":  # the built-in demo model, as --weights demo
        from ..config import DEMO_WEIGHTS
        path = DEMO_WEIGHTS
    path = resolve_weights(path)  # zoo names and hf:// URLs -> a file in the Hugging Face cache
    kind = backend_for(path, backend)
    if kind == "torch":
        from ..prediction.predictor import TorchPredictor

        return TorchPredictor.from_file(path, config, device, strict, precision, compile)
    if compile:
        raise YolactError(f"{path}: --compile is for PyTorch weights, not {kind}")
    if kind == "onnxruntime":
        if precision not in ("fp32", "int8"):
            raise YolactError(f"{path}: an ONNX file runs at the precision it was exported in "
                              "(int8: yolact export --quantize int8)")
        from .onnx import OnnxPredictor
        return OnnxPredictor(path)
    from .openvino import OpenVinoPredictor
    return OpenVinoPredictor(path, precision="fp32" if precision == "int8" else precision)
