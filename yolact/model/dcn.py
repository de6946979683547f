"""Modulated deformable convolution (DCNv2) without compiled extensions.

``deform_conv2d`` uses ``torchvision.ops.deform_conv2d`` where torchvision imports (GPU
installs) and a plain-PyTorch implementation otherwise. Both share the offset layout of the
original DCNv2: for kernel tap k, channel 2k is the y offset and 2k+1 the x offset.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn

try:  # torchvision is optional: the PyPI wheel does not import with every torch build.
    from torchvision.ops import deform_conv2d as _tv_deform_conv2d  # type: ignore
except Exception:  # pragma: no cover - depends on the install
    _tv_deform_conv2d = None

_Pair = Tuple[int, int]
# The dtypes torchvision's deform_conv2d kernels are built for (CPU and CUDA); bfloat16 is not.
_TV_DTYPES = (torch.float32, torch.float64, torch.float16)


def torchvision_available() -> bool:
    """True when ``torchvision.ops.deform_conv2d`` imported, so ``backend='auto'`` uses it."""
    return _tv_deform_conv2d is not None


def _bilinear_sample(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Sample x [N, C, H, W] at float pixel positions py, px [N, L]; zero outside -> [N, C, L].

    Corners outside the image contribute zero, exactly as DCNv2's im2col.
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    y0 = torch.floor(py)
    x0 = torch.floor(px)
    ly, lx = py - y0, px - x0
    y0, x0 = y0.long(), x0.long()
    out = x.new_zeros((n, c, py.shape[1]))
    for dy, dx, wt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx),
                       (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yy, xx = y0 + dy, x0 + dx
        valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))
        vals = flat.gather(2, idx[:, None, :].expand(n, c, idx.shape[1]))
        out = out + vals * (wt * valid.to(wt.dtype))[:, None, :]
    return out


def deform_conv2d_torch(x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor],
                        weight: torch.Tensor, bias: Optional[torch.Tensor], stride: _Pair = (1, 1),
                        padding: _Pair = (0, 0), dilation: _Pair = (1, 1)) -> torch.Tensor:
    """Plain-PyTorch modulated deformable conv (one offset group, one weight group). ``x`` [N, C,
    H, W], ``offset`` [N, 2 k, Ho, Wo] (y, x per tap, input pixels), ``mask`` [N, k, Ho, Wo] or
    None, ``weight`` [O, C, kh, kw] (k = kh kw) -> [N, O, Ho, Wo], x's dtype."""
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    k = kh * kw
    dev, dt = x.device, x.dtype
    base_y = (torch.arange(ho, device=dev, dtype=dt) * stride[0] - padding[0]).view(1, 1, ho, 1)
    base_x = (torch.arange(wo, device=dev, dtype=dt) * stride[1] - padding[1]).view(1, 1, 1, wo)
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dilation[0]).repeat_interleave(kw).view(1, k, 1, 1)
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dilation[1]).repeat(kh).view(1, k, 1, 1)
    off = offset.view(n, k, 2, ho, wo)
    py = base_y + tap_y + off[:, :, 0]  # [N, K, Ho, Wo]
    px = base_x + tap_x + off[:, :, 1]
    cols = _bilinear_sample(x, py.reshape(n, -1), px.reshape(n, -1))  # [N, C, K*Ho*Wo]
    cols = cols.view(n, c, k, ho * wo)
    if mask is not None:
        cols = cols * mask.reshape(n, 1, k, ho * wo)
    out = torch.matmul(weight.reshape(out_c, c * k), cols.reshape(n, c * k, ho * wo))
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(n, out_c, ho, wo)


def deform_conv2d(x, offset, mask, weight, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                  backend: str = "auto") -> torch.Tensor:
    """Dispatch to torchvision when present (``backend='auto'``), else plain PyTorch; shapes as
    :func:`deform_conv2d_torch`, output in x's dtype. torchvision has no bfloat16 kernel: bf16
    inputs are computed in float32 there and cast back. Raises RuntimeError for
    ``backend='torchvision'`` without it."""
    if backend == "torchvision" or (backend == "auto" and _tv_deform_conv2d is not None):
        if _tv_deform_conv2d is None:
            raise RuntimeError("torchvision.ops.deform_conv2d is not available in this install")
        if x.dtype not in _TV_DTYPES:
            # torchvision's kernels take float32/float64/float16 only ("deformable_im2col" not
            # implemented for 'BFloat16'): this one layer runs in float32 and hands back x's dtype.
            # Other dtypes pass through untouched, so fp32 and fp16 are what they were.
            wide = [None if t is None else t.float() for t in (x, offset, mask, weight, bias)]
            out = _tv_deform_conv2d(wide[0], wide[1], wide[3], wide[4], stride=stride, padding=padding,
                                    dilation=dilation, mask=wide[2])
            return out.to(x.dtype)
        return _tv_deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding,
                                 dilation=dilation, mask=mask)
    return deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation)


class DCNv2(nn.Module):
    """DCNv2 layer with the original's parameter names (weight, bias, conv_offset_mask)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1):
        super().__init__()
        self.stride, self.padding, self.dilation = (stride, stride), (padding, padding), (dilation, dilation)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * kernel_size * kernel_size, kernel_size,
                                          stride=stride, padding=padding, dilation=dilation, bias=True)
        self.backend = "auto"
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        # Zero offsets and mask logits: starts as a plain conv with mask 0.5, as the original.
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, in_channels, H, W] -> [N, out_channels, Ho, Wo] (Ho = (H + 2 padding - dilation (k - 1)
        - 1) // stride + 1): ``conv_offset_mask`` gives 2 k^2 offsets (y, x per tap, in input pixels)
        and k^2 mask logits (sigmoid), as the original's ``external/DCNv2/dcn_v2.py: DCN``."""
        o1, o2, m = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return deform_conv2d(x, offset, torch.sigmoid(m), self.weight, self.bias, self.stride,
                             self.padding, self.dilation, backend=self.backend)
