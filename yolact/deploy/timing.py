"""Timing tools, off the inference path: per-stage times, end-to-end latency, measured GEMM rate
(the compute floor). BN folding and FLOP counting are in :mod:`yolact.model`."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_times(model, image: np.ndarray, score_threshold: float = 0.15, top_k: int = 100) -> Dict[str, float]:
    """One inference of a TorchPredictor split into stages (seconds each): preprocess,
    backbone, fpn, protonet, heads (prediction heads, priors, decoding), nms, masks (the
    post-processing after NMS). The network runs as in ``predict`` (``forward_heads``, then
    ``decode_heads``); hooks on its modules read the clock between stages."""
    from ..model.postprocess import PostProcess
    from ..model.yolact import decode_heads

    dev = model.device
    post = PostProcess(model.cfg, model.maskiou_net)
    mark = time.perf_counter
    stamps: Dict[str, float] = {}

    def stamp(name):
        def hook(*_):
            _sync(dev)
            stamps.setdefault(name, mark())  # the first call (the protonet runs once, the heads per level)
        return hook

    hooks = [m.register_forward_hook(stamp(name)) for name, m in
             (("backbone", model.backbone), ("fpn", model.fpn), ("protonet", model.proto_net))]
    hooks.append(model.backbone.register_forward_pre_hook(stamp("start")))
    t: Dict[str, float] = {}
    try:
        with torch.no_grad():
            t0 = mark()
            x = model.transform()([image], dev).to(model.input_dtype)  # resize and normalise
            if model.precision != "fp32":
                x = x.contiguous(memory_format=torch.channels_last)
            out = decode_heads(model.forward_heads(x))
            _sync(dev)
            t_heads = mark()
            t["preprocess"] = stamps["start"] - t0
            t["backbone"] = stamps["backbone"] - stamps["start"]
            t["fpn"] = stamps["fpn"] - stamps["backbone"]
            t["protonet"] = stamps["protonet"] - stamps["fpn"]
            t["heads"] = t_heads - stamps["protonet"]
            t1 = mark()
            post.select(out.boxes[0], out.scores[0])
            _sync(dev)
            t["nms"] = mark() - t1
            t1 = mark()  # masks: the whole post-processing minus the NMS measured above
            det = post(out.boxes[0], out.scores[0], out.coef[0], out.proto[0], score_threshold, top_k)
            PostProcess.to_image(det, image.shape[0], image.shape[1], interpolation=model.cfg.mask_interpolation)
            _sync(dev)
            t["masks"] = max(mark() - t1 - t["nms"], 0.0)
    finally:
        for h in hooks:
            h.remove()
    return t


def benchmark(model, image: np.ndarray, warmup: int = 2, repeats: int = 5, batch_size: int = 1,
              score_threshold: float = 0.15) -> Dict:
    """Median end-to-end latency and per-stage medians."""
    images = [image] * batch_size
    for _ in range(warmup):
        model.predict(images if batch_size > 1 else image, score_threshold=score_threshold)
    totals: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(images if batch_size > 1 else image, score_threshold=score_threshold, keep_image=False)
        totals.append(time.perf_counter() - t0)
    result = {"latency_s": statistics.median(totals), "all_s": totals, "batch_size": batch_size}
    result["fps"] = batch_size / result["latency_s"]
    if hasattr(model, "backbone"):
        stages = [stage_times(model, image, score_threshold) for _ in range(max(1, repeats // 2 + 1))]
        result["stages"] = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    return result


def gemm_rate(dtype: torch.dtype = torch.float32, n: int = 2048, device: str = "cpu", repeats: int = 5) -> float:
    """Measured matrix-multiply rate in FLOP/s (median over repeats); ``torch.int8`` measures
    ``torch._int_mm`` (int8 x int8 -> int32), in OP/s."""
    if dtype == torch.int8:
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8, device=device)
        mm = torch._int_mm
    else:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        mm = torch.matmul
    for _ in range(2):
        mm(a, b)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times)
