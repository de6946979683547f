"""Protonet, shared prediction head, semantic-segmentation head and the mask re-scoring net."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class Upsample2x(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def make_protonet(in_channels: int, channels: int = 256, mask_dim: int = 32) -> nn.Sequential:
    """3x(3x3 conv+ReLU), x2 bilinear upsample + ReLU, 3x3 conv+ReLU, 1x1 conv to k.

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
        """masks [N, 1, H, W] -> [N, num_classes]."""
        x = self.maskiou_net(masks)
        return x.amax(dim=(2, 3))
