"""Inference speed: precision modes, BN folding, channels-last, per-stage timing, compute floor."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a Conv2d into that conv.

    Handles attribute pairs (conv1/bn1 ...) and Sequential(conv, bn, ...) as used by the
    backbones. Returns the number of folded layers. Inference only.
    """
    folded = 0
    for module in list(model.modules()):
        for i in (1, 2, 3):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{i}", nn.Identity())
                folded += 1
        if isinstance(module, nn.Sequential):
            children = list(module)
            for j in range(len(children) - 1):
                if isinstance(children[j], nn.Conv2d) and isinstance(children[j + 1], nn.BatchNorm2d):
                    module[j] = fuse_conv_bn_eval(children[j], children[j + 1])
                    module[j + 1] = nn.Identity()
                    folded += 1
    return folded


def set_precision(model, precision: str, channels_last: bool = True):
    """``model.set_precision(precision)`` for a network or predictor; returns the predictor
    (see :meth:`yolact.engine.predictor.TorchPredictor.set_precision`)."""
    from .predictor import TorchPredictor

    return TorchPredictor.from_network(model).set_precision(precision, channels_last)


def compile_model(model, mode: str = "default"):
    """``model.set_compile(mode)`` for a network or predictor; returns the predictor (see
    :meth:`yolact.engine.predictor.TorchPredictor.set_compile`)."""
    from .predictor import TorchPredictor

    return TorchPredictor.from_network(model).set_compile(mode)


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


def count_flops(model, size: Optional[int] = None) -> float:
    """FLOPs (2 x multiply-adds) of one forward pass at the model's input size."""
    from torch.utils.flop_counter import FlopCounterMode

    s = size or model.cfg.max_size
    p = next(model.parameters())
    x = torch.zeros(1, 3, s, s, device=p.device, dtype=p.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


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
