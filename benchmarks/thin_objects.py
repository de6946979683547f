"""Thin objects at the model's input size: how many keep any mask pixel under each training
mask resize (issue #26 item 9), and what 'area' costs ordinary objects.

    python benchmarks/thin_objects.py [--images 40] [--sizes 192,550]

Synthetic 640x480 images, each with 3 thin bars (lines 1-3 px wide, any angle, 60-400 px long:
wires, poles) and 2 ordinary filled shapes (40-160 px). Per mode and input size: thin objects
that keep at least one mask pixel and the share of their pixels still covered when the resized
mask is scaled back (nearest), and for the ordinary shapes the mean IoU between the
resized mask scaled back to 640x480 (nearest) and the original mask.
"""
from __future__ import annotations

import argparse
import datetime

import cv2
import numpy as np

from yolact.data.augment import MASK_RESIZE, _resize_masks


def make_masks(rng: np.random.Generator, h: int = 480, w: int = 640):
    thin, ordinary = [], []
    for _ in range(3):
        m = np.zeros((h, w), np.uint8)
        x, y = rng.integers(20, w - 20), rng.integers(20, h - 20)
        angle, length = rng.uniform(0, np.pi), rng.uniform(60, 400)
        x2, y2 = int(x + length * np.cos(angle)), int(y + length * np.sin(angle))
        cv2.line(m, (int(x), int(y)), (x2, y2), 1, int(rng.integers(1, 4)))
        thin.append(m)
    for _ in range(2):
        m = np.zeros((h, w), np.uint8)
        cx, cy, r = rng.integers(80, w - 80), rng.integers(80, h - 80), int(rng.integers(20, 80))
        if rng.random() < 0.5:
            cv2.circle(m, (int(cx), int(cy)), r, 1, -1)
        else:
            cv2.rectangle(m, (int(cx - r), int(cy - r)), (int(cx + r), int(cy + r // 2)), 1, -1)
        ordinary.append(m)
    return np.stack(thin), np.stack(ordinary)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--sizes", default="192,550")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sets = [make_masks(rng) for _ in range(args.images)]
    print(f"# {datetime.date.today()}  {args.images} synthetic 640x480 images, {3 * args.images} thin bars "
          f"(1-3 px wide), {2 * args.images} ordinary shapes")
    print("| input size | mask resize | thin objects keeping a pixel | thin objects: share of their pixels covered "
          "back at 640x480 | ordinary shapes: mean IoU back at 640x480 |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for mode in MASK_RESIZE:
            kept, ious, recall = 0, [], []
            for thin, ordinary in sets:
                small_thin = _resize_masks(thin, size, mode)
                kept += int(small_thin.reshape(len(thin), -1).any(1).sum())
                for m, small in zip(thin, small_thin):
                    back = cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST).astype(bool)
                    recall.append((back & m.astype(bool)).sum() / m.sum())
                for m, small in zip(ordinary, _resize_masks(ordinary, size, mode)):
                    back = cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST).astype(bool)
                    ious.append((back & m.astype(bool)).sum() / (back | m.astype(bool)).sum())
            print(f"| {size} | {mode} | {kept}/{3 * len(sets)} | {np.mean(recall):.3f} | {np.mean(ious):.3f} |")


if __name__ == "__main__":
    main()
