"""Every inference path side by side (``yolact benchmark --backend all``): PyTorch fp32,
fp32-fused and bf16, ONNX Runtime fp32 and int8, OpenVINO fp32, bf16 and int8. Each row: the
median end-to-end latency, fps, the ratio to PyTorch fp32, the ratio to the compute floor of
its arithmetic (FLOPs / measured GEMM rate of fp32, bf16 or int8), and the mask AP when an
annotated set is given. Paths whose extra is not installed are listed as skipped."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import YolactError
from ..formats import FORMATS, resolve


def rows_of_table() -> Tuple[Tuple[str, str], ...]:
    """(backend, precision) of every path ``--backend all`` times: each row of the formats table
    (:mod:`yolact.formats`) with its ``benchmark_precisions``, in table order."""
    return tuple((f.name, p) for f in FORMATS.values() if f.benchmark is not None for p in f.benchmark_precisions)


# The built-in paths: torch fp32, fp32-fused, bf16; onnxruntime fp32, int8; openvino fp32, bf16, int8.
ROWS = rows_of_table()
FLOOR_DTYPE = {"fp32": torch.float32, "fp32-fused": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}


def missing_extras(rows) -> Dict[str, str]:
    """backend -> why its rows cannot run here, for each backend of ``rows`` whose pip extra
    (the formats table's ``extra``) is not installed: ``"needs onnxruntime: pip install
    'yolact[onnx]'"``. Checked before any work, so the user learns it up front."""
    from ..checks import missing_modules

    out = {}
    for backend in dict.fromkeys(b for b, _ in rows):
        extra = FORMATS[backend].extra
        missing = missing_modules(extra) if extra else []
        if missing:
            out[backend] = f"needs {', '.join(missing)}: pip install 'yolact[{extra}]'"
    return out


def _build(weights: str, base, backend: str, precision: str, work: Path, calibration: List[np.ndarray]):
    """The model of one row; exports come from ``base`` (the fp32 model) into ``work``."""
    return resolve(FORMATS[backend].benchmark)(weights, base, precision, work, calibration)


def compare_backends(weights: str, image: np.ndarray, calibration: List[np.ndarray], warmup: int = 2,
                     repeats: int = 5, ann: Optional[str] = None, images: Optional[str] = None,
                     rows=None, log=print) -> List[Dict]:
    """Time every path of ``rows`` (default: :func:`rows_of_table`) on ``image`` (BGR uint8) from
    the PyTorch checkpoint ``weights`` (exports and int8 quantisation, calibrated on
    ``calibration``, go to a temp folder). Returns
    one dict per row that ran: backend, precision, latency_s (median), fps, floor_s, vs_fp32,
    vs_floor, and mask_ap (0..1) with mask_ap_delta when ``ann`` and ``images`` are given. A
    path that cannot be built (ImportError or YolactError, e.g. its extra is missing) is logged
    as skipped; a backend whose pip extra is missing is said first, naming the extra, and skipped."""
    from ..evaluation.coco import evaluate
    from ..model.flops import count_flops
    from .timing import benchmark, gemm_rate
    from . import load_predictor

    rows = rows_of_table() if rows is None else rows
    absent = missing_extras(rows)
    for backend, why in absent.items():
        log(f"{backend} ({', '.join(p for b, p in rows if b == backend)}): skipped, {why}")
    rows = [r for r in rows if r[0] not in absent]
    base = load_predictor(weights, device="cpu", precision="fp32")
    flops = count_flops(base)
    rates = {k: gemm_rate(v) for k, v in FLOOR_DTYPE.items() if k != "fp32-fused"}
    rates["fp32-fused"] = rates["fp32"]
    out: List[Dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend, precision in rows:
            try:
                model = _build(weights, base, backend, precision, Path(tmp), calibration)
            except (ImportError, YolactError) as e:
                log(f"{backend} {precision}: skipped ({e})")
                continue
            r = benchmark(model, image, warmup=warmup, repeats=repeats)
            row = {"backend": backend, "precision": precision, "latency_s": r["latency_s"], "fps": r["fps"],
                   "floor_s": flops / rates[precision]}
            if ann and images:
                row["mask_ap"] = evaluate(model, ann, images, progress=False)["segm"]["AP"]
            out.append(row)
            log(f"{backend} {precision}: {1000 * row['latency_s']:.1f} ms")
    ref = next((r for r in out if (r["backend"], r["precision"]) == ("torch", "fp32")), None)
    for r in out:
        r["vs_fp32"] = r["latency_s"] / ref["latency_s"] if ref else float("nan")
        r["vs_floor"] = r["latency_s"] / r["floor_s"]
        if ref is not None and "mask_ap" in r:
            r["mask_ap_delta"] = r["mask_ap"] - ref["mask_ap"]
    return out


def format_backends(rows: List[Dict]) -> str:
    """The rows of :func:`compare_backends` as a text table (latency in ms, mask AP 0..1 as everywhere)."""
    has_ap = any("mask_ap" in r for r in rows)
    head = f"{'backend':<13}{'precision':<11}{'latency ms':>11}{'fps':>8}{'vs fp32':>9}{'vs floor':>10}"
    head += f"{'mask AP':>9}{'delta':>7}" if has_ap else ""
    lines = [head]
    for r in rows:
        line = (f"{r['backend']:<13}{r['precision']:<11}{1000 * r['latency_s']:11.1f}{r['fps']:8.2f}"
                f"{r['vs_fp32']:9.2f}{r['vs_floor']:10.2f}")
        if has_ap:
            line += f"{r['mask_ap']:9.3f}{r.get('mask_ap_delta', float('nan')):+7.3f}" if "mask_ap" in r else ""
        lines.append(line)
    return "\n".join(lines)
