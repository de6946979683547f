"""Core ML: the core graph (:class:`~yolact.deploy.graph.CoreGraph`) at a fixed input size,
TorchScript-traced and converted by ``coremltools`` into an ML Program (``.mlpackage``), and
:class:`CoreMLPredictor`, which runs it with Core ML on macOS (the ``coreml`` extra).

The package's input is ``images`` float32 [1, 3, S, S] (BGR, 0..255, resized to S x S); its
outputs are the core graph's (``CORE_OUTPUTS``): ``boxes`` [1, P, 4] relative x1, y1, x2, y2,
``scores`` [1, P, C+1] softmax with background first, ``coefs`` [1, P, K], ``proto``
[1, Hp, Wp, K]; weights and arithmetic float32 (``compute_precision`` FLOAT32, so the numbers
are PyTorch fp32's up to rounding). The yolact config is in the model's metadata
(``user_defined_metadata["yolact"]``, UTF-8 JSON). Threshold, Fast NMS and mask assembly run on
the host (:class:`PostProcess`), as for the ONNX core graph.

By default the package holds the whole pipeline (:class:`~yolact.deploy.graph.EdgeGraph`: Fast
NMS, top-K, mask assembly and crop, YOLACT++ re-scoring inside): input ``image``, a BGR image
of S x S (``ct.ImageType``: Core ML has no uint8 tensor inputs; on the device a
``CVPixelBuffer``), outputs ``EDGE_OUTPUTS`` (see the README's "Edge files: I/O contract").
``include_postprocess=False`` writes the core graph above.

Writing works anywhere coremltools installs; running needs macOS (Core ML is Apple's
framework): elsewhere :class:`CoreMLPredictor` stops with one line. :func:`read_spec` reads a
package's inputs, outputs and metadata back on any system.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from ..errors import YolactError
from .graph import (CORE_OUTPUTS, EDGE_INPUT, EDGE_OUTPUTS, edge_dummy, edge_graph, edge_postprocess,
                    export_core_graph, GraphPredictor, read_metadata, refuse_compile, refuse_core_only_options)
from .ncnn import replace_dir

INSTALL = "pip install 'yolact[coreml]'"
META_KEY = "yolact"
INPUT = "images"


def _coremltools():
    from .executorch import _quiet_stderr

    try:
        # its import prints, on every system but macOS, that the Core ML runtime is missing
        # (we know: see macos_only) and which torch versions it was tested with
        with _quiet_stderr():
            import coremltools as ct
    except ImportError:
        raise YolactError(f"Core ML needs coremltools: {INSTALL}") from None
    return ct


def export_coreml(model, path: Union[str, os.PathLike], img_size: Optional[int] = None,
                  include_postprocess: bool = True, max_det: Optional[int] = None) -> Path:
    """Write an ML Program (``.mlpackage``, float32, minimum deployment target iOS 16 / macOS 13)
    of ``model`` at input ``img_size`` (a multiple of 32; default the model's): the whole pipeline
    (:class:`EdgeGraph`, K = ``max_det`` rows, default the preset's 100; input an S x S BGR image)
    or with ``include_postprocess=False`` the core graph, with the yolact config in its metadata;
    ``model`` is not changed. The package appears whole or not at all. Raises YolactError when
    coremltools is missing or the conversion fails (one line)."""
    ct = _coremltools()
    path = Path(path)
    if path.suffix.lower() != ".mlpackage":
        raise YolactError(f"{path}: a Core ML program is written as a .mlpackage")
    if include_postprocess:
        graph, net, size = edge_graph(model, img_size, max_det, nhwc_uint8=False)
        dummy = edge_dummy(size, nhwc_uint8=False)
        inputs = [ct.ImageType(name=EDGE_INPUT, shape=(1, 3, size, size), color_layout=ct.colorlayout.BGR)]
        outputs = [ct.TensorType(name=n) for n in EDGE_OUTPUTS]
    else:
        graph, net, size = export_core_graph(model, img_size)
        dummy = torch.zeros(1, 3, size, size)
        inputs = [ct.TensorType(name=INPUT, shape=(1, 3, size, size), dtype=np.float32)]
        outputs = [ct.TensorType(name=n, dtype=np.float32) for n in CORE_OUTPUTS]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(graph, (dummy,), check_trace=False)
            mlmodel = ct.convert(
                traced, source="pytorch", convert_to="mlprogram", inputs=inputs, outputs=outputs,
                compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS16,
                skip_model_load=True)
    except YolactError:
        raise
    except Exception as e:  # noqa: BLE001 - any converter failure becomes one line
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
        raise YolactError(f"Core ML conversion (coremltools) failed: {last}") from e
    meta = {"yolact_config": net.cfg.to_dict(), "include_postprocess": bool(include_postprocess),
            "edge_graph": bool(include_postprocess)}
    mlmodel.user_defined_metadata[META_KEY] = json.dumps(meta)
    if include_postprocess:
        k = net.cfg.max_num_detections
        mlmodel.short_description = (f"YOLACT whole pipeline ({net.cfg.name}), input {EDGE_INPUT}: BGR image "
                                     f"{size} x {size}; outputs {', '.join(EDGE_OUTPUTS)} (K = {k} rows, the first "
                                     "count valid); Fast NMS and masks inside")
        mlmodel.input_description[EDGE_INPUT] = f"BGR image resized to {size} x {size}"
        for name, text in zip(EDGE_OUTPUTS, (
                f"x1, y1, x2, y2 in pixels of the {size} x {size} input [K, 4]", "detection scores [K]",
                "class scores [K]", "0-based class index, int32 [K]", "soft masks 0..1 on the prototype grid, "
                "cropped to the box [K, Hp, Wp]", "valid rows, int32 [1]")):
            mlmodel.output_description[name] = text
    else:
        mlmodel.short_description = (f"YOLACT core graph ({net.cfg.name}), input {INPUT} float32 [1, 3, {size}, "
                                     f"{size}] BGR 0..255; outputs boxes, scores, coefs, proto; NMS and masks on the host")
        mlmodel.input_description[INPUT] = f"BGR image resized to {size} x {size}, 0..255, float32 [1, 3, S, S]"
        for name, text in zip(CORE_OUTPUTS, ("relative x1, y1, x2, y2 [1, P, 4]", "softmax, background first [1, P, C+1]",
                                             "mask coefficients [1, P, K]", "prototypes [1, Hp, Wp, K]")):
            mlmodel.output_description[name] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    # coremltools saves only to a name ending in .mlpackage: a hidden temp folder beside the
    # target holds it, then one rename puts it in place
    part = path.with_name(f".{path.name}.part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir()
    try:
        try:
            mlmodel.save(str(part / path.name))
        except Exception as e:  # noqa: BLE001
            raise YolactError(f"{path}: could not write the Core ML package ({str(e)[:200]})") from e
        replace_dir(part / path.name, path)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return path


def read_spec(path: Union[str, os.PathLike]) -> Dict:
    """What a ``.mlpackage`` declares, read on any system: ``inputs`` and ``outputs`` (name ->
    shape list, None where the spec gives none), ``metadata`` (the yolact dict, or None),
    ``spec_version``. Raises YolactError for a missing or unreadable package."""
    ct = _coremltools()
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such Core ML package")
    try:
        spec = ct.utils.load_spec(str(p))
    except Exception as e:  # noqa: BLE001
        raise YolactError(f"{p}: not a readable Core ML package ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") \
            from None

    def shape(feature):
        if feature.type.WhichOneof("Type") == "imageType":  # an image input: [1, 3, H, W]
            return [1, 3, int(feature.type.imageType.height), int(feature.type.imageType.width)]
        t = feature.type.multiArrayType
        return [int(d) for d in t.shape] or None

    def kind(feature):
        which = feature.type.WhichOneof("Type")
        if which == "multiArrayType":
            return "multiArray:" + ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(
                feature.type.multiArrayType.dataType)
        return which

    raw = spec.description.metadata.userDefined.get(META_KEY)
    return {"inputs": {f.name: shape(f) for f in spec.description.input},
            "outputs": {f.name: shape(f) for f in spec.description.output},
            "types": {f.name: kind(f) for f in (*spec.description.input, *spec.description.output)},
            "metadata": json.loads(raw) if raw else None, "spec_version": int(spec.specificationVersion)}


def describe_coreml(path: Union[str, os.PathLike]) -> Dict:
    """``yolact info`` of a ``.mlpackage``, read from its spec and metadata on any system (the
    package is not run): :func:`yolact.prediction.info.model_info`'s dict (preset, classes,
    input size in pixels; no parameter or FLOP count), plus ``inputs`` and ``outputs`` (name ->
    shape), ``graph``, ``max_det`` (K), ``stored`` (fp32: the only Core ML export) and ``note``. Raises YolactError for a missing or unreadable package, or one
    without yolact metadata."""
    from types import SimpleNamespace

    from ..prediction.info import model_info

    spec = read_spec(path)
    cfg, whole = read_metadata(Path(path), spec["metadata"])
    info = model_info(SimpleNamespace(cfg=cfg), path)
    masks = spec["outputs"].get("masks") if whole else None  # the whole pipeline's K rows
    info.update(graph="whole pipeline" if whole else "core graph", stored="fp32",
                max_det=int(masks[0]) if masks else (cfg.max_num_detections if whole else None))
    shape = spec["inputs"].get(INPUT) or spec["inputs"].get(EDGE_INPUT)  # core graph, whole pipeline
    if shape:
        info["input_size"] = int(shape[-1])
    info["inputs"], info["outputs"] = spec["inputs"], spec["outputs"]
    info["note"] = (f"described from its spec (ML Program, spec version {spec['spec_version']}); "
                    "Core ML runs it on macOS only")
    return info


def macos_only(path) -> None:
    """Core ML runs on macOS only: a one-line YolactError elsewhere."""
    if sys.platform != "darwin":
        raise YolactError(f"{path}: Core ML runs on macOS only (this is {platform.system() or sys.platform}); "
                          "predict with the ONNX, OpenVINO, LiteRT, ExecuTorch or NCNN export here")


class CoreMLPredictor(GraphPredictor):
    """A ``.mlpackage`` from :func:`export_coreml` run by Core ML through coremltools, with the
    common ``predict``. macOS only (not tested in this project's CI, which runs on Linux): elsewhere
    the constructor raises YolactError in one line, as for a missing, unloadable or foreign
    package, or a missing coremltools."""

    backend = "coreml"

    def __init__(self, path: Union[str, os.PathLike]):
        p = Path(path)
        if not p.exists():
            raise YolactError(f"{p}: no such Core ML package")
        macos_only(p)
        ct = _coremltools()
        spec = read_spec(p)
        self.cfg, self.include_postprocess = read_metadata(p, spec["metadata"])
        self.edge_outputs = bool(spec["metadata"].get("edge_graph"))
        try:
            self.model = ct.models.MLModel(str(p), compute_units=ct.ComputeUnit.CPU_ONLY)
        except Exception as e:  # noqa: BLE001
            raise YolactError(f"{p}: not a loadable Core ML package ({str(e)[:200]})") from None
        self.path, self.tracker, self.precision = p, None, "fp32"

    def run_each(self, images: np.ndarray) -> list:
        """Float32 images [N, 3, S, S] (BGR 0..255, resized) -> per image the core graph's four
        outputs without the batch axis; one prediction per image."""
        out = []
        for i in range(len(images)):
            if self.edge_outputs:  # an image input: a PIL image (RGB; Core ML hands the model BGR)
                from PIL import Image

                res = self.model.predict({EDGE_INPUT: Image.fromarray(self.edge_input(images[i])[0][..., ::-1].copy())})
                out.append([np.asarray(res[name]).copy() for name in EDGE_OUTPUTS])
                continue
            res = self.model.predict({INPUT: np.ascontiguousarray(images[i:i + 1], dtype=np.float32)})
            out.append([np.asarray(res[name], dtype=np.float32)[0].copy() for name in CORE_OUTPUTS])
        return out


# ---------------------------------------------------------------- the row of yolact.formats
def load_coreml(path, config=None, device=None, precision: str = "fp32", strict: bool = True, compile=None):
    """A CoreMLPredictor for ``path`` (macOS only; fp32; no ``compile``); ``config``,
    ``device``, ``strict`` are not used."""
    refuse_compile(path, compile, CoreMLPredictor.backend)
    if precision != "fp32":
        raise YolactError(f"{path}: a Core ML package runs fp32 (--precision {precision} is not available)")
    return CoreMLPredictor(path)


def export_coreml_file(model, options, log=print) -> Path:
    """``yolact export --format coreml``: the core graph as a ``.mlpackage``; flags it cannot
    honour are refused before any work."""
    refuse_core_only_options(options, "coreml", "model", full_graph=True)
    full = edge_postprocess(options)
    out = Path(options.out or Path(str(options.weights or "yolact")).with_suffix(".mlpackage").name)
    path = export_coreml(model, out, img_size=options.img_size, include_postprocess=full,
                         max_det=getattr(options, "max_det", None))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    what = "whole pipeline (NMS and masks inside)" if full else "core graph"
    log(f"wrote {path} ({size:.1f} MB, Core ML fp32 {what}; runs on macOS)")
    return path
