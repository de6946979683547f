"""Accuracy of the fast paths against fp32, with the built-in demo model on a generated val set.

    python benchmarks/accuracy.py [--val 100]

Prints mask/box AP for fp32, fp32-fused, bf16, ONNX Runtime fp32 and int8, and the mean mask IoU of each
path's detections against fp32's (same rank, score > 0.15).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import yolact
from yolact.data.synth import generate
from yolact.evaluation.coco import evaluate
from yolact.compat import set_precision
from yolact.deploy.onnx import OnnxPredictor as OnnxModel, export_onnx, quantize_onnx


def mean_iou(ref, other, images):
    ious = []
    for img in images:
        a, b = ref.predict(img, score_threshold=0.15), other.predict(img, score_threshold=0.15)
        for i in range(min(len(a), len(b))):
            u = (a.masks[i] | b.masks[i]).sum()
            ious.append(1.0 if u == 0 else (a.masks[i] & b.masks[i]).sum() / u)
    return float(np.mean(ious)) if ious else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--val", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        generate(d, 0, args.val, size=256, seed=4242, max_objects=4, style="simple")
        images = sorted(str(p) for p in (d / "val").glob("*.jpg"))[:30]
        ref = yolact.load(yolact.demo_weights_path(), precision="fp32")
        paths = {"fp32": ref, "fp32-fused": yolact.load(yolact.demo_weights_path(), precision="fp32-fused"),
                 "bf16": set_precision(yolact.load(yolact.demo_weights_path()), "bf16")}
        onnx = export_onnx(yolact.load(yolact.demo_weights_path(), precision="fp32"), d / "m.onnx", dynamic_batch=True)
        paths["onnx-fp32"] = OnnxModel(onnx)
        from yolact.data.synth import make_image
        size = ref.cfg.max_size
        calib = [torch.from_numpy(make_image(np.random.default_rng(i), size, size, 4, "simple")[0]).float()
                 .permute(2, 0, 1)[None].numpy() for i in range(8)]
        paths["onnx-int8"] = OnnxModel(quantize_onnx(onnx, d / "q.onnx", calib))
        print("| path | mask AP | box AP | mean mask IoU vs fp32 |")
        print("|---|---|---|---|")
        for name, model in paths.items():
            m = evaluate(model, d / "val.json", d / "val", progress=False)
            iou = 1.0 if name == "fp32" else mean_iou(ref, model, images)
            print(f"| {name} | {100 * m['segm']['AP']:.1f} | {100 * m['bbox']['AP']:.1f} | {iou:.3f} |")


if __name__ == "__main__":
    main()
