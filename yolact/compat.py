"""Old spellings, kept in one place for code written against earlier versions.

Nothing in the package imports this module; each name here is a thin alias of the current API:

| old name | current name |
|---|---|
| ``yolact.export.OnnxModel``, ``GraphModel``, ``ExportCore``, ``ExportWithPost`` | ``yolact.deploy.onnx.OnnxPredictor``, ``yolact.deploy.graph.GraphPredictor``, ``CoreGraph``, ``PostGraph`` |
| ``yolact.openvino_backend.OpenVinoModel`` | ``yolact.deploy.openvino.OpenVinoPredictor`` |
| ``yolact.loss.YolactLoss`` | ``yolact.loss.YolactCriterion`` |
| ``preprocess``, ``detect``, ``predict``, ``set_precision``, ``compile_model`` on a bare ``Yolact`` network | ``YolactTransform``, ``PostProcess.select``, and the methods of ``TorchPredictor`` |
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import YolactConfig
from .deploy.calibration import calibration_images
from .deploy.graph import CoreGraph as ExportCore, GraphPredictor as GraphModel, PostGraph as ExportWithPost
from .deploy.onnx import OnnxPredictor as OnnxModel, export_onnx, quantize_onnx
from .deploy.openvino import INT8_MODES, RT_KEY, OpenVinoPredictor as OpenVinoModel, export_openvino, require_openvino
from .loss import YolactCriterion as YolactLoss
from .model.postprocess import PostProcess
from .model.transform import YolactTransform
from .ops.boxes import decode
from .prediction.predictor import Predictor, TorchPredictor

__all__ = ["calibration_images", "ExportCore", "GraphModel", "ExportWithPost", "OnnxModel", "export_onnx",
           "quantize_onnx", "INT8_MODES", "RT_KEY", "OpenVinoModel", "export_openvino", "require_openvino",
           "YolactLoss", "preprocess", "detect", "predict", "set_precision", "compile_model", "track"]


def preprocess(images: Sequence[np.ndarray], cfg: YolactConfig, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 images -> float32 network input [N, 3, S, S] (see YolactTransform)."""
    return YolactTransform.from_config(cfg)(images, device)


def detect(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, cfg: YolactConfig, nms: str = "fast"):
    """One image's raw regressions [P, 4], softmax scores [P, C+1] and priors [P, 4] ->
    (boxes [n, 4] relative, classes [n], scores [n], prior indices [n]): PostProcess.select."""
    return PostProcess(cfg, nms=nms).select(decode(loc, priors), conf)


def predict(model, source, **kwargs):
    """``model.predict(source, **kwargs)`` for a network or any predictor (see
    :meth:`yolact.prediction.predictor.Predictor.predict`)."""
    if not isinstance(model, Predictor):
        model = TorchPredictor.from_network(model)
    return model.predict(source, **kwargs)


def set_precision(model, precision: str, channels_last: bool = True) -> TorchPredictor:
    """``TorchPredictor.set_precision`` for a bare network or a predictor; returns the predictor."""
    return TorchPredictor.from_network(model).set_precision(precision, channels_last)


def compile_model(model, mode: str = "default") -> TorchPredictor:
    """``TorchPredictor.set_compile`` for a bare network or a predictor; returns the predictor."""
    return TorchPredictor.from_network(model).set_compile(mode)


def track(model, source, tracker: str = "bytetrack", persist: bool = False, **kwargs):
    """``Predictor.track`` for a bare network or a predictor."""
    return TorchPredictor.from_network(model).track(source, tracker=tracker, persist=persist, **kwargs)
