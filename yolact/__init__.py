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
__all__ = ["load", "build", "Yolact", "Predictor", "TorchPredictor", "YolactConfig", "Results", "YolactError", "get_config",
           "list_presets", "PRESETS", "demo_weights_path", "__version__"]


def load(path, config: Union[None, str, YolactConfig] = None, device=None, precision: Optional[str] = None,
         strict: bool = True, compile: Optional[str] = None, calib: Optional[str] = None):
    """Load a model and return a predictor (:class:`yolact.prediction.predictor.Predictor`).

    The backend follows the file: ``.pth``/``.pt`` -> PyTorch (:class:`TorchPredictor`, the
    network in eval mode), ``.onnx`` -> ONNX Runtime, ``.xml`` -> OpenVINO IR, ``.pte`` ->
    ExecuTorch, ``.tflite`` -> LiteRT (see :mod:`yolact.formats`). Every one has
    ``predict``, ``predict_batch``, ``track`` and returns the same Results.

    ``config`` (PyTorch files): a preset name or a config; by default inferred from the file
    (the project's files embed it; official names ``<config>_<epoch>_<iter>.pth``; else tensor
    shapes). ``precision``: None (the default) is 'fp32' for the original's architectures and
    'fp32-fused' for the light ResNet-18 presets (:func:`yolact.config.default_precision`);
    'fp32' (exact: the original's arithmetic, bit for bit),
    'fp32-fused' (BN folded, channels-last: faster on CPU, scores differ in the 6th-7th digit),
    'bf16' or 'fp16'; for OpenVINO 'fp32' or 'bf16' (an int8 IR runs int8). 'int8' on a
    PyTorch checkpoint (CPU): quantised once by the fastest installed int8 runtime (OpenVINO,
    else ONNX Runtime), calibrated on ``calib`` (a folder of images; default: synthetic
    images, said in one line) and cached (:mod:`yolact.deploy.int8`). ``compile``: None
    or a torch.compile mode ('default', 'max-autotune', 'reduce-overhead').
    Raises YolactError naming the file for anything unreadable or inconsistent.
    """
    from .deploy import load_predictor

    return load_predictor(path, config=config, device=device, precision=precision, strict=strict, compile=compile,
                          calib=calib)


def build(config: Union[str, YolactConfig], num_classes: Optional[int] = None, class_names=None):
    """A freshly initialised model (a :class:`TorchPredictor`, trainable: in training mode
    ``model(images, targets)`` returns the loss terms) for a preset name or config."""
    from .prediction.predictor import TorchPredictor
    from .loss import YolactCriterion

    cfg = config if isinstance(config, YolactConfig) else get_config(config, num_classes, class_names)
    return TorchPredictor(cfg, criterion=YolactCriterion(cfg))


def demo_weights_path():
    """Path of the built-in demo model (yolact_resnet18_slim trained on the synthetic shapes set)."""
    from .config import DEMO_WEIGHTS

    return DEMO_WEIGHTS


def __getattr__(name):
    if name == "Yolact":
        from .model.yolact import Yolact
        return Yolact
    if name in ("Predictor", "TorchPredictor"):
        from .prediction import predictor
        return getattr(predictor, name)
    raise AttributeError(name)
