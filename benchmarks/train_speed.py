"""Training throughput (images/s) of one optimisation step at each preset's own input size.

    python benchmarks/train_speed.py [--presets yolact_resnet18,yolact_base] [--batch-size 8]

Synthetic shapes images, the full loss and an SGD step; median over the timed steps.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import numpy as np
import torch

from yolact.config import get_config
from yolact.data.augment import Sample, resize
from yolact.data.coco import collate, to_tensors
from yolact.data.synth import SHAPE_CLASSES, make_image
from yolact.training.weights import init_weights
import yolact


def batch(cfg, n, rng):
    items = []
    for _ in range(n):
        img, objs = make_image(rng, 256, 256, 4, "simple")
        masks = np.stack([m.astype(np.float32) for _, m in objs])
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        s = Sample(img.astype(np.float32), masks, np.array(boxes, np.float32), np.array([c for c, _ in objs]), 0)
        items.append(to_tensors(resize(s, cfg.max_size, cfg.min_box_size), cfg))
    return collate(items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="yolact_resnet18,yolact_base")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"{torch.get_num_threads()} threads  batch {args.batch_size}")
    print("| preset | input | s/step | images/s |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in args.presets.split(","):
        cfg = get_config(name, class_names=SHAPE_CLASSES)
        torch.manual_seed(0)
        model = yolact.build(cfg)
        init_weights(model)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        images, targets = batch(cfg, args.batch_size, rng)
        times = []
        for step in range(args.steps + 1):
            t0 = time.perf_counter()
            loss = model(images, targets)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step:  # the first step warms up
                times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        print(f"| {name} | {cfg.max_size} | {t:.2f} | {args.batch_size / t:.2f} |")


if __name__ == "__main__":
    main()
