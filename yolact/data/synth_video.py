"""Synthetic tracking videos: the shapes of :mod:`yolact.data.synth` moving over a smooth
background, crossing and occluding each other, entering and leaving the frame.

Each sequence is written in the MOTChallenge layout, with masks in the MOTS text format:

    OUT/SEQ/img1/000001.jpg ...     frames
    OUT/SEQ/gt/gt.txt               frame,id,x,y,w,h,1,1,visibility   (MOT16 ground truth)
    OUT/SEQ/gt/gt_masks.txt         frame id class height width rle   (MOTS; class 1..5 = circle..ring)

The class column of gt.txt is 1, the class the MOTChallenge evaluation scores (its other
classes are distractors); the shape class is in gt_masks.txt.
    OUT/SEQ/seqinfo.ini
    OUT/SEQ.mp4                     the same frames as a video

An object is in the ground truth of a frame when at least ``min_visible`` of its pixels
(and 30% of its full shape) are visible: a shape hidden behind another or mostly outside the
frame is not there to be detected, and it keeps its identity when it shows again.
Deterministic for a given seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .synth import SHAPE_CLASSES, _background, _shape_mask, paint_shape


@dataclass
class _Mover:
    track_id: int
    cls: int
    size: float
    color: np.ndarray
    angle: float
    spin: float
    squash: float
    x: float
    y: float
    vx: float
    vy: float
    start: int


def _movers(rng: np.random.Generator, n: int, n_frames: int, h: int, w: int) -> List[_Mover]:
    out = []
    for k in range(n):
        size = rng.uniform(0.2, 0.35) * min(h, w)
        speed = rng.uniform(2.0, 6.0)
        entering = k > 0 and rng.random() < 0.4
        if entering:  # starts just outside an edge, later, heading inwards
            side = int(rng.integers(0, 4))
            x, y = [(-size / 2, rng.uniform(0, h)), (w + size / 2, rng.uniform(0, h)),
                    (rng.uniform(0, w), -size / 2), (rng.uniform(0, w), h + size / 2)][side]
            start = int(rng.integers(0, max(1, n_frames // 2)))
        else:
            x, y, start = rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2), 0
        # head roughly towards the middle so that paths cross
        target = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
        d = target - np.array([x, y])
        d = d / max(np.linalg.norm(d), 1e-6)
        out.append(_Mover(k + 1, int(rng.integers(0, len(SHAPE_CLASSES))), size, rng.integers(0, 256, 3),
                          rng.uniform(0, 2 * math.pi), rng.uniform(-0.03, 0.03), rng.uniform(0.85, 1.0),
                          x, y, speed * d[0], speed * d[1], start))
    return out


def make_sequence(out: Path, name: str, rng: np.random.Generator, n_frames: int = 90, h: int = 480, w: int = 640,
                  max_objects: int = 5, min_visible: int = 150, fps: float = 30.0) -> Dict[str, Path]:
    """Write one sequence; -> paths of its folder, gt.txt, gt_masks.txt and video."""
    seq = Path(out) / name
    (seq / "img1").mkdir(parents=True, exist_ok=True)
    (seq / "gt").mkdir(exist_ok=True)
    # Drawn at the training images' scale (256 px) and enlarged, so its texture has the same
    # relative size as in the data the demo model learnt from.
    f = 256 / max(h, w)
    background = cv2.resize(_background(rng, max(2, int(h * f)), max(2, int(w * f)), kinds=2), (w, h),
                            interpolation=cv2.INTER_LINEAR)
    movers = _movers(rng, int(rng.integers(2, max_objects + 1)), n_frames, h, w)
    gt_lines, mask_lines = [], []
    video = cv2.VideoWriter(str(Path(out) / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for f in range(n_frames):
            img = np.clip(background.astype(np.float32) + rng.normal(0, 4, (h, w, 3)), 0, 255)
            drawn = []
            for m in movers:  # later movers are in front
                if f < m.start:
                    continue
                t = f - m.start
                cx, cy = m.x + m.vx * t, m.y + m.vy * t
                full = _shape_mask(rng, m.cls, h, w, m.size, cx, cy, angle=m.angle + m.spin * t, squash=m.squash)
                if not full.any():
                    continue
                img = paint_shape(rng, img, full, m.color)
                for _, _, prev in drawn:
                    prev[full.astype(bool)] = 0
                drawn.append((m, int(full.sum()), full.copy()))
            frame = img.astype(np.uint8)
            cv2.imwrite(str(seq / "img1" / f"{f + 1:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            video.write(frame)
            for m, area_full, vis in drawn:
                area = int(vis.sum())
                if area < min_visible or area < 0.3 * area_full:
                    continue
                rle = mask_utils.encode(np.asfortranarray(vis))
                x, y, bw, bh = mask_utils.toBbox(rle).tolist()
                gt_lines.append(f"{f + 1},{m.track_id},{x:.0f},{y:.0f},{bw:.0f},{bh:.0f},1,1,"
                                f"{area / area_full:.3f}")
                mask_lines.append(f"{f + 1} {m.track_id} {m.cls + 1} {h} {w} {rle['counts'].decode('ascii')}")
    finally:
        video.release()
    (seq / "gt" / "gt.txt").write_text("\n".join(gt_lines) + "\n")
    (seq / "gt" / "gt_masks.txt").write_text("\n".join(mask_lines) + "\n")
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps:g}\nseqLength={n_frames}\nimWidth={w}\n"
        f"imHeight={h}\nimExt=.jpg\n")
    return {"seq": seq, "gt": seq / "gt" / "gt.txt", "masks": seq / "gt" / "gt_masks.txt",
            "video": Path(out) / f"{name}.mp4"}


def generate_videos(out: Path, n_videos: int = 3, n_frames: int = 90, height: int = 480, width: int = 640,
                    seed: int = 0, max_objects: int = 5) -> List[Dict[str, Path]]:
    """``n_videos`` sequences named shapes-01, shapes-02, ... under ``out``."""
    rng = np.random.default_rng(seed)
    return [make_sequence(Path(out), f"shapes-{i + 1:02d}", rng, n_frames, height, width, max_objects)
            for i in range(n_videos)]
