"""Helpers shared by the verbs: model arguments and loading, devices, sources, problem lists."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from ..config import PRECISIONS
from ..errors import YolactError


def device(name: Optional[str]):
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise YolactError(f"--device {name}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise YolactError(f"--device {name}: CUDA is not available on this machine")
    return dev


def weights_path(weights: Optional[str]) -> str:
    """--weights, with None or 'demo' meaning the built-in demo model."""
    import yolact

    if weights in (None, "demo"):
        weights = yolact.demo_weights_path()
        if not Path(weights).exists():
            raise YolactError(f"{weights}: the built-in demo model is missing from this install")
    return str(weights)


def load_model(args):
    """The model named by the arguments of :func:`add_model_args`."""
    import yolact

    weights = weights_path(args.weights)
    backend = getattr(args, "backend", "torch")
    if backend == "onnxruntime":
        from ..export import OnnxModel
        return OnnxModel(weights, config=getattr(args, "config", None))
    if backend == "openvino":
        from ..openvino_backend import OpenVinoModel
        return OpenVinoModel(weights, precision=getattr(args, "precision", "fp32"))
    return yolact.load(weights, config=getattr(args, "config", None), device=device(getattr(args, "device", None)),
                       precision=getattr(args, "precision", "fp32"), compile=getattr(args, "compile", None))


def add_model_args(p: argparse.ArgumentParser, backend: bool = False, also: tuple = ()) -> None:
    """--weights, --config, --device, --precision, --compile; --backend (plus ``also``) when asked."""
    p.add_argument("--weights", "-w", default=None,
                   help="checkpoint (.pth official or .pt from `yolact train`); default: the built-in demo model")
    p.add_argument("--config", "-c", default=None, help="preset name (default: inferred from the checkpoint)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="inference precision (fp32 is exact; fp32-fused folds BN, ~20%% faster on CPU; "
                        "bf16/fp16/int8 are faster still)")
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   choices=["default", "max-autotune", "reduce-overhead"],
                   help="torch.compile the network (reduce-overhead: CUDA graphs); first call compiles")
    if backend:
        p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "openvino", *also],
                       help="run the PyTorch model, an exported .onnx file (--weights model.onnx) or an "
                            "OpenVINO IR (--weights model.xml; --precision fp32 or bf16)")


def expand_sources(sources: List[str]):
    """-> list of (kind, value): ('image', path) | ('video', path) | ('webcam', index)."""
    from ..data.images import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
    from ..engine.video import webcam_index

    out = []
    for s in sources:
        if webcam_index(s) is not None:
            out.append(("webcam", webcam_index(s)))
            continue
        p = Path(s)
        if not p.exists():
            raise YolactError(f"{p}: no such file or directory")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise YolactError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += [("image", str(f)) for f in files]
        elif p.suffix.lower() in VIDEO_EXTENSIONS:
            out.append(("video", str(p)))
        else:
            out.append(("image", str(p)))
    return out


def report_problems(problems: List[str], limit: int = 5) -> None:
    """What was skipped: a count and the first few, as ``warning:`` lines on stderr."""
    from ..errors import warn

    if problems:
        warn(f"skipped {len(problems)} object(s)/file(s)")
        for p in problems[:limit]:
            warn(p)
        if len(problems) > limit:
            warn(f"... and {len(problems) - limit} more (yolact data check lists them all)")


def class_list(path: Optional[str]):
    from ..data.builder import read_class_list

    return read_class_list(path) if path else None
