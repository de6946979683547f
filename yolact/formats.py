"""The weights formats table: one row per kind of file ``yolact.load`` reads and ``yolact export``
writes (Ultralytics' export table, timm's registry). Everything that depends on the format reads
this table: the suffix rule (:func:`format_for`, the only one), ``yolact.load``'s backend
choice, the CLI's ``--backend`` and ``export --format`` choices and their dispatch, ``yolact
info``'s file origin and ``benchmark --backend all``'s paths.

The table is data: a row names its functions as ``"module:attr"`` strings, imported only when
used (:func:`resolve`), so reading a ``.pth`` file never imports onnxruntime. It lives in the
lowest layer because ``yolact.prediction.info`` (below ``deploy``) reads it.

Adding a format = one module with its functions + one :func:`register_format` call (or row
below). The functions' contracts:

* ``predictor(path, config=None, device=None, precision='fp32', strict=True, compile=None)``
  -> a :class:`~yolact.prediction.predictor.Predictor`; raises YolactError for options it
  does not take.
* ``export(model, options, log=print)`` -> the main file written. ``model``: the fp32
  TorchPredictor; ``options``: the ``yolact export`` flags as attributes (``weights``, ``out``,
  ``img_size``, ``include_postprocess``, ``dynamic_batch``, ``opset``, ``int8``, ``quantize``,
  ``calib``, ``calib_images``, ``calib_count``); ``log``: where the 'wrote ...' lines go.
* ``describe(path)`` (optional) -> :func:`yolact.prediction.info.model_info`'s dict read from
  the file without running it (``yolact info`` of a format that cannot run here).
* ``benchmark(weights, base, precision, work, calibration)`` -> the predictor of one
  ``benchmark --backend all`` row (exports of the fp32 model ``base`` go into the folder
  ``work``), for each precision of ``benchmark_precisions``.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from .errors import YolactError

Spec = Union[str, Callable]  # "module:attr" (attr may be dotted), or the object itself


@dataclass(frozen=True)
class WeightsFormat:
    """One weights format: how a file of it is recognised, loaded, written and described."""
    name: str                       # --backend, yolact.load(backend=...), predictor.backend
    suffixes: Tuple[str, ...]       # how the names it reads end, lower case: ".onnx", a folder's "_ncnn"
    predictor: Spec                 # loader -> Predictor (see the module docstring)
    precisions: Tuple[str, ...]     # the --precision values it runs
    title: str                      # in words, for help texts: "ONNX Runtime"
    description: str                # one line: what `yolact export --format <export_name>` writes
    export: Optional[Spec] = None   # writer (see the module docstring); None: nothing to export
    export_name: Optional[str] = None   # its `yolact export --format` name (default: name)
    export_suffix: Optional[str] = None  # the suffix the export writes (default: suffixes[0])
    extra: Optional[str] = None     # the pip extra it needs: pip install 'yolact[<extra>]'
    origin: Optional[str] = None    # `yolact info`'s origin of such a file (None: read from the file)
    benchmark: Optional[Spec] = None    # builder of a `benchmark --backend all` row
    benchmark_precisions: Tuple[str, ...] = ()  # the precisions `benchmark --backend all` times
    describe: Optional[Spec] = None  # `yolact info` without loading: path -> model_info's dict (Core ML: macOS only)

    @property
    def format_name(self) -> str:
        """The ``yolact export --format`` value of this row."""
        return self.export_name or self.name

    @property
    def output_suffix(self) -> str:
        """The suffix of the file its export writes."""
        return self.export_suffix or self.suffixes[0]


# The rows, in the order the CLI lists them. The first row is also what a file of any other
# suffix is read as (a PyTorch checkpoint, whatever its name).
FORMATS: Dict[str, WeightsFormat] = {}
DEFAULT_FORMAT = "torch"
DEFAULT_EXPORT = "onnx"  # yolact export's --format default


def register_format(fmt: WeightsFormat, replace: bool = False) -> WeightsFormat:
    """Add a row (at the end of the table); returns it. Raises ValueError for a name, export
    name or suffix another row has (unless ``replace``: the row of the same name is replaced)."""
    if not replace or fmt.name not in FORMATS:
        if fmt.name in FORMATS:
            raise ValueError(f"weights format '{fmt.name}' is already registered")
    others = [f for f in FORMATS.values() if f.name != fmt.name]
    taken = {s for f in others for s in f.suffixes} & {s.lower() for s in fmt.suffixes}
    if taken:
        raise ValueError(f"weights format '{fmt.name}': suffix {', '.join(sorted(taken))} belongs to another format")
    if fmt.export is not None and any(f.export is not None and f.format_name == fmt.format_name for f in others):
        raise ValueError(f"weights format '{fmt.name}': export --format {fmt.format_name} is taken")
    FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Remove a row added by :func:`register_format` (tests, plugins)."""
    FORMATS.pop(name, None)


def backends() -> Tuple[str, ...]:
    """The backend names, in table order (``--backend`` choices)."""
    return tuple(FORMATS)


def suffix_backends() -> Dict[str, str]:
    """Suffix -> backend name, for every suffix a row reads."""
    return {s: f.name for f in FORMATS.values() for s in f.suffixes}


