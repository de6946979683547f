"""Deployment: exported graphs (ONNX, OpenVINO IR), int8 calibration, the runtimes' predictors,
and every inference path side by side (:mod:`yolact.deploy.benchmark`).

:func:`load_predictor` picks the backend from the file, and is what :func:`yolact.load` calls.
"""
from __future__ import annotations

import os
from typing import Optional, Union

from ..config import YolactConfig
from ..errors import YolactError
from ..formats import FORMATS, a_title, backends, format_for, resolve, suffix_backends

__all__ = ["FORMATS", "BACKENDS", "SUFFIX_BACKENDS", "backend_for", "load_predictor"]


def __getattr__(name: str):
    # SUFFIX_BACKENDS and BACKENDS: read from the formats table when asked, so rows registered
    # later are in them
    if name == "SUFFIX_BACKENDS":
        return suffix_backends()
    if name == "BACKENDS":
        return backends()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_for(path: Union[str, os.PathLike], backend: Optional[str] = None) -> str:
    """The backend of a weights file: ``backend`` when given, else by suffix (the rows of
    :data:`yolact.formats.FORMATS`: .pth/.pt -> torch, .onnx -> onnxruntime, .xml -> openvino;
    other names: torch). Raises YolactError for an unknown one."""
    return format_for(path, backend).name


def load_predictor(path: Union[str, os.PathLike], config: Union[None, str, YolactConfig] = None, device=None,
                   precision: Optional[str] = None, strict: bool = True, compile: Optional[str] = None,
                   backend: Optional[str] = None, calib: Optional[str] = None):
    """A predictor for ``path`` (see :func:`yolact.load`): TorchPredictor, OnnxPredictor,
    OpenVinoPredictor, or the predictor of another row of the formats table. ``path``: a file, a
    zoo name (``yolact_base``), an ``hf://`` URL or 'demo'. Raises YolactError naming the file
    for anything unreadable, and for options the chosen backend does not have.

    ``precision='int8'`` on a PyTorch checkpoint runs the checkpoint quantised by the fastest
    installed int8 runtime, calibrated on ``calib`` (a folder of images or a COCO .json; None:
    synthetic images) and cached (see :mod:`yolact.deploy.int8`). ``precision=None``: 'fp32',
    or for a PyTorch checkpoint its model's default (:func:`yolact.config.default_precision`)."""
    from ..hub import resolve_weights

    if str(path) == "demo":  # the built-in demo model, as --weights demo
        from ..config import DEMO_WEIGHTS
        path = DEMO_WEIGHTS
    path = resolve_weights(path)  # zoo names and hf:// URLs -> a file in the Hugging Face cache
    fmt = format_for(path, backend)
    if backend is not None:
        own = format_for(path)
        if own.name != fmt.name and any(str(path).lower().endswith(x) for x in own.suffixes):
            raise YolactError(f"{path}: {a_title(own)} file; --backend {backend} runs {'/'.join(fmt.suffixes)} files "
                              f"(make one with yolact export, or leave --backend out)")
    if calib is not None and not (precision == "int8" and fmt.name == "torch"):
        raise YolactError(f"--calib {calib}: calibration is for --precision int8 on a PyTorch checkpoint")
    if precision == "int8" and fmt.name == "torch":
        if compile:
            raise YolactError("--compile is for PyTorch precisions; int8 runs an exported graph")
        from .int8 import load_int8
        return load_int8(path, config=config, device=device, calib=calib, strict=strict)
    if precision is None and fmt.name != "torch":  # the PyTorch row picks the model's own default
        precision = "fp32"
    return resolve(fmt.predictor)(path, config=config, device=device, precision=precision, strict=strict,
                                  compile=compile)
