"""End-to-end latency across presets, precisions and backends on one 640x480 image.

    python benchmarks/latency.py [--presets yolact_base,yolact_resnet50] [--repeats 5]

Weights are random (no official checkpoint can be downloaded here) with the class bias set so
that the full 100 detections reach post-processing: the worst case for NMS and masks. Timing
does not depend on the weight values otherwise. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import yolact
from yolact.data.synth import make_image
from yolact.compat import set_precision
from yolact.deploy.timing import gemm_rate, stage_times
from yolact.model.flops import count_flops


def busy_model(name: str):
    torch.manual_seed(0)
    model = yolact.build(name).eval()
    with torch.no_grad():  # many priors score above the threshold in the first ten classes
        bias = model.prediction_layers[0].conf_layer.bias.view(model.cfg.anchors_per_location, -1)
        bias[:, 0] = -4.0
        bias[:, 1:11] = 4.0 * torch.rand(bias.shape[0], 10)
    return model


def median_latency(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="yolact_base,yolact_resnet50")
    ap.add_argument("--precisions", default="fp32,bf16,onnx-fp32,onnx-int8")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    img, _ = make_image(np.random.default_rng(0), 480, 640)
    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  "
          f"torch {torch.__version__}  {torch.get_num_threads()} threads  image 640x480, median of {args.repeats}")
    rates = {"fp32": gemm_rate(torch.float32), "bf16": gemm_rate(torch.bfloat16)}
    print(f"# measured GEMM: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s")
    print("| preset | precision | latency ms | network ms | post ms | GFLOP | floor ms | latency/floor | dets |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.presets.split(","):
        flops = count_flops(busy_model(name))
        for prec in args.precisions.split(","):
            if prec in ("fp32", "bf16"):
                model = busy_model(name)
                if prec == "bf16":
                    set_precision(model, "bf16")
                lat = median_latency(lambda: model.predict(img, keep_image=False), args.repeats)
                st = stage_times(model, img)
                net = st["backbone"] + st["fpn"] + st["protonet"] + st["heads"]
                post = st["preprocess"] + st["nms"] + st["masks"]
                dets = len(model.predict(img))
                floor = flops / rates[prec]
                print(f"| {name} | {prec} | {1000 * lat:.0f} | {1000 * net:.0f} | {1000 * post:.0f} | "
                      f"{flops / 1e9:.0f} | {1000 * floor:.0f} | {lat / floor:.2f} | {dets} |")
            else:
                from yolact.deploy.onnx import OnnxPredictor as OnnxModel, export_onnx, quantize_onnx
                with tempfile.TemporaryDirectory() as d:
                    path = export_onnx(busy_model(name), Path(d) / "m.onnx")
                    if prec == "onnx-int8":
                        calib = [torch.from_numpy(make_image(np.random.default_rng(i), 550, 550)[0]).float()
                                 .permute(2, 0, 1)[None].numpy() for i in range(4)]
                        path = quantize_onnx(path, Path(d) / "q.onnx", calib)
                    om = OnnxModel(path)
                    lat = median_latency(lambda: om.predict(img, keep_image=False), args.repeats)
                    dets = len(om.predict(img))
                floor = flops / rates["fp32"]
                print(f"| {name} | {prec} | {1000 * lat:.0f} | - | - | {flops / 1e9:.0f} | {1000 * floor:.0f} | "
                      f"{lat / floor:.2f} | {dets} |")


if __name__ == "__main__":
    main()
