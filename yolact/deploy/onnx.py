"""ONNX export (the graphs of :mod:`yolact.deploy.graph`), ONNX Runtime static int8, and
:class:`OnnxPredictor`, which runs an exported file behind the common predictor interface."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import torch

from ..errors import YolactError
from .graph import CORE_OUTPUTS, POST_OUTPUTS, CoreGraph, GraphPredictor, PostGraph, export_copy, read_metadata


def export_onnx(model, path: Union[str, os.PathLike], img_size: Optional[int] = None, dynamic_batch: bool = False,
                include_postprocess: bool = False, opset: int = 17) -> Path:
    """Write an ONNX file of ``model`` (see :mod:`yolact.deploy.graph` for its inputs and
    outputs) with the config in its metadata; ``model`` itself is not changed. ``img_size``:
    the input side (a multiple of 32; default the model's). Raises YolactError for a batch-1
    post-processing graph asked to be dynamic."""
    if include_postprocess and dynamic_batch:
        raise YolactError("--include-postprocess exports a batch-1 graph; drop --dynamic-batch")
    net = export_copy(model, img_size)
    size = net.cfg.max_size
    if net.cfg.use_maskiou and not include_postprocess:
        warnings.warn("YOLACT++ core graph: the mask re-scoring net needs the assembled masks, so its scores "
                      "are the class scores; export with --include-postprocess for re-scored masks", stacklevel=2)
    wrapper = (PostGraph if include_postprocess else CoreGraph)(net, size).eval()
    dummy = torch.zeros(1, 3, size, size)
    dummy[:, :, size // 4: size // 2, size // 4: size // 2] = 200  # some structure for tracing
    if include_postprocess:
        names = POST_OUTPUTS
        dynamic = {n: {0: "detections"} for n in names}
    else:
        names = CORE_OUTPUTS
        dynamic = {n: {0: "batch"} for n in ["images"] + names} if dynamic_batch else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (dummy,), str(path), input_names=["images"], output_names=names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    import onnx
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key = "yolact"
    entry.value = json.dumps({"yolact_config": net.cfg.to_dict(), "include_postprocess": include_postprocess})
    onnx.save(proto, str(path))
    return path


def quantize_onnx(src: Union[str, os.PathLike], dst: Union[str, os.PathLike], calibration: List[np.ndarray]) -> Path:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations) with ONNX
    Runtime, calibrated on ``calibration`` (graph inputs, see calibration_images); keeps the
    yolact metadata."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.it = iter([{"images": b} for b in batches])

        def get_next(self):
            return next(self.it, None)

    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a warning per conv bias
    try:
        quantize_static(str(src), str(dst), Reader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)
    import onnx
    s, d = onnx.load(str(src)), onnx.load(str(dst))
    for p in s.metadata_props:
        e = d.metadata_props.add()
        e.key, e.value = p.key, p.value
        if p.key == "yolact":
            e.value = json.dumps({**json.loads(p.value), "int8": True})
    onnx.save(d, str(dst))
    return Path(dst)


class OnnxPredictor(GraphPredictor):
    """An exported ONNX file run by ONNX Runtime, with the common ``predict``. ``providers``:
    ONNX Runtime execution providers (default: all available). Raises YolactError for a
    missing, unloadable or foreign file."""

    backend = "onnxruntime"

    def __init__(self, path: Union[str, os.PathLike], providers=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise YolactError("the ONNX Runtime backend needs onnxruntime: pip install 'yolact[onnx]'") from None
        p = Path(path)
        if not p.exists():
            raise YolactError(f"{p}: no such ONNX file")
        try:
            self.session = ort.InferenceSession(str(p), providers=providers or ort.get_available_providers())
        except Exception as e:
            raise YolactError(f"{p}: not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get("yolact")
        meta = json.loads(meta) if meta else None
        self.cfg, self.include_postprocess = read_metadata(p, meta)
        self.path = p
        self.tracker = None
        self.precision = "int8" if meta.get("int8") else "fp32"

    def run(self, images: np.ndarray) -> list:
        return self.session.run(None, {"images": images.astype(np.float32)})

    def run_each(self, images: np.ndarray) -> list:
        if self.include_postprocess or self.session.get_inputs()[0].shape[0] == 1:  # a batch-1 graph
            return [self._per_image(self.run(images[i:i + 1])) for i in range(len(images))]
        full = self.run(images)
        return [[o[i] for o in full] for i in range(len(images))]