def export_formats() -> Dict[str, WeightsFormat]:
    """``yolact export --format`` name -> row, for the rows that export, sorted by that name (the
    order of the choices and of the help text)."""
    return dict(sorted((f.format_name, f) for f in FORMATS.values() if f.export is not None))


def format_for(path: Union[str, os.PathLike], backend: Optional[str] = None) -> WeightsFormat:
    """The row of a weights file: ``backend``'s when given, else the one reading its suffix, else
    the default (PyTorch: a checkpoint may have any name). Raises YolactError for an unknown
    ``backend``. The one suffix rule of the package."""
    if backend is not None:
        if backend not in FORMATS:
            raise YolactError(f"unknown backend '{backend}' ({', '.join(FORMATS)})")
        return FORMATS[backend]
    name = Path(path).name.lower()
    # a row's suffix is how the name ends: '.onnx', or a folder's '_ncnn' (longest match wins)
    ends = [s for s in suffix_backends() if name.endswith(s)]
    return FORMATS[suffix_backends()[max(ends, key=len)]] if ends else FORMATS[DEFAULT_FORMAT]


def a_title(fmt: WeightsFormat) -> str:
    """'a LiteRT', 'an ONNX Runtime', 'an NCNN': the row's title with its article (an acronym
    read letter by letter takes 'an' before F, H, L, M, N, R, S, X as before a vowel)."""
    t = fmt.title
    acronym = len(t) > 1 and t[:2].isupper()
    return f"{'an' if t[:1] in ('AEIOUFHLMNRSX' if acronym else 'AEIOU') else 'a'} {t}"


def resolve(spec: Spec) -> Any:
    """A row's function: the object itself, or ``"package.module:attr"`` imported now."""
    if not isinstance(spec, str):
        return spec
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


for _row in (
    WeightsFormat(
        "torch", (".pth", ".pt"), "yolact.deploy.pytorch:load_torch",
        precisions=("fp32", "fp32-fused", "bf16", "fp16"), title="PyTorch",
        description="a compact PyTorch checkpoint with fp16 weights",
        export="yolact.deploy.pytorch:export_torch_fp16", export_name="torch-fp16", export_suffix=".pt",
        benchmark="yolact.deploy.pytorch:benchmark_torch", benchmark_precisions=("fp32", "fp32-fused", "bf16")),
    WeightsFormat(
        "onnxruntime", (".onnx",), "yolact.deploy.onnx:load_onnx",
        precisions=("fp32", "int8"), title="ONNX Runtime", description="onnx graph",
        export="yolact.deploy.onnx:export_onnx_file", export_name="onnx", extra="onnx",
        origin="exported by `yolact export` (ONNX graph)",
        benchmark="yolact.deploy.onnx:benchmark_onnx", benchmark_precisions=("fp32", "int8")),
    WeightsFormat(
        "openvino", (".xml",), "yolact.deploy.openvino:load_openvino",
        precisions=("fp32", "bf16", "int8"), title="OpenVINO IR", description="OpenVINO IR (.xml + .bin)",
        export="yolact.deploy.openvino:export_openvino_file", extra="openvino",
        origin="exported by `yolact export --format openvino` (OpenVINO IR)",
        benchmark="yolact.deploy.openvino:benchmark_openvino", benchmark_precisions=("fp32", "bf16", "int8")),
    WeightsFormat(
        "executorch", (".pte",), "yolact.deploy.executorch:load_executorch",
        precisions=("fp32",), title="ExecuTorch", description="ExecuTorch program (.pte, XNNPACK, NMS and masks inside)",
        export="yolact.deploy.executorch:export_executorch_file", extra="executorch",
        origin="exported by `yolact export --format executorch` (ExecuTorch program)",
        benchmark="yolact.deploy.executorch:benchmark_executorch", benchmark_precisions=("fp32",)),
    WeightsFormat(
        "litert", (".tflite",), "yolact.deploy.litert:load_litert",
        precisions=("fp32", "int8"), title="LiteRT", description="LiteRT / TFLite model (.tflite, NMS and masks inside)",
        export="yolact.deploy.litert:export_litert_file", extra="litert",
        origin="exported by `yolact export --format litert` (LiteRT model)",
        benchmark="yolact.deploy.litert:benchmark_litert", benchmark_precisions=("fp32", "int8")),
    WeightsFormat(
        "ncnn", ("_ncnn", ".param"), "yolact.deploy.ncnn:load_ncnn",
        precisions=("fp32", "fp16", "int8"), title="NCNN",
        description="NCNN model folder (NAME_ncnn/: .param + .bin, pnnx, core graph)",
        export="yolact.deploy.ncnn:export_ncnn_file", export_suffix="_ncnn/", extra="ncnn",
        origin="exported by `yolact export --format ncnn` (NCNN model)",
        benchmark="yolact.deploy.ncnn:benchmark_ncnn", benchmark_precisions=("fp32", "int8")),
    WeightsFormat(
        "coreml", (".mlpackage",), "yolact.deploy.coreml:load_coreml",
        precisions=("fp32",), title="Core ML", description="Core ML program (.mlpackage, NMS and masks inside; runs on macOS)",
        export="yolact.deploy.coreml:export_coreml_file", extra="coreml",
        origin="exported by `yolact export --format coreml` (Core ML program)",
        describe="yolact.deploy.coreml:describe_coreml"),
):
    register_format(_row)
del _row
