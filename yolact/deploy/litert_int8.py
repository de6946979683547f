"""LiteRT int8: static post-training quantisation of an exported ``.tflite`` with Google's
``ai-edge-quantizer`` (a dependency of ``litert-torch``, so the ``litert`` extra brings it).

Only the network is quantised: the ops whose tensors ``litert-torch`` names after one of the
network's modules (backbone, FPN, prototype net, prediction heads) get int8 weights (per output
channel) and int8 activations (min/max calibrated on the user's images, as OpenVINO/NNCF's are);
the input normalisation, the box decoding, the softmax, the metadata output and anything added
after the network (post-processing) stay float32, and the file's inputs and outputs stay
float32, so the predictor and the I/O contract do not change. The one convolution whose output
is a graph output (the last prototype layer) keeps float32 too: the quantiser would make that
output int8.

:func:`quantize_litert` checks the result: a file in which no convolution became int8 (the
tensor names changed, say) is an error, never a silent fp32 file called int8.
"""
from __future__ import annotations

import collections
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import torch.nn as nn

from ..errors import YolactError

INSTALL = "pip install 'yolact[litert]'"
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")


def network_scope(net: nn.Module) -> str:
    """A regular expression matching the TFLite tensor names of ``net``'s layers.

    ``litert-torch`` names a tensor after the module path that made it,
    ``<root>/<module>.<Class>_<attribute>/...`` (a ModuleList's items by index), and the
    root module's own ops (normalisation, box decoding) ``<root>;<n>``; ai-edge-quantizer
    matches a recipe's regex against these names."""
    tokens = []
    for name, child in net.named_children():
        items = list(enumerate(child)) if isinstance(child, nn.ModuleList) else [(name, child)]
        tokens += [f"{type(c).__module__}.{type(c).__qualname__}_{key}" for key, c in items]
    if not tokens:
        raise YolactError("int8: the network has no layers to quantise")
    return "/(?:" + "|".join(re.escape(t) for t in dict.fromkeys(tokens)) + ")(?:[/;]|$)"


def op_dtypes(path: Union[str, os.PathLike]) -> Dict[Tuple[str, str], int]:
    """(op name, dtype of its first input) -> count over the ops of a ``.tflite`` file (read
    without delegates, so the listed ops are the file's own); e.g. ``('CONV_2D', 'int8'): 52``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    dtypes = {d["index"]: np.dtype(d["dtype"]).name for d in it.get_tensor_details()}
    return dict(collections.Counter((op["op_name"], dtypes.get(int(op["inputs"][0]), "?"))
                                    for op in it._get_ops_details() if len(op["inputs"])))


def int8_convolutions(path: Union[str, os.PathLike]) -> Tuple[int, int]:
    """(convolutions with int8 input, all convolutions) of a ``.tflite`` file."""
    counts = op_dtypes(path)
    convs = {k: v for k, v in counts.items() if k[0] in CONV_OPS}
    return sum(v for (_, dtype), v in convs.items() if dtype == "int8"), sum(convs.values())


def quantize_litert(float_path: Union[str, os.PathLike], path: Union[str, os.PathLike], net: nn.Module,
                    calibration: Sequence[np.ndarray]) -> Tuple[int, int]:
    """Write ``path``: the float ``.tflite`` at ``float_path`` (exported from ``net``) with the
    network in static int8, calibrated on ``calibration`` ([1, 3, S, S] float32, BGR 0..255, as
    :func:`~yolact.deploy.calibration.calibration_images` makes them; rounded to uint8 NHWC for a
    whole-pipeline file, whose input is the image). Returns
    (int8 convolutions, all convolutions). ``path`` may be ``float_path``; it is replaced only
    when the quantised file is whole. Raises YolactError when ai-edge-quantizer is missing, the
    calibration images do not fit the input, or no convolution was quantised."""
    try:
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise YolactError(f"LiteRT int8 needs ai-edge-quantizer: {INSTALL}") from None
    if not calibration:
        raise YolactError("LiteRT int8 needs calibration images")
    it = Interpreter(model_path=str(float_path))
    signature, spec = next(iter(it.get_signature_list().items()))
    detail = it.get_input_details()[0]
    want = tuple(int(s) for s in detail["shape"])
    if detail["dtype"] == np.uint8 and len(want) == 4 and want[-1] == 3:
        # the whole-pipeline file takes the image itself: uint8 [1, S, S, 3] BGR
        calibration = [np.clip(np.rint(c), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1) for c in calibration]
    if tuple(calibration[0].shape) != want:
        raise YolactError(f"LiteRT int8: calibration images are {tuple(calibration[0].shape)}, the model takes {want}")
    q = quantizer.Quantizer(str(float_path))
    q.add_static_config(network_scope(net), qtyping.TFLOperationName.ALL_SUPPORTED,
                        activation_num_bits=8, weight_num_bits=8)
    unmatched = YolactError(f"LiteRT int8: no convolution of {float_path} can be quantised: no op's name "
                            "matches the network's modules (the converter's tensor names changed?)")
    data = {signature: [{spec["inputs"][0]: np.ascontiguousarray(c, detail["dtype"])} for c in calibration]}
    try:
        qsv = q.calibrate(data, num_threads=os.cpu_count() or 1)
        if not qsv:
            raise unmatched
        result = q.quantize(qsv, enable_progress_report=False)
    except YolactError:
        raise
    except Exception as e:  # noqa: BLE001 - a quantiser failure becomes one line
        if "QSV" in str(e):  # no statistics: the recipe matched no op
            raise unmatched from None
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
        raise YolactError(f"LiteRT int8 quantisation failed: {last}") from e
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        part = Path(tmp) / "model.tflite"
        part.write_bytes(bytes(result.quantized_model))
        int8, total = int8_convolutions(part)
        if int8 == 0:
            raise YolactError(f"LiteRT int8: no convolution of {float_path} was quantised (0 of {total}); "
                              "the converter's tensor names no longer match the network's modules")
        os.replace(part, path)
    return int8, total
