"""Network modules: backbones, DCNv2, FPN, heads and the YOLACT model."""
from .yolact import HeadOutputs, Yolact

__all__ = ["Yolact", "HeadOutputs"]
