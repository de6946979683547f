"""Inference inputs and the functional entry points.

The pipeline itself lives in three places, each written once: pre-processing and the way back
to image coordinates in :class:`yolact.model.transform.YolactTransform`, the steps from head
outputs to detections in :class:`yolact.model.postprocess.PostProcess`, and the backends in
:mod:`yolact.engine.predictor` (PyTorch) and :mod:`yolact.deploy` (ONNX Runtime, OpenVINO).
This module reads the sources and keeps the functional spellings of those steps.
"""
from __future__ import annotations

import os
from typing import List, Sequence, Union

import numpy as np
import torch

from ..config import YolactConfig
from ..data.images import VIDEO_EXTENSIONS, read_image, to_bgr_uint8
from ..errors import YolactError
from ..model.postprocess import PostProcess
from ..model.transform import YolactTransform
from ..ops.boxes import decode

ImageSource = Union[str, os.PathLike, np.ndarray]


def load_sources(source) -> List[tuple]:
    """A path, a BGR uint8 array (or tensor), or a list of them -> [(bgr_uint8, path_or_None)].
    Raises YolactError naming the image that cannot be read or converted."""
    items = source if isinstance(source, (list, tuple)) else [source]
    loaded = []
    for i, s in enumerate(items):
        if isinstance(s, (str, os.PathLike)):
            if os.path.splitext(str(s))[1].lower() in VIDEO_EXTENSIONS:
                raise YolactError(f"{s}: a video; use predict(..., stream=True) or track() for videos")
            loaded.append((read_image(s), str(s)))
        elif isinstance(s, np.ndarray):
            loaded.append((to_bgr_uint8(s, f"image {i}"), None))
        elif isinstance(s, torch.Tensor):
            loaded.append((to_bgr_uint8(s.cpu().numpy(), f"image {i}"), None))
        else:
            raise YolactError(f"image {i}: expected a path or a BGR uint8 array, got {type(s).__name__}")
    return loaded


def preprocess(images: Sequence[np.ndarray], cfg: YolactConfig, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 images -> float32 network input [N, 3, S, S] (see YolactTransform)."""
    return YolactTransform.from_config(cfg)(images, device)


def detect(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, cfg: YolactConfig, nms: str = "fast"):
    """One image's raw regressions [P, 4], softmax scores [P, C+1] and priors [P, 4] ->
    (boxes [n, 4] relative, classes [n], scores [n], prior indices [n]): PostProcess.select."""
    return PostProcess(cfg, nms=nms).select(decode(loc, priors), conf)


def predict(model, source, **kwargs):
    """``model.predict(source, **kwargs)`` for a network or any predictor (see
    :meth:`yolact.engine.predictor.Predictor.predict`)."""
    from .predictor import Predictor, TorchPredictor

    if not isinstance(model, Predictor):
        model = TorchPredictor.from_network(model)
    return model.predict(source, **kwargs)
