"""Pre-processing, and the way back to image coordinates (torchvision's GeneralizedRCNNTransform).

One object owns both directions, so that predict, training, evaluation, export and ``data
check`` share one normalisation and one un-normalisation:

* in: BGR uint8 images (OpenCV's convention), any size -> float [N, 3, S, S] network input:
  bilinear resize (align_corners=False) of the float image to S x S, ImageNet mean/std in BGR
  order (DarkNet: / 255), channels reordered to RGB. Exactly the original's
  ``utils/augmentations.py: FastBaseTransform``.
* out: relative boxes -> integer pixel boxes, and soft masks on the prototype grid -> boolean
  masks at image size (the original's ``layers/output_utils.py: postprocess``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MEANS_BGR, STD_BGR, YolactConfig
from ..errors import YolactError
from ..ops.boxes import sanitize_coordinates
from ..ops.masks import upsample_masks, upsample_masks_in_boxes
from ..results import MaskCrops

Image = Union[np.ndarray, torch.Tensor]  # HxWx3 BGR uint8

# Above this many output mask pixels (detections x H x W), upsampling evaluates the bilinear
# taps only inside each box: same bits, much less memory and time for large images.
_IN_BOX_UPSAMPLE_PIXELS = 4_000_000


class YolactTransform:
    """``size``: the network's square input side in pixels (``cfg.max_size``, or another
    multiple of 32: the anchors are relative, so only the number of priors changes).
    ``normalize``: 'imagenet' (mean/std, ResNet) or 'unit' (/ 255, DarkNet)."""

    def __init__(self, size: int, normalize: str = "imagenet"):
        if normalize not in ("imagenet", "unit"):
            raise ValueError(f"unknown normalisation '{normalize}' (imagenet, unit)")
        self.size = int(size)
        self.normalization = normalize

    @classmethod
    def from_config(cls, cfg: YolactConfig, size: Optional[int] = None) -> "YolactTransform":
        """The transform of a model config; ``size`` overrides ``cfg.max_size`` (the trained
        size, e.g. the official 550, or any multiple of 32 of at least 64). Raises YolactError
        otherwise."""
        if size is not None and size != cfg.max_size and (int(size) != size or size < 64 or size % 32):
            raise YolactError(f"image size {size}: expected a multiple of 32, at least 64")
        return cls(size or cfg.max_size, cfg.normalize)

    # ------------------------------------------------------------------ in
    def resize(self, images: Sequence[Image], device: Union[str, torch.device] = "cpu") -> torch.Tensor:
        """BGR uint8 HxWx3 images -> float32 BGR [N, 3, S, S], 0..255. The uint8 image is
        uploaded to ``device`` first, then converted and resized there. A uint8 tensor
        [N, H, W, 3] (same-size frames, e.g. already on the GPU) is resized as one batch: the
        same values, one kernel."""
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            x = images.to(device).float().permute(0, 3, 1, 2)
            return F.interpolate(x, (self.size, self.size), mode="bilinear", align_corners=False)
        out = torch.empty((len(images), 3, self.size, self.size), dtype=torch.float32, device=device)
        for i, img in enumerate(images):
            t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
            t = t.to(device)
            # One channel at a time: the float copy of a 4K image is 33 MB instead of 100 MB.
            # A contiguous plane is what the original resizes (its NCHW .contiguous()), and
            # bilinear resizing treats channels independently: the same values.
            for c in range(3):
                plane = t[:, :, c].float()[None, None]
                out[i, c] = F.interpolate(plane, (self.size, self.size), mode="bilinear", align_corners=False)[0, 0]
        return out

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """BGR float [N, 3, H, W] (0..255) -> network input: normalised, channels in RGB order.
        Traces to ONNX (the exported graphs start here)."""
        if self.normalization == "imagenet":
            mean = torch.tensor(MEANS_BGR, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
            std = torch.tensor(STD_BGR, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
            images = (images - mean) / std
        else:
            images = images / 255
        return images[:, (2, 1, 0)].contiguous()

    def unnormalize(self, images: torch.Tensor) -> np.ndarray:
        """Network input [N, 3, H, W] -> BGR uint8 [N, H, W, 3] (for pictures of training batches)."""
        x = images.detach().float()[:, (2, 1, 0)]
        if self.normalization == "imagenet":
            x = x * torch.tensor(STD_BGR).view(1, 3, 1, 1) + torch.tensor(MEANS_BGR).view(1, 3, 1, 1)
        else:
            x = x * 255
        return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def __call__(self, images: Sequence[Image], device: Union[str, torch.device] = "cpu") -> torch.Tensor:
        """BGR uint8 images -> float32 network input [N, 3, S, S] on ``device``."""
        return self.normalize(self.resize(images, device))

    # ------------------------------------------------------------------ out
    @staticmethod
    def boxes_to_image(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Relative (x1, y1, x2, y2) boxes [N, 4] -> pixel boxes: ordered, clamped to the image
        and truncated to integers (float32), as the original."""
        x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
        y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
        return torch.stack([x1, y1, x2, y2], 1).long().float()

    @staticmethod
    def masks_to_image(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                       crops: bool = False, interpolation: str = "bilinear") -> Union[torch.Tensor, MaskCrops]:
        """Soft masks [N, h, w] on the prototype grid, cropped to their relative ``boxes`` [N, 4],
        -> boolean masks [N, height, width]: bilinear (the original's) or bicubic
        (``interpolation``) upsampling, align_corners=False, then > 0.5.

        ``crops=True``: the same masks as a :class:`~yolact.results.MaskCrops` (numpy, on the
        CPU), upsampled only inside each box when the full array would be large, so nothing of
        N x height x width is allocated."""
        large = masks.shape[0] * height * width > _IN_BOX_UPSAMPLE_PIXELS
        mode = interpolation
        if not crops:
            return (upsample_masks_in_boxes(masks, boxes, height, width, mode=mode) if large
                    else upsample_masks(masks, height, width, mode=mode))
        if not large:
            return MaskCrops.from_full(upsample_masks(masks, height, width, mode=mode).cpu().numpy())
        parts = upsample_masks_in_boxes(masks, boxes, height, width, crops=True, mode=mode)
        if not parts:
            return MaskCrops([], np.zeros((0, 2), np.int64), (height, width), tight=True)
        if masks.device.type == "cpu":
            # Each window is cut to its mask and freed in turn: the windows and their tight
            # copies are never all alive at once.
            crops, offsets = [], []
            for k in range(len(parts)):
                window, x0, y0 = parts[k]
                parts[k] = None
                crop, x0, y0 = MaskCrops.tight(window.numpy(), x0, y0, (height, width))
                crops.append(crop)
                offsets.append((x0, y0))
            return MaskCrops(crops, offsets, (height, width), tight=True)
        # one transfer for all crops, then split on the CPU
        flat = torch.cat([c.reshape(-1) for c, _, _ in parts]).cpu().numpy()
        ends = np.cumsum([c.numel() for c, _, _ in parts])
        pieces = np.split(flat, ends[:-1])
        return MaskCrops([p.reshape(tuple(c.shape)) for p, (c, _, _) in zip(pieces, parts)],
                         [(x0, y0) for _, x0, y0 in parts], (height, width))
