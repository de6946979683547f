"""Kept for imports written before :mod:`yolact.deploy`: the same functions and classes."""
from .deploy.calibration import calibration_images
from .deploy.graph import CoreGraph as ExportCore, GraphPredictor as GraphModel, PostGraph as ExportWithPost
from .deploy.onnx import OnnxPredictor as OnnxModel, export_onnx, quantize_onnx

__all__ = ["calibration_images", "ExportCore", "GraphModel", "ExportWithPost", "OnnxModel", "export_onnx", "quantize_onnx"]
