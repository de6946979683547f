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
from ..model.postprocess import PostProcess
from .graph import (CORE_OUTPUTS, POST_OUTPUTS, CoreGraph, GraphPredictor, PostGraph, export_copy, read_metadata,
                    refuse_compile)


# Opsets torch 2.13's exporter writes for each graph (checked by exporting and running both
# graphs): the core graph from 11 (opsets 9-10 export, but their Upsample/Resize is not
# PyTorch's half-pixel bilinear: 101 detections instead of 103 on a test image) to 23; the
# post-processing graph from 14 (Fast NMS's upper triangle is Trilu, opset 14).
CORE_OPSETS = (11, 23)
POSTPROCESS_OPSETS = (14, 23)


def check_opset(opset: int, include_postprocess: bool = False) -> None:
    """Raise YolactError (one line) for an opset the graph cannot be exported at."""
    lo, hi = POSTPROCESS_OPSETS if include_postprocess else CORE_OPSETS
    if not lo <= opset <= hi:
        graph = "the post-processing graph (--include-postprocess)" if include_postprocess else "the core graph"
        raise YolactError(f"--opset {opset}: {graph} exports at opsets {lo}..{hi}"
                          + (" (Fast NMS needs Trilu, opset 14)" if include_postprocess and opset < lo else ""))


def _torch_onnx_export(*args, **kwargs) -> None:
    """torch.onnx.export with the exporter's own stderr (on failure, a dump of the whole graph
    and a traceback: hundreds of lines) kept back: a failure is one YolactError line, with the
    dump attached as a note that ``yolact --debug`` prints."""
    import tempfile

    with tempfile.TemporaryFile(mode="w+b") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            torch.onnx.export(*args, **kwargs)
            error = None
        except Exception as e:  # noqa: BLE001 - any exporter failure becomes one line
            error = e
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if error is None:
            return
        log.seek(0)
        dump = log.read().decode("utf-8", "replace")
    last = (str(error).strip().splitlines() or [type(error).__name__])[-1][:300]
    err = YolactError(f"ONNX export failed: {last} (yolact --debug shows the exporter's output)")
    if dump:
        err.add_note(dump)
    raise err from error


