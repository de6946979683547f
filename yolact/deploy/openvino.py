"""OpenVINO: IR export (through the ONNX graphs), NNCF post-training int8 quantisation
calibrated on the user's images, and :class:`OpenVinoPredictor` (the ``openvino`` extra).

The IR carries the yolact config in its runtime info, as the ONNX files carry it in their
metadata, so ``OpenVinoPredictor("model.xml")`` needs nothing else. Several images (folders,
videos) run as concurrent asynchronous infer requests of a model compiled with the THROUGHPUT
hint; one image runs with the LATENCY hint.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from ..errors import YolactError
from .graph import GraphPredictor, read_metadata, refuse_compile
from .onnx import export_onnx

RT_KEY = ["yolact", "meta"]
INT8_MODES = ("full", "mixed")


def require_openvino():
    """The openvino module, or a one-line YolactError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise YolactError("the OpenVINO backend needs openvino (and nncf for int8): pip install 'yolact[openvino]'") \
            from None
    return openvino


def export_openvino(model, path: Union[str, os.PathLike], img_size: Optional[int] = None,
                    include_postprocess: bool = False, int8: Optional[str] = None,
                    calibration: Optional[Sequence[np.ndarray]] = None, opset: int = 17,
                    max_det: Optional[int] = None) -> Path:
    """Write OpenVINO IR (``path`` .xml and its .bin); ``model`` is not changed. ``int8``:
    None, 'full' (every conv quantised) or 'mixed' (NNCF's mixed preset, and the mask
    coefficient and prototype layers kept in float). ``calibration``: graph inputs
    [1, 3, S, S] (see calibration_images), needed for int8."""
    ov = require_openvino()
    if int8 is not None and int8 not in INT8_MODES:
        raise YolactError(f"--int8 {int8}: expected one of {', '.join(INT8_MODES)}")
    if int8 is not None and not calibration:
        raise YolactError("int8 export needs calibration images")
    path = Path(path).with_suffix(".xml")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", img_size=img_size,
                                include_postprocess=include_postprocess, opset=opset, max_det=max_det)
        ov_model = ov.convert_model(str(onnx_path))
        import onnx
        meta = json.loads(next(p.value for p in onnx.load(str(onnx_path)).metadata_props if p.key == "yolact"))
    if int8 is not None:
        ov_model = _quantize(ov_model, calibration, int8)
    meta["int8"] = int8
    ov_model.set_rt_info(json.dumps(meta), RT_KEY)
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return path


def _quantize(ov_model, calibration: Sequence[np.ndarray], mode: str):
    try:
        import nncf
    except ImportError:
        raise YolactError("int8 export needs nncf: pip install 'yolact[openvino]'") from None
    import logging

    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.ERROR)
    try:
        dataset = nncf.Dataset(list(calibration))
        kwargs = {}
        # The post-processing (--include-postprocess: ops named /post/...) stays in float: NNCF
        # would otherwise quantise the decoded boxes that NMS and the mask crops compare (the demo
        # model's mask IoU against fp32 fell under 0.9 on a test image where the core IR stays above).
        post = [op.get_friendly_name() for op in ov_model.get_ops() if op.get_friendly_name().startswith("/post/")]
        if post:
            kwargs["ignored_scope"] = nncf.IgnoredScope(names=post, validate=False)
        if mode == "mixed":
            kwargs["preset"] = nncf.QuantizationPreset.MIXED
            # Convolutions that produce the mask coefficients and the prototypes: by name in the
            # ONNX graph (the module names of the PyTorch model).
            names = [op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() == "Convolution"
                     and any(k in op.get_friendly_name() for k in ("mask_layer", "proto_net"))]
            if names or post:
                kwargs["ignored_scope"] = nncf.IgnoredScope(names=names + post, validate=False)
        return nncf.quantize(ov_model, dataset, subset_size=len(calibration), **kwargs)
    finally:
        nncf_log.setLevel(level)


