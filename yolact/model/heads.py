"""Protonet, shared prediction head, semantic-segmentation head and the mask re-scoring net."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling (align_corners=False), as a module so the protonet's indices match
    the official keys."""
    def forward(self, x):
        """[N, C, H, W] -> [N, C, 2H, 2W]."""
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def make_protonet(in_channels: int, channels: int = 256, mask_dim: int = 32) -> nn.Sequential:
    """3x(3x3 conv+ReLU), x2 bilinear upsample + ReLU, 3x3 conv+ReLU, 1x1 conv to k: P3 [N, C,
    H, W] -> prototypes [N, k, 2H, 2W] (the paper's protonet; the original's ``proto_net``).

    Indices match the official keys (proto_net.0/2/4/8/10). The prototype ReLU is applied by
    the model, after this net.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
        Upsample2x(), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(channels, mask_dim, 1),
    )


class PredictionHead(nn.Module):
    """Shared across FPN levels: 3x3 conv+ReLU, then 3x3 convs for boxes, class logits and
    tanh mask coefficients, flattened per (cell, anchor) in row-major order."""

    def __init__(self, channels: int, num_anchors: int, num_classes_bg: int, mask_dim: int):
        super().__init__()
        self.num_classes_bg, self.mask_dim = num_classes_bg, mask_dim
        self.upfeature = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(channels, num_anchors * num_classes_bg, 3, padding=1)
        self.mask_layer = nn.Conv2d(channels, num_anchors * mask_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One FPN level [N, channels, H, W] -> (loc [N, H W A, 4] box offsets from the priors (SSD
        encoding, see :func:`yolact.ops.boxes.decode`), conf [N, H W A, C+1] class logits with
        background first, coef [N, H W A, K] mask coefficients in -1..1); A anchors per cell."""
        n = x.shape[0]
        x = self.upfeature(x)
        loc = self.bbox_layer(x).permute(0, 2, 3, 1).reshape(n, -1, 4)
        conf = self.conf_layer(x).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes_bg)
        coef = torch.tanh(self.mask_layer(x).permute(0, 2, 3, 1).reshape(n, -1, self.mask_dim))
        return loc, conf, coef


class MaskIoUNet(nn.Module):
    """YOLACT++ fast mask re-scoring: unpadded 3x3/s2 convs + ReLU, 1x1 to classes + ReLU,
    global max pool -> predicted mask IoU per foreground class."""

    def __init__(self, num_classes: int, channels: Sequence[int] = (8, 16, 32, 64, 128)):
        super().__init__()
        layers = []
        cin = 1
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, stride=2), nn.ReLU(inplace=True)]
            cin = c
        layers += [nn.Conv2d(cin, num_classes, 1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """Masks [N, 1, H, W] (0..1, on the prototype grid) -> predicted mask IoU [N,
        num_classes] per foreground class (>= 0, ReLU)."""
        x = self.maskiou_net(masks)
        return x.amax(dim=(2, 3))
