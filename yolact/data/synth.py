"""Synthetic COCO-format instance segmentation set: coloured shapes on varied backgrounds.

Several shape classes, random sizes, colours and rotations, occlusion (later shapes cover
earlier ones; the covered part is removed from the earlier masks), and backgrounds of noise,
gradients, stripes and checkerboards. Deterministic for a given seed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "ring")


def _background(rng: np.random.Generator, h: int, w: int, kinds: int = 4) -> np.ndarray:
    kind = rng.integers(0, kinds)
    base = rng.integers(0, 256, 3)
    if kind == 0:  # smooth noise
        small = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3)).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # gradient
        t = np.linspace(0, 1, w)[None, :, None]
        other = rng.integers(0, 256, 3)
        img = np.broadcast_to(base * (1 - t) + other * t, (h, w, 3)).astype(np.uint8)
    elif kind == 2:  # stripes
        period = int(rng.integers(8, 32))
        other = rng.integers(0, 256, 3)
        stripe = ((np.arange(w) // period) % 2).astype(bool)
        img = np.where(stripe[None, :, None], base, other).astype(np.uint8)
        img = np.broadcast_to(img, (h, w, 3)).copy()
    else:  # checkerboard
        period = int(rng.integers(10, 40))
        other = rng.integers(0, 256, 3)
        yy, xx = np.mgrid[0:h, 0:w]
        board = (((yy // period) + (xx // period)) % 2).astype(bool)
        img = np.where(board[..., None], base, other).astype(np.uint8)
    noise = rng.normal(0, 6, (h, w, 3))
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, cls: int, h: int, w: int, size: float, cx: float, cy: float,
                angle: Optional[float] = None, squash: Optional[float] = None) -> np.ndarray:
    """A filled shape; ``angle`` and the ellipse ``squash`` are drawn from ``rng`` unless given."""
    mask = np.zeros((h, w), np.uint8)
    angle = rng.uniform(0, 2 * math.pi) if angle is None else angle
    r = size / 2
    name = SHAPE_CLASSES[cls]
    if name == "circle":
        squash = rng.uniform(0.8, 1.0) if squash is None else squash
        cv2.ellipse(mask, (int(cx), int(cy)), (int(r), int(r * squash)),
                    math.degrees(angle), 0, 360, 1, -1)
    elif name == "square":
        pts = [(cx + r * math.cos(angle + k * math.pi / 2), cy + r * math.sin(angle + k * math.pi / 2)) for k in range(4)]
        cv2.fillPoly(mask, [np.array(pts, np.int32)], 1)
    elif name == "triangle":
        pts = [(cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
        cv2.fillPoly(mask, [np.array(pts, np.int32)], 1)
    elif name == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = angle + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        cv2.fillPoly(mask, [np.array(pts, np.int32)], 1)
    else:  # ring
        cv2.circle(mask, (int(cx), int(cy)), int(r), 1, -1)
        cv2.circle(mask, (int(cx), int(cy)), int(r * 0.55), 0, -1)
    return mask


def paint_shape(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, color: np.ndarray) -> np.ndarray:
    """``img`` with the shape ``mask`` filled in ``color`` plus pixel noise (float). A colour too
    close to the background under the shape is shifted by half the range, so the shape stays
    visible."""
    if np.abs(img[mask.astype(bool)].mean(0) - color).sum() < 90:
        color = (color + 128) % 256
    shade = np.clip(color[None, None, :] + rng.normal(0, 8, img.shape), 0, 255)
    return np.where(mask[..., None].astype(bool), shade, img)


# "varied": noise, gradient, stripe and checkerboard backgrounds, objects 12-45% of the image.
# "simple": smooth backgrounds (noise, gradients) and larger objects (20-50%): learnable from
# scratch in minutes on a CPU, which is what the built-in demo model is trained on.
STYLES = {"varied": dict(kinds=4, min_frac=0.12, max_frac=0.45), "simple": dict(kinds=2, min_frac=0.2, max_frac=0.5)}


def make_image(rng: np.random.Generator, h: int, w: int, max_objects: int = 5,
               style: str = "varied") -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """-> (BGR image, [(class index, binary mask)]) with occlusion resolved."""
    st = STYLES[style]
    min_frac, max_frac = st["min_frac"], st["max_frac"]
    img = _background(rng, h, w, st["kinds"])
    objects: List[Tuple[int, np.ndarray]] = []
    n = int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        cls = int(rng.integers(0, len(SHAPE_CLASSES)))
        size = rng.uniform(min_frac, max_frac) * min(h, w)
        cx, cy = rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2)
        m = _shape_mask(rng, cls, h, w, size, cx, cy)
        if m.sum() < 30:
            continue
        img = paint_shape(rng, img, m, rng.integers(0, 256, 3)).astype(np.uint8)
        for _, prev in objects:  # occlusion: the new shape covers older ones
            prev[m.astype(bool)] = 0
        objects.append((cls, m))
    objects = [(c, m) for c, m in objects if m.sum() >= 30]
    return img, objects


def _write_splits(out: Path, n_train: int, n_val: int, seed: int, one_image) -> Dict[str, Path]:
    """``train/`` and ``val/`` image folders and ``train.json``, ``val.json`` (COCO, RLE masks):
    ``one_image(rng, folder, stem)`` writes one image and returns (file name, height, width,
    [(class index, RLE with str counts)]). Train draws from ``seed``, val from ``seed + 10000``."""
    paths = {}
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPE_CLASSES)]
    for split, count, split_seed in (("train", n_train, seed), ("val", n_val, seed + 10_000)):
        if count <= 0:
            continue
        rng = np.random.default_rng(split_seed)
        (out / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(count):
            fname, h, w, rles = one_image(rng, out / split, f"{split}_{i:05d}")
            images.append({"id": i + 1, "file_name": fname, "height": h, "width": w})
            for cls, rle in rles:
                x, y, bw, bh = mask_utils.toBbox(rle).tolist()
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cls + 1,
                             "segmentation": rle, "area": float(mask_utils.area(rle)),
                             "bbox": [x, y, bw, bh], "iscrowd": 0})
        ann_path = out / f"{split}.json"
        ann_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
        paths[split] = ann_path
    return paths


def generate(out: Path, n_train: int, n_val: int, size: int = 320, seed: int = 0,
             max_objects: int = 5, style: str = "varied") -> Dict[str, Path]:
    """Write ``train/``, ``val/`` image folders and ``train.json``, ``val.json`` (COCO)."""
    def one_image(rng, folder: Path, stem: str):
        h = int(size * rng.uniform(0.75, 1.0))
        w = int(size * rng.uniform(0.75, 1.0))
        img, objects = make_image(rng, h, w, max_objects, style)
        cv2.imwrite(str(folder / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rles = []
        for cls, m in objects:
            rle = mask_utils.encode(np.asfortranarray(m))
            rle["counts"] = rle["counts"].decode("ascii")
            rles.append((cls, rle))
        return f"{stem}.jpg", h, w, rles

    return _write_splits(Path(out), n_train, n_val, seed, one_image)


def make_large_image(rng: np.random.Generator, h: int, w: int, n_objects: int = 40,
                     object_size: Tuple[int, int] = (40, 100), style: str = "simple"
                     ) -> Tuple[np.ndarray, List[Tuple[int, Tuple[int, int], np.ndarray]]]:
    """A large scene of many small shapes: -> (BGR uint8 [h, w, 3], [(class index, (x0, y0),
    mask crop uint8 [hc, wc])]). Shapes are the demo model's (:data:`SHAPE_CLASSES`, painted
    as in :func:`make_image`) with sides of ``object_size`` pixels, on the ``style``'s
    backgrounds. They do not overlap (a shape that would touch another one's box is drawn
    elsewhere or left out), so each mask is the whole shape. Each shape is drawn and painted
    in its own window, so the cost follows the objects, not the image."""
    st = STYLES[style]
    img = _background(rng, h, w, st["kinds"])
    taken = np.zeros((h, w), bool)
    objects: List[Tuple[int, Tuple[int, int], np.ndarray]] = []
    lo, hi = object_size
    for _ in range(n_objects):
        cls = int(rng.integers(0, len(SHAPE_CLASSES)))
        size = float(rng.uniform(lo, hi))
        side = int(math.ceil(size)) + 4  # the shape's window, with a margin
        if side >= min(h, w):
            continue
        for _attempt in range(20):
            x0, y0 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            if not taken[y0:y0 + side, x0:x0 + side].any():
                break
        else:
            continue
        m = _shape_mask(rng, cls, side, side, size, side / 2, side / 2)
        if m.sum() < 30:
            continue
        win = img[y0:y0 + side, x0:x0 + side]
        img[y0:y0 + side, x0:x0 + side] = paint_shape(rng, win, m, rng.integers(0, 256, 3)).astype(np.uint8)
        taken[y0:y0 + side, x0:x0 + side] = True
        objects.append((cls, (x0, y0), m))
    return img, objects


def generate_large(out: Path, n_train: int, n_val: int, width: int = 2048, height: int = 1536, seed: int = 0,
                   n_objects: int = 40, object_size: Tuple[int, int] = (40, 100),
                   style: str = "simple") -> Dict[str, Path]:
    """The large-image, small-object set (:func:`make_large_image`): ``train/`` and ``val/``
    image folders (PNG, lossless) and ``train.json``, ``val.json`` (COCO, RLE masks, each
    annotation with its ``area`` in pixels). Deterministic for a given seed. Raises
    YolactError for sizes that do not fit."""
    from ..errors import YolactError
    from ..results import MaskCrops

    if width < 64 or height < 64 or not 1 <= object_size[0] <= object_size[1] < min(width, height) - 4:
        raise YolactError(f"large synthetic images of {width}x{height} with shapes of {object_size[0]}.."
                          f"{object_size[1]} px: expected sides >= 64 and 1 <= min <= max < the image side - 4")

    def one_image(rng, folder: Path, stem: str):
        img, objects = make_large_image(rng, height, width, n_objects, object_size, style)
        cv2.imwrite(str(folder / f"{stem}.png"), img)
        crops = MaskCrops([m.astype(bool) for _, _, m in objects], [xy for _, xy, _ in objects], (height, width))
        return f"{stem}.png", height, width, [(cls, crops.rle(k)) for k, (cls, _, _) in enumerate(objects)]

    return _write_splits(Path(out), n_train, n_val, seed, one_image)
