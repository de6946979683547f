"""The PyTorch row of the weights formats table (:mod:`yolact.formats`): ``.pth``/``.pt`` files
load as a TorchPredictor; ``yolact export --format torch-fp16`` writes a compact checkpoint."""
from __future__ import annotations

from pathlib import Path


def load_torch(path, config=None, device=None, precision=None, strict: bool = True, compile=None):
    """A TorchPredictor for a checkpoint (see TorchPredictor.from_file; precision None: the
    model's default)."""
    from ..prediction.predictor import TorchPredictor

    return TorchPredictor.from_file(path, config, device, strict, precision, compile)


def export_torch_fp16(model, options, log=print) -> Path:
    """``yolact export --format torch-fp16``: config + fp16 weights, next to the weights file
    (``<stem>_fp16.pt``) unless ``options.out`` says where; a hub file writes into the current
    folder."""
    from ..checkpoint import save_compact

    src = Path(str(options.weights))
    src = Path(src.name) if str(options.weights).startswith("hf://") else src  # hub file: write here, not in hf:/
    out = Path(options.out or src.with_name(src.stem + "_fp16.pt"))
    save_compact(out, model)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, fp16 weights, config embedded)")
    return out


def benchmark_torch(weights: str, base, precision: str, work: Path, calibration):
    """The PyTorch model of one ``benchmark --backend all`` row: the checkpoint at ``precision``."""
    from . import load_predictor

    return load_predictor(weights, device="cpu", precision=precision)
