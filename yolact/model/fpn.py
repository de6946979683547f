"""Feature pyramid P3..P7 with the original's parameter layout."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class FPN(nn.Module):
    """1x1 laterals, bilinear top-down sum, 3x3 pred convs + ReLU, then stride-2 3x3 convs
    for the extra levels (P6 from P5, P7 from P6, no ReLU).

    Layers are stored in reverse (``lat_layers[0]`` belongs to C5) as in the official weights.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256, num_downsample: int = 2):
        super().__init__()
        self.lat_layers = nn.ModuleList([nn.Conv2d(c, channels, 1) for c in reversed(in_channels)])
        self.pred_layers = nn.ModuleList([nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels])
        self.downsample_layers = nn.ModuleList(
            [nn.Conv2d(channels, channels, 3, padding=1, stride=2) for _ in range(num_downsample)])

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        """Backbone maps C3, C4, C5 ([N, in_channels[i], H_i, W_i], strides 8, 16, 32) -> P3, P4,
        P5 and ``num_downsample`` extra levels (P6, P7 in every preset), each [N, channels, h, w],
        strides 8, 16, 32, 64, 128."""
        n = len(feats)
        out: List[torch.Tensor] = [feats[0]] * n
        x = None
        for i, lat in enumerate(self.lat_layers):
            j = n - 1 - i
            y = lat(feats[j])
            if x is not None:
                y = F.interpolate(x, size=feats[j].shape[-2:], mode="bilinear", align_corners=False) + y
            x = y
            out[j] = x
        for i, pred in enumerate(self.pred_layers):
            j = n - 1 - i
            out[j] = F.relu(pred(out[j]))
        for down in self.downsample_layers:
            out.append(down(out[-1]))
        return out
