"""Anchor (prior) boxes, exactly as the original generates them."""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import torch

from ..config import YolactConfig


def level_priors(conv_h: int, conv_w: int, scales: Sequence[float], aspect_ratios: Sequence[float],
                 max_size: int, square: bool) -> np.ndarray:
    """Priors [conv_h conv_w A, 4] (cx, cy, w, h), relative to the image, for one FPN level, as
    float64 (the original's ``yolact.py: PredictionModule.make_priors``); ``scales`` in pixels
    at ``max_size``.

    Order: row-major over cells, then scale, then aspect ratio. The original takes the square
    root of each ratio (``preapply_sqrt=False``) and, for the v1 configs, sets h = w.
    """
    per_cell = []
    for scale in scales:
        for ar in aspect_ratios:
            r = math.sqrt(ar)
            w = scale * r / max_size
            h = w if square else scale / r / max_size
            per_cell.append((w, h))
    wh = np.array(per_cell, dtype=np.float64)  # [A, 2]
    ys, xs = np.meshgrid(np.arange(conv_h), np.arange(conv_w), indexing="ij")
    cx = (xs.reshape(-1) + 0.5) / conv_w
    cy = (ys.reshape(-1) + 0.5) / conv_h
    n_cells, n_anchors = cx.shape[0], wh.shape[0]
    out = np.empty((n_cells, n_anchors, 4), dtype=np.float64)
    out[:, :, 0] = cx[:, None]
    out[:, :, 1] = cy[:, None]
    out[:, :, 2:] = wh[None]
    return out.reshape(-1, 4)


def make_priors(cfg: YolactConfig, level_sizes: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """All priors for the given FPN level sizes [(h, w), ...] (P3 first) as a float32 [P, 4]
    tensor of relative (cx, cy, w, h), levels concatenated in order."""
    chunks: List[np.ndarray] = [
        level_priors(h, w, cfg.pred_scales[i], cfg.aspect_ratios, cfg.max_size, cfg.use_square_anchors)
        for i, (h, w) in enumerate(level_sizes)
    ]
    return torch.from_numpy(np.concatenate(chunks, 0).astype(np.float32))

