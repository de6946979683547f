"""Reusable checks of option values, run before any work starts: each raises YolactError (the CLI
prints it as one line and exits with 2) naming the option and what it accepts."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import YolactError


def number(name: str, value: Optional[float]) -> None:
    """Refuse nan and infinities (``float('nan')`` passes no comparison, so a range check would
    either let it through or call it out of range): 'not a number' / 'not finite'."""
    if isinstance(value, float) and not math.isfinite(value):
        raise YolactError(f"{name} {value}: not a number" if math.isnan(value) else f"{name} {value}: not finite")


def at_least(name: str, value: Optional[float], low: float) -> None:
    """Refuse ``value`` < ``low`` (None = not given, accepted). ``name``: the flag, e.g. '--iters'."""
    number(name, value)
    if value is not None and value < low:
        raise YolactError(f"{name} {value}: must be at least {low}")


def positive(name: str, value: Optional[float]) -> None:
    """Refuse ``value`` <= 0 (None = not given, accepted)."""
    number(name, value)
    if value is not None and not value > 0:
        raise YolactError(f"{name} {value}: must be > 0")


def in_range(name: str, value: Optional[float], low: float, high: float) -> None:
    """Refuse ``value`` outside [low, high] (None = not given, accepted)."""
    number(name, value)
    if value is not None and not low <= value <= high:
        raise YolactError(f"{name} {value}: must be in {low}..{high}")


def choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Refuse ``value`` not in ``choices`` (None = not given, accepted)."""
    choices = list(choices)
    if value is not None and value not in choices:
        raise YolactError(f"{name} {value}: expected one of {', '.join(map(str, choices))}")


def needs(name: str, given: bool, other: str, other_given: bool) -> None:
    """Refuse option ``name`` given without ``other`` (which it has no effect without)."""
    if given and not other_given:
        raise YolactError(f"{name} has no effect without {other}")


def exclusive(name: str, given: bool, other: str, other_given: bool) -> None:
    """Refuse options ``name`` and ``other`` given together (one would be ignored)."""
    if given and other_given:
        raise YolactError(f"{name} and {other} contradict each other: give one of them")


def img_size(name: str, value: Optional[int]) -> None:
    """An input size: a multiple of 32 of at least 64 (what predict accepts: the model's strides)."""
    if value is not None and (value < 64 or value % 32):
        raise YolactError(f"{name} {value}: expected a multiple of 32, at least 64")


def existing_file(name: str, value) -> None:
    """Refuse an input file that does not exist or is a folder (None = not given, accepted)."""
    if value is None:
        return
    p = Path(value)
    if p.is_dir():
        raise YolactError(f"{name} {value}: is a folder; a file is meant")
    if not p.exists():
        raise YolactError(f"{name} {value}: no such file")


def existing_folder(name: str, value) -> None:
    """Refuse an input folder that does not exist or is a file (None = not given, accepted)."""
    if value is None:
        return
    p = Path(value)
    if p.is_file():
        raise YolactError(f"{name} {value}: is a file; a folder is meant")
    if not p.exists():
        raise YolactError(f"{name} {value}: no such folder")


def output_file(name: str, value) -> None:
    """Refuse an output file path that names an existing folder (None = not given, accepted)."""
    if value is not None and Path(value).is_dir():
        raise YolactError(f"{name} {value}: is a folder; a file is meant")


def output_folder(name: str, value) -> None:
    """Refuse an output folder path that names an existing file (None = not given, accepted)."""
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise YolactError(f"{name} {value}: is a file; a folder is meant")


def device(name: str, value: Optional[str]) -> None:
    """Refuse a device this machine lacks: an unknown name, CUDA without CUDA, MPS without MPS
    (None, '' and 'auto' accepted)."""
    if value in (None, "", "auto"):
        return
    import torch

    try:
        dev = torch.device(value)
    except RuntimeError as e:
        raise YolactError(f"{name} {value}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise YolactError(f"{name} {value}: CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise YolactError(f"{name} {value}: MPS is not available on this machine")


def resolve_device(value, name: str = "--device"):
    """``value`` (a device name, a torch.device, or None/''/'auto') as the torch.device to use,
    always with an index for CUDA: None, '' and 'auto' mean ``cuda:<current>`` when CUDA is
    there, else the CPU; a bare 'cuda' means the current CUDA device (``cuda:0`` unless set).
    Some CUDA calls refuse a device without an index (``torch.cuda.set_device`` raises
    "Expected a torch.device with a specified index" in torch 2.11), and 'cuda' != 'cuda:0' in
    device comparisons, so callers normalise here, once. Raises YolactError for an unknown name,
    a device this machine lacks (:func:`device`) or a CUDA index past the last GPU."""
    import torch

    if value in (None, "", "auto"):
        value = "cuda" if torch.cuda.is_available() else "cpu"
    device(name, str(value))
    dev = torch.device(value)
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if dev.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if dev.index >= count:
            raise YolactError(f"{name} {value}: no such CUDA device (this machine has {count}: "
                              f"cuda:0..cuda:{count - 1})")
    return dev


# The modules each pip extra of pyproject.toml provides (import names), checked before a verb that
# needs them starts: a missing one is one line naming the extra, never an ImportError traceback.
EXTRA_MODULES = {
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
    "openvino": ("openvino", "nncf"),
    "ncnn": ("pnnx", "ncnn"),
    "coreml": ("coremltools",),
    "serve": ("fastapi", "uvicorn", "multipart"),
    "track": ("scipy",),
}


def missing_modules(extra: str) -> list:
    """The import names of ``extra``'s modules that are not installed ([] when all are)."""
    import importlib.util

    missing = []
    for module in EXTRA_MODULES.get(extra, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError, AttributeError):  # a module blocked in sys.modules
            found = False
        if not found:
            missing.append(module)
    return missing


def extra(what: str, name: Optional[str]) -> None:
    """Refuse ``what`` (e.g. 'export --format onnx') when pip extra ``name`` is not installed, in one
    line naming the extra: ``pip install 'yolact[<name>]'``. None: no extra needed."""
    if name is None:
        return
    missing = missing_modules(name)
    if missing:
        raise YolactError(f"{what} needs {', '.join(missing)}: pip install 'yolact[{name}]'")
