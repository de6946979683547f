"""YOLACT / YOLACT++ real-time instance segmentation.

    import yolact, cv2
    model = yolact.load("yolact_base_54_800000.pth")
    res = model.predict(cv2.imread("photo.jpg"))
    res.boxes, res.scores, res.labels, res.masks
"""
from __future__ import annotations

from typing import Optional, Union

from .config import PRESETS, YolactConfig, get_config, list_presets
from .errors import YolactError
from .results import Results

__version__ = "0.1.0"
__all__ = ["load", "build", "Yolact", "YolactConfig", "Results", "YolactError", "get_config",
           "list_presets", "PRESETS", "demo_weights_path", "__version__"]


def load(path, config: Union[None, str, YolactConfig] = None, device=None, precision: str = "fp32",
         strict: bool = True, compile: Optional[str] = None):
    """Load an official or project checkpoint and return the model in eval mode.

    ``config``: a preset name or a config; by default inferred from the file (the project's
    files embed it; official names ``<config>_<epoch>_<iter>.pth``; else tensor shapes).
    ``precision``: 'fp32' (exact: the original's arithmetic, bit for bit), 'fp32-fused' (BN
    folded into the convs and channels-last memory: about 20% faster on CPU, scores differ in
    the 7th digit), 'bf16' or 'fp16' (see yolact.engine.speed).
    ``compile``: None, or a torch.compile mode ('default', 'max-autotune', 'reduce-overhead').
    """
    from .checkpoint import load_model

    model = load_model(path, config=config, device=device, strict=strict)
    if precision != "fp32":
        from .engine.speed import set_precision
        set_precision(model, precision)
    if compile:
        from .engine.speed import compile_model
        compile_model(model, compile)
    return model


def build(config: Union[str, YolactConfig], num_classes: Optional[int] = None, class_names=None):
    """A freshly initialised model for a preset name or config, with its training criterion
    (``yolact.loss.YolactCriterion``): ``model.train(); model(images, targets)`` returns the losses."""
    from .loss import YolactCriterion
    from .model.yolact import Yolact

    cfg = config if isinstance(config, YolactConfig) else get_config(config, num_classes, class_names)
    return Yolact(cfg, criterion=YolactCriterion(cfg))


def demo_weights_path():
    """Path of the built-in demo model (yolact_resnet18_slim trained on the synthetic shapes set)."""
    from pathlib import Path

    return Path(__file__).parent / "assets" / "yolact_resnet18_slim_shapes.pt"


def __getattr__(name):
    if name == "Yolact":
        from .model.yolact import Yolact
        return Yolact
    raise AttributeError(name)