class OpenVinoPredictor(GraphPredictor):
    """An OpenVINO IR run on the CPU, with the common ``predict``.

    ``precision``: 'fp32' (f32 inference) or 'bf16' (bf16 inference where the CPU has it); an
    int8 IR runs int8 whatever the hint (and reports precision 'int8'). Raises YolactError for
    a missing, unreadable or foreign file, or one the device cannot compile.
    """

    backend = "openvino"

    def __init__(self, path: Union[str, os.PathLike], precision: str = "fp32", device: str = "CPU"):
        ov = require_openvino()
        p = Path(path)
        if p.suffix.lower() != ".xml":
            raise YolactError(f"{p}: the OpenVINO backend takes an IR .xml file (yolact export --format openvino)")
        if not p.exists():
            raise YolactError(f"{p}: no such OpenVINO IR file")
        if precision not in ("fp32", "bf16"):
            raise YolactError(f"--precision {precision}: the OpenVINO backend runs fp32 or bf16 (int8 is in the IR)")
        self.core = ov.Core()
        try:
            model = self.core.read_model(str(p))
        except Exception as e:
            raise YolactError(f"{p}: not a readable OpenVINO IR ({str(e).splitlines()[0][:200]})") from None
        meta = json.loads(model.get_rt_info(RT_KEY).astype(str)) if model.has_rt_info(RT_KEY) else None
        self.cfg, self.include_postprocess = read_metadata(p, meta)
        self.int8 = meta.get("int8")
        self.path, self.ov_device, self.tracker = p, device, None
        self.precision = "int8" if self.int8 else precision
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        try:
            self._latency = self.core.compile_model(model, device, {"PERFORMANCE_HINT": "LATENCY",
                                                                   "INFERENCE_PRECISION_HINT": hint})
        except RuntimeError as e:  # e.g. the CPU plugin refusing a quantised pattern
            detail = next((ln for ln in str(e).splitlines() if "Check" in ln), str(e).splitlines()[0])
            raise YolactError(f"{p}: OpenVINO {ov.__version__} cannot compile this IR on {device} ({detail.strip()})") \
                from None
        self._model, self._hint = model, hint
        self._throughput = None

    def _throughput_model(self):
        if self._throughput is None:
            self._throughput = self.core.compile_model(self._model, self.ov_device, {
                "PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": self._hint})
        return self._throughput

    def run_each(self, images: np.ndarray) -> list:
        """Float32 images [N, 3, S, S] (BGR 0..255, resized) -> per image the IR's outputs without the
        batch axis: one image on the latency-compiled model, several as parallel batch-1 requests on
        a throughput-compiled one."""
        import openvino as ov

        if len(images) == 1:
            r = self._latency(images.astype(np.float32))
            return [self._per_image([r[o] for o in self._latency.outputs])]
        compiled = self._throughput_model()
        results: List[Optional[list]] = [None] * len(images)

        def done(request, index):
            results[index] = self._per_image([request.get_output_tensor(i).data.copy()
                                              for i in range(len(compiled.outputs))])

        queue = ov.AsyncInferQueue(compiled)
        queue.set_callback(done)
        for i in range(len(images)):
            queue.start_async({0: images[i:i + 1].astype(np.float32)}, i)
        queue.wait_all()
        return results


# ---------------------------------------------------------------- the row of yolact.formats
def load_openvino(path, config=None, device=None, precision: str = "fp32", strict: bool = True, compile=None):
    """An OpenVinoPredictor for ``path`` (precision fp32 or bf16; int8 means: what the IR holds);
    no ``compile``; ``config``, ``device``, ``strict`` are not used."""
    refuse_compile(path, compile, OpenVinoPredictor.backend)
    return OpenVinoPredictor(path, precision="fp32" if precision == "int8" else precision)


def export_openvino_file(model, options, log=print) -> Path:
    """``yolact export --format openvino`` (see yolact.formats for ``options``): the IR (.xml and
    .bin), quantised by NNCF with ``options.int8`` ('full' or 'mixed') on ``options.calib``."""
    from .calibration import calibration_images

    calib = None
    if options.int8:
        calib = calibration_images(options.calib, options.calib_images, options.calib_count,
                                   options.img_size or model.cfg.max_size)
    out = Path(options.out or Path(str(options.weights or "yolact")).with_suffix(".xml").name)
    path = export_openvino(model, out, img_size=options.img_size, include_postprocess=options.include_postprocess,
                           int8=options.int8, calibration=calib, opset=options.opset,
                           max_det=getattr(options, "max_det", None))
    log(f"wrote {path} and {path.with_suffix('.bin')} ({path.with_suffix('.bin').stat().st_size / 1e6:.1f} MB"
        + (f", int8 {options.int8}, calibrated on {len(calib)} images)" if options.int8 else ")"))
    return path


def benchmark_openvino(weights: str, base, precision: str, work: Path, calibration) -> OpenVinoPredictor:
    """The OpenVINO model of one ``benchmark --backend all`` row: ``base`` exported into ``work``
    (int8: quantised by NNCF on ``calibration``), run at ``precision``."""
    if precision == "int8":
        path = work / "model_int8.xml"
        if not path.exists():
            export_openvino(base, path, int8="full", calibration=calibration)
        return OpenVinoPredictor(path)
    path = work / "model.xml"
    if not path.exists():
        export_openvino(base, path)
    return OpenVinoPredictor(path, precision=precision)