def export_onnx(model, path: Union[str, os.PathLike], img_size: Optional[int] = None, dynamic_batch: bool = False,
                include_postprocess: bool = False, opset: int = 17, max_det: Optional[int] = None) -> Path:
    """Write an ONNX file of ``model`` (see :mod:`yolact.deploy.graph` for its inputs and
    outputs) with the config in its metadata; ``model`` itself is not changed. ``img_size``:
    the input side (a multiple of 32; default the model's). Raises YolactError for a batch-1
    post-processing graph asked to be dynamic, an opset outside :data:`CORE_OPSETS` /
    :data:`POSTPROCESS_OPSETS`, or any exporter failure (one line; the exporter's dump is
    attached as a note). ``max_det``: the post-processing graph's cap on detections when above
    the preset's (100); refused for the core graph, whose NMS runs on the host."""
    include_postprocess = bool(include_postprocess)  # None: the CLI's default (off for ONNX)
    if include_postprocess and dynamic_batch:
        raise YolactError("--include-postprocess exports a batch-1 graph; drop --dynamic-batch")
    check_opset(opset, include_postprocess)
    if max_det is not None and not include_postprocess:
        raise YolactError("--max-det is baked into the post-processing graph only (--include-postprocess); "
                          "the core graph takes --max-det when it predicts")
    net = export_copy(model, img_size)
    net.cfg = PostProcess.graph_caps(net.cfg, max_det)  # the post-processing graph's fixed cap
    size = net.cfg.max_size
    if net.cfg.use_maskiou and not include_postprocess:
        warnings.warn("YOLACT++ core graph: the mask re-scoring net needs the assembled masks, so its scores "
                      "leave out the predicted IoU; export with --include-postprocess for re-scored masks",
                      stacklevel=2)
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
        _torch_onnx_export(wrapper, (dummy,), str(path), input_names=["images"], output_names=names,
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

    def file_io(self) -> dict:
        """The graph's inputs and outputs (name -> shape) as ONNX Runtime reads them; a dynamic
        axis is given by its name (``batch``)."""
        shape = lambda v: [d if isinstance(d, int) else str(d) for d in v.shape]  # noqa: E731
        return {"inputs": {v.name: shape(v) for v in self.session.get_inputs()},
                "outputs": {v.name: shape(v) for v in self.session.get_outputs()}}

    def run(self, images: np.ndarray) -> list:
        """One session run: float32 images [N, 3, S, S] (BGR 0..255, resized) -> the graph's outputs
        as numpy arrays (``CORE_OUTPUTS`` with a batch axis, or ``POST_OUTPUTS`` without one)."""
        return self.session.run(None, {"images": images.astype(np.float32)})

    def run_each(self, images: np.ndarray) -> list:
        """Float32 images [N, 3, S, S] -> per image the graph's outputs without the batch axis; one run
        for a dynamic-batch core graph, one run per image for a batch-1 graph."""
        if self.include_postprocess or self.session.get_inputs()[0].shape[0] == 1:  # a batch-1 graph
            return [self._per_image(self.run(images[i:i + 1])) for i in range(len(images))]
        full = self.run(images)
        return [[o[i] for o in full] for i in range(len(images))]

    def count_parameters(self) -> int:
        """The number of values in the graph's initializers (its weights), read from the file."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return int(sum(int(np.prod(t.dims)) for t in graph.initializer))


# ---------------------------------------------------------------- the row of yolact.formats
def load_onnx(path, config=None, device=None, precision: str = "fp32", strict: bool = True, compile=None):
    """An OnnxPredictor for ``path``; ``precision`` fp32 or int8 (a file runs at the precision it
    was exported in), no ``compile``; ``config``, ``device``, ``strict`` are not used."""
    refuse_compile(path, compile, OnnxPredictor.backend)
    if precision not in ("fp32", "int8"):
        raise YolactError(f"{path}: an ONNX file runs at the precision it was exported in "
                          "(int8: yolact export --quantize int8)")
    return OnnxPredictor(path)


def export_onnx_file(model, options, log=print) -> Path:
    """``yolact export --format onnx`` (see yolact.formats for ``options``): the graph, and with
    ``options.quantize == 'int8'`` also ``<stem>_int8.onnx``, calibrated on ``options.calib``
    (read first: a bad --calib stops before any file is written)."""
    from .calibration import calibration_images

    if options.int8:
        raise YolactError("--int8 quantises OpenVINO IR (--format openvino); for ONNX use --quantize int8")
    calib = None
    if options.quantize == "int8":
        calib = calibration_images(options.calib, options.calib_images, options.calib_count,
                                   options.img_size or model.cfg.max_size)
    out = Path(options.out or Path(str(options.weights or "yolact")).with_suffix(".onnx").name)
    path = export_onnx(model, out, img_size=options.img_size, dynamic_batch=options.dynamic_batch,
                       include_postprocess=options.include_postprocess, opset=options.opset,
                       max_det=getattr(options, "max_det", None))
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if calib is not None:
        q = quantize_onnx(path, path.with_name(path.stem + "_int8.onnx"), calib)
        log(f"wrote {q} ({q.stat().st_size / 1e6:.1f} MB, int8 weights and activations, calibrated on "
            f"{len(calib)} {'synthetic ' if options.calib is None else ''}images)")
    return path


def benchmark_onnx(weights: str, base, precision: str, work: Path, calibration) -> OnnxPredictor:
    """The ONNX Runtime model of one ``benchmark --backend all`` row: ``base`` exported into
    ``work`` (fp32), quantised for int8 on ``calibration``."""
    path = work / "model.onnx"
    if not path.exists():
        export_onnx(base, path)
    if precision == "int8":
        q = work / "model_int8.onnx"
        if not q.exists():
            quantize_onnx(path, q, calibration)
        path = q
    return OnnxPredictor(path)
