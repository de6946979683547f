"""Kept for imports written before :mod:`yolact.deploy`: the same functions and classes."""
from .deploy.openvino import (INT8_MODES, RT_KEY, OpenVinoPredictor as OpenVinoModel, export_openvino,  # noqa: F401
                              require_openvino)
