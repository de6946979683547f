"""``--precision int8`` on a PyTorch checkpoint (CPU): the checkpoint is quantised once, with
the faster int8 runtime that is installed, and the quantised file is cached.

PyTorch itself has no int8 inference path here, so int8 always means an exported graph. Which
runtime: the first installed of :data:`INT8_RUNTIMES`, in the order measured in BENCHMARKS.md
("The CPU int8 path"): OpenVINO int8 ran at 0.54x of PyTorch fp32 and ONNX Runtime int8 (static
QDQ) at 0.84x on an AVX2 EPYC; on an AMX Xeon 0.23x against 1.22x; on an AVX-512 VNNI EPYC
0.21x against 0.63x of the original's fp32. OpenVINO's file has the post-processing inside
(:class:`OpenVinoInt8`). One line says which runtime was used, on what it was calibrated and
where the file is.

Calibration: without ``calib``, 32 images of the synthetic shapes generator (the demo model's
domain). For a model of real photographs, calibrate on your own images (``calib=`` a folder or
``yolact predict --precision int8 --calib DIR``), or export once with
``yolact export --format openvino --int8 --calib DIR`` and load that file.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from ..errors import YolactError
from .openvino import OpenVinoPredictor  # OpenVINO itself is imported when a predictor is made

CALIB_COUNT = 32


@dataclass(frozen=True)
class Int8Runtime:
    """One int8 runtime: the module that must import, the pip extra, the cached file's name,
    and ``make(model, path, calibration)`` writing the quantised file there."""

    name: str
    title: str
    module: str
    extra: str
    filename: str
    make: Callable


def _make_openvino(model, path: Path, calibration) -> None:
    """The IR with post-processing inside (:class:`OpenVinoInt8` runs it first)."""
    from .openvino import export_openvino

    export_openvino(model, path, int8="full", calibration=calibration, include_postprocess=True)


def _make_openvino_core(model, path: Path, calibration) -> None:
    from .openvino import export_openvino

    export_openvino(model, path, int8="full", calibration=calibration)


def _make_onnxruntime(model, path: Path, calibration) -> None:
    from .onnx import export_onnx, quantize_onnx

    fp32 = path.with_name("model_fp32.onnx")
    export_onnx(model, fp32)
    quantize_onnx(fp32, path, calibration)
    fp32.unlink()


#: Fastest first (BENCHMARKS.md "The CPU int8 path", two CPU kinds measured).
INT8_RUNTIMES = (
    Int8Runtime("openvino", "OpenVINO", "nncf", "openvino", "model_int8_post.xml", _make_openvino),
    Int8Runtime("onnxruntime", "ONNX Runtime", "onnxruntime", "onnx", "model_int8.onnx", _make_onnxruntime),
)


def cache_root() -> Path:
    """Where quantised checkpoints are kept: ``$YOLACT_CACHE_DIR``, else ``$XDG_CACHE_HOME/yolact``,
    else ``~/.cache/yolact``; then ``int8/``."""
    base = os.environ.get("YOLACT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "yolact"
    return Path(base) / "int8"


def pick_runtime(available: Optional[Callable[[str], bool]] = None) -> Int8Runtime:
    """The first runtime of :data:`INT8_RUNTIMES` whose module imports. Raises YolactError naming
    both extras when none does."""
    available = available or (lambda m: importlib.util.find_spec(m) is not None)
    for rt in INT8_RUNTIMES:
        if available(rt.module) and (rt.name != "openvino" or available("openvino")):
            return rt
    raise YolactError("--precision int8 on a PyTorch checkpoint runs through OpenVINO or ONNX Runtime: "
                      "pip install 'yolact[openvino]' (faster on CPU) or 'yolact[onnx]'")


def _fingerprint(path: Path, runtime: Int8Runtime, calib: Optional[str], count: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    calib_key = "synthetic" if calib is None else str(Path(calib).resolve())
    mod = importlib.import_module(runtime.module)
    h.update(f"|{runtime.name}|{getattr(mod, '__version__', '')}|{calib_key}|{count}".encode())
    return h.hexdigest()[:16]


def load_int8(path, config=None, device=None, calib: Optional[str] = None, calib_images: Optional[str] = None,
              calib_count: int = CALIB_COUNT, strict: bool = True, log=None):
    """A predictor running checkpoint ``path`` in int8 on the CPU: the quantised file of the
    fastest installed runtime, made on first use and cached under :func:`cache_root` (keyed by
    the checkpoint's bytes, the runtime and its version, and the calibration source).

    ``calib``: a folder of images or a COCO .json (``calib_images``: its image folder); None
    for the synthetic shapes. Raises YolactError for a non-CPU device, a missing runtime, or
    an unreadable checkpoint or calibration source."""
    import torch

    if device is not None and torch.device(device).type != "cpu":
        raise YolactError(f"--precision int8 runs on the CPU (OpenVINO or ONNX Runtime), not on {device}")
    from ..formats import format_for, resolve

    runtime = pick_runtime()
    path = Path(path)
    folder = cache_root() / f"{path.stem}-{_fingerprint(path, runtime, calib, calib_count)}"
    target = folder / runtime.filename
    made = not target.exists()
    if made:
        _make_cached(path, runtime, folder, config, strict, calib, calib_images, calib_count)
    source = f"{calib_count} synthetic images (pass --calib DIR of your own images for real photographs)" \
        if calib is None else f"images of {calib}"
    best = INT8_RUNTIMES[0]
    why = (f" (measured faster than {', '.join(rt.title for rt in INT8_RUNTIMES[1:])} int8 on CPU)" if runtime is best
           else f" ({best.title} int8 is faster on CPU: pip install 'yolact[{best.extra}]')")
    log = log or (lambda line: print(f"note: {line}", file=sys.stderr, flush=True))
    log(f"int8: {runtime.title}{why}, calibrated on {source}; {'cached' if made else 'from the cache'}: {target}")
    try:
        if runtime.name == "openvino":
            def core():  # the core IR beside it, made on first need (another NMS, prototypes, ...)
                target_core = folder / CORE_FILENAME
                if not target_core.exists():
                    core_runtime = replace(runtime, filename=CORE_FILENAME, make=_make_openvino_core)
                    _make_cached(path, core_runtime, folder, config, strict, calib, calib_images, calib_count)
                    log(f"int8: the core graph (NMS on the host) for these options; cached: {target_core}")
                return OpenVinoPredictor(target_core)

            return OpenVinoInt8(target, core)
        return resolve(format_for(target).predictor)(target)
    except YolactError as e:
        if made:
            raise
        raise YolactError(f"{e} (a damaged int8 cache entry: delete {folder} and it is made again)") from None


def _make_cached(path: Path, runtime: Int8Runtime, folder: Path, config, strict: bool, calib, calib_images,
                 calib_count: int) -> None:
    """Quantise checkpoint ``path`` into the cache ``folder``: written in a temporary folder and
    renamed, so a half-written model is never found. A folder left without its model (an
    interrupted or damaged entry) is replaced. Raises YolactError for a cache that cannot be
    written (e.g. YOLACT_CACHE_DIR naming a file)."""
    import shutil

    from ..prediction.predictor import TorchPredictor
    from .calibration import calibration_images

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:  # before the work: a cache that cannot be written stops at once
        tmp.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise YolactError(f"int8 cache {cache_root()}: cannot be written ({e.strerror}); set YOLACT_CACHE_DIR "
                          "to a writable folder") from None
    try:
        model = TorchPredictor.from_file(path, config=config, device="cpu", strict=strict, precision="fp32")
        calibration = calibration_images(calib, calib_images, calib_count, model.cfg.max_size)
        runtime.make(model, tmp / runtime.filename, calibration)
        if folder.is_dir() and any(folder.iterdir()) and runtime.filename == CORE_FILENAME:
            for f in tmp.iterdir():  # beside the entry's post-processing IR (.xml last: it marks the whole)
                if f.suffix != ".xml":
                    f.replace(folder / f.name)
            (tmp / runtime.filename).replace(folder / runtime.filename)
            return
        if folder.exists() and not (folder / runtime.filename).exists():
            shutil.rmtree(folder, ignore_errors=True)  # a damaged entry: replaced
        try:
            tmp.rename(folder)
        except OSError:  # another process cached it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CORE_FILENAME = "model_int8.xml"


class OpenVinoInt8(OpenVinoPredictor):
    """``--precision int8`` through OpenVINO: the int8 IR with the post-processing inside (Fast NMS
    in the graph: 0.21x of the original's latency for yolact_base at 640x480 on an AVX-512 VNNI
    CPU, against 0.22x for the core IR with NMS on the host; BENCHMARKS.md "The CPU int8 path"),
    and the core IR for what that graph cannot do: another NMS or IoU threshold, prototypes, more
    than its K detections. ``core``: makes that predictor, called on first need."""

    def __init__(self, path, core: Callable):
        super().__init__(path)
        self._make_core, self._core = core, None

    def _serves(self, o) -> bool:
        return (o.nms == "fast" and (o.iou is None or o.iou == self.cfg.nms_thresh) and not o.keep_proto
                and o.top_k <= self.cfg.max_num_detections)

    def _detect(self, images, options):
        if all(self._serves(o) for o in options):
            return super()._detect(images, options)
        if self._core is None:
            self._core = self._make_core()
        return self._core._detect(images, options)
