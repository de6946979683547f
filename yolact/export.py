"""Kept for imports written before :mod:`yolact.deploy`: the same functions and classes."""
from .deploy.calibration import calibration_images  # noqa: F401
from .deploy.graph import CoreGraph as ExportCore, GraphPredictor as GraphModel, PostGraph as ExportWithPost  # noqa: F401
from .deploy.onnx import OnnxPredictor as OnnxModel, export_onnx, quantize_onnx  # noqa: F401
