"""Timing tools, off the inference path: per-stage times, end-to-end latency, measured GEMM rate
(the compute floor). BN folding and FLOP counting are in :mod:`yolact.model`."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List, Optional

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_times(model, image: np.ndarray, score_threshold: float = 0.15, top_k: int = 100) -> Dict[str, float]:
    """One inference of a TorchPredictor split into stages (seconds each): preprocess,
    backbone, fpn, protonet, heads, nms, masks (the post-processing after NMS)."""
    from ..model.postprocess import PostProcess
    from ..model.transform import YolactTransform
    from ..ops.boxes import decode

    dev = model.device
    dtype = next(model.parameters()).dtype
    transform = YolactTransform.from_config(model.cfg)
    post = PostProcess(model.cfg, model.maskiou_net)
    t: Dict[str, float] = {}
    mark = time.perf_counter

    def tick(name, t0):
        _sync(dev)
        t[name] = mark() - t0
        return mark()

    with torch.no_grad():
        t0 = mark()
        x = transform([image], dev).to(dtype)
        if model.precision != "fp32":
            x = x.contiguous(memory_format=torch.channels_last)
        t0 = tick("preprocess", t0)
        feats = model.backbone(x)[-3:]
        t0 = tick("backbone", t0)
        pyr = model.fpn(feats)
        t0 = tick("fpn", t0)
        proto = torch.relu(model.proto_net(pyr[0])).permute(0, 2, 3, 1).contiguous()
        t0 = tick("protonet", t0)
        head = model.prediction_layers[0]
        outs = [head(p) for p in pyr]
        loc = torch.cat([o[0] for o in outs], 1)
        conf = torch.softmax(torch.cat([o[1] for o in outs], 1), -1)[0].float()
        coef = torch.cat([o[2] for o in outs], 1)
        priors = model.priors_for([tuple(p.shape[-2:]) for p in pyr], dev, x.shape[-1])
        boxes = decode(loc[0].float(), priors.float())
        t0 = tick("heads", t0)
        post.select(boxes, conf)
        t0 = tick("nms", t0)
        # masks: the whole post-processing minus the NMS measured above
        t1 = mark()
        det = post(boxes, conf, coef[0].float(), proto[0].float(), score_threshold, top_k)
        PostProcess.to_image(det, image.shape[0], image.shape[1])
        _sync(dev)
        t["masks"] = max(mark() - t1 - t["nms"], 0.0)
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
