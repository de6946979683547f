"""Backbones: ResNet-18/50/101 (torchvision parameter names, optional DCNv2) and DarkNet-53.

Each returns the feature maps of its stages; the model uses the last three (C3, C4, C5). Which
network a config's ``backbone`` names is a row of the backbones table (:mod:`yolact.backbones`):
its builder (``resnet`` or ``darknet`` here, or any other module's) and the builder's options.
"""
from __future__ import annotations

import importlib
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..backbones import BACKBONES
from .dcn import DCNv2


class BasicBlock(nn.Module):
    """torchvision-style ResNet-18 basic block (two 3x3 convs, stride on the first); this project's
    addition, the original has no ResNet-18. Raises ValueError when asked for DCN."""
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, use_dcn: bool = False):
        super().__init__()
        if use_dcn:
            raise ValueError("DCN is only supported in Bottleneck blocks")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        """[N, inplanes, H, W] -> [N, planes, H / stride, W / stride]."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision-style bottleneck (stride on the 3x3), optionally with a DCNv2 3x3."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, use_dcn: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if use_dcn:
            self.conv2 = DCNv2(planes, planes, 3, stride=stride, padding=1)
        else:
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        """[N, inplanes, H, W] -> [N, 4 planes, H / stride, W / stride]."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class StemMaxPool(nn.MaxPool2d):
    """The ResNet stem's 3x3, stride 2, padding 1 max pooling (``nn.MaxPool2d``, same state
    dict). In CPU inference on an NCHW tensor it is computed as a row then a column maximum of
    three strided views: max is exact, so the values are the same bits as ``max_pool2d``, ~5x
    faster than PyTorch's NCHW CPU kernel. Training (inputs that need a gradient: ties would
    share it), other devices, channels-last inputs, tracing and compiling use ``max_pool2d``."""

    def __init__(self):
        super().__init__(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, (H - 1) // 2 + 1, (W - 1) // 2 + 1]."""
        if (x.requires_grad or x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous()
                or not x.is_floating_point() or torch.jit.is_scripting() or torch.jit.is_tracing()
                or torch.compiler.is_compiling()):
            return super().forward(x)
        return max_pool_3x3_s2(x)


def max_pool_3x3_s2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 3, 2, 1)`` of a float [N, C, H, W] tensor as two separable passes over
    -inf padding: the same values (NaN included), no indices."""
    h_out, w_out = (x.shape[2] - 1) // 2 + 1, (x.shape[3] - 1) // 2 + 1
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), value=float("-inf"))
    cols = [p[..., k:k + 2 * w_out - 1:2] for k in range(3)]
    row_max = torch.maximum(torch.maximum(cols[0], cols[1]), cols[2])
    rows = [row_max[:, :, k:k + 2 * h_out - 1:2] for k in range(3)]
    return torch.maximum(torch.maximum(rows[0], rows[1]), rows[2])


def dcn_blocks(num_blocks: int, n_dcn: int, interval: int) -> List[bool]:
    """Which blocks of a stage use DCN (the original's rule in ``backbone.py: _make_layer``):
    one bool per block, True for the last ``n_dcn`` blocks whose index is a multiple of ``interval``."""
    # Block i uses DCN when it is among the last n_dcn blocks and i % interval == 0
    # (so block 0 only when n_dcn covers the whole stage).
    return [(i + n_dcn) >= num_blocks and i % interval == 0 for i in range(num_blocks)]


class ResNetBackbone(nn.Module):
    """ResNet-18/50/101 (the original's ``backbone.py: ResNetBackbone``, torchvision parameter
    names) with DCNv2 in the blocks that ``dcn_layers``/``dcn_interval`` select (YOLACT++)."""
    def __init__(self, name: str = "resnet101", dcn_layers: Sequence[int] = (0, 0, 0, 0), dcn_interval: int = 1,
                 width: int = 64, block: Optional[str] = None, depths: Optional[Sequence[int]] = None):
        """``width`` is the stem's channel count; the stages use width x (1, 2, 4, 8). The
        standard networks have 64; narrower ones are for small CPU models. ``block`` ('basic' or
        'bottleneck') and ``depths`` (blocks per stage) default to the options of ``name``'s row
        in the backbones table."""
        super().__init__()
        if block is None or depths is None:
            options = BACKBONES[name].options
            block, depths = block or options["block"], depths or options["depths"]
        block = RESNET_BLOCKS[block]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = StemMaxPool()
        self.inplanes = width
        self.layers = nn.ModuleList()
        self.channels: List[int] = []
        for stage, (planes, blocks) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), depths)):
            stride = 1 if stage == 0 else 2
            use = dcn_blocks(blocks, dcn_layers[stage], dcn_interval)
            self.layers.append(self._make_stage(block, planes, blocks, stride, use))
            self.channels.append(planes * block.expansion)

    def _make_stage(self, block, planes: int, blocks: int, stride: int, use_dcn: List[bool]) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, use_dcn=use_dcn[0])]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, use_dcn=use_dcn[i]) for i in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Normalised RGB input [N, 3, H, W] -> the four stages' feature maps C2..C5 at strides 4, 8,
        16, 32, with ``channels`` channels each."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


def _darknet_conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True))


class DarkNetBlock(nn.Module):
    """DarkNet residual block: 1x1 conv to half the channels, 3x3 conv back (BN, LeakyReLU 0.1),
    plus the input (the original's ``backbone.py: DarkNetBlock``)."""
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _darknet_conv(channels, channels // 2, 1)
        self.conv2 = _darknet_conv(channels // 2, channels, 3)

    def forward(self, x):
        """[N, C, H, W] -> [N, C, H, W]."""
        return self.conv2(self.conv1(x)) + x


class DarkNetBackbone(nn.Module):
    """DarkNet-53: stem 3->32, five stages (1, 2, 8, 8, 4 blocks) each opened by a s2 conv."""

    def __init__(self, blocks: Sequence[int] = (1, 2, 8, 8, 4)):
        super().__init__()
        self._preconv = _darknet_conv(3, 32, 3)
        self.layers = nn.ModuleList()
        self.channels: List[int] = []
        cin = 32
        for i, n in enumerate(blocks):
            cout = 64 * 2 ** i
            self.layers.append(nn.Sequential(_darknet_conv(cin, cout, 3, 2), *[DarkNetBlock(cout) for _ in range(n)]))
            self.channels.append(cout)
            cin = cout

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Input [N, 3, H, W] (RGB, 0..1) -> the five stages' feature maps at strides 2, 4, 8, 16, 32,
        with ``channels`` (64, 128, 256, 512, 1024) channels."""
        x = self._preconv(x)
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


def resnet(block: str, depths: Sequence[int], dcn_layers=(0, 0, 0, 0), dcn_interval: int = 1,
           width: int = 64) -> ResNetBackbone:
    """The ResNet rows' builder: ``block`` 'basic' or 'bottleneck', ``depths`` blocks per stage."""
    return ResNetBackbone(dcn_layers=dcn_layers, dcn_interval=dcn_interval, width=width, block=block, depths=depths)


def darknet(blocks: Sequence[int] = (1, 2, 8, 8, 4), dcn_layers=(0, 0, 0, 0), dcn_interval: int = 1,
            width: int = 64) -> DarkNetBackbone:
    """The DarkNet rows' builder (no DCN; raises ValueError for a ``width`` other than 64)."""
    if width != 64:
        raise ValueError("darknet53 has no width option")
    return DarkNetBackbone(blocks)


def build_backbone(name: str, dcn_layers=(0, 0, 0, 0), dcn_interval: int = 1, width: int = 64) -> nn.Module:
    """The backbone named by a config: its row of the backbones table (:mod:`yolact.backbones`)
    built with the row's options; its ``channels`` list gives each stage's output channels.
    Raises ValueError for a name not in the table (or what the builder refuses, e.g. a
    ``width`` other than 64 for DarkNet)."""
    row = BACKBONES.get(name)
    if row is None:
        raise ValueError(f"unknown backbone '{name}' ({', '.join(BACKBONES)})")
    return _resolve(row.builder)(dcn_layers=dcn_layers, dcn_interval=dcn_interval, width=width, **row.options)


def _resolve(spec):
    """A row's builder: the function itself, or ``"package.module:function"`` imported now."""
    if callable(spec):
        return spec
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)
