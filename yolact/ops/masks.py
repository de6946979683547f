"""Mask assembly: sigmoid(P C^T), box crop, upsampling."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import sanitize_coordinates


def crop(masks: torch.Tensor, boxes: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """Zero everything outside each box. masks [H, W, N]; boxes [N, 4] relative point form.

    The box is widened by ``padding`` pixels of the mask grid on each side (the original's
    default of 1), and a pixel is kept when x1 <= x < x2 (float comparison, no rounding).
    """
    h, w, _ = masks.shape
    return masks * crop_region(h, w, boxes, padding, masks.dtype)


def crop_region(h: int, w: int, boxes: torch.Tensor, padding: int = 1,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 0/1 crop window of :func:`crop` as an [H, W, N] tensor."""
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    cols = torch.arange(w, device=boxes.device, dtype=x1.dtype).view(1, -1, 1)
    rows = torch.arange(h, device=boxes.device, dtype=x1.dtype).view(-1, 1, 1)
    inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return inside.to(dtype)


def assemble_masks(proto: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor,
                   crop_masks: bool = True) -> torch.Tensor:
    """Prototypes [H, W, K] and coefficients [N, K] -> cropped soft masks [N, H, W]."""
    masks = torch.sigmoid(proto @ coeffs.t())
    if crop_masks:
        masks = crop(masks, boxes)
    return masks.permute(2, 0, 1).contiguous()


def upsample_masks(masks: torch.Tensor, height: int, width: int, threshold: float = 0.5) -> torch.Tensor:
    """Soft masks [N, h, w] -> boolean masks [N, height, width] (bilinear, align_corners=False)."""
    if masks.shape[0] == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=masks.device)
    up = F.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
    return up > threshold
