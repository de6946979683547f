import itertools
import math

import pytest
import torch

from yolact.model import dcn
from yolact.model.dcn import DCNv2, deform_conv2d, deform_conv2d_torch


def direct_dcn_float64(x, offset, mask, weight, bias, stride, pad, dil):
    """Per-output-pixel loop straight from the DCNv2 definition."""
    n, c, h, w = x.shape
    oc, _, kh, kw = weight.shape
    ho = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    out = torch.zeros(n, oc, ho, wo, dtype=torch.float64)

    def sample(b, ch, py, px):
        y0, x0 = math.floor(py), math.floor(px)
        val = 0.0
        for yy, xx in itertools.product((y0, y0 + 1), (x0, x0 + 1)):
            if 0 <= yy < h and 0 <= xx < w:
                val += (1 - abs(py - yy)) * (1 - abs(px - xx)) * x[b, ch, yy, xx].item()
        return val

    for b, i, j in itertools.product(range(n), range(ho), range(wo)):
        for ky, kx in itertools.product(range(kh), range(kw)):
            k = ky * kw + kx
            py = i * stride - pad + ky * dil + offset[b, 2 * k, i, j].item()
            px = j * stride - pad + kx * dil + offset[b, 2 * k + 1, i, j].item()
            m = mask[b, k, i, j].item()
            for ch in range(c):
                v = sample(b, ch, py, px) * m
                out[b, :, i, j] += weight[:, ch, ky, kx].double() * v
        out[b, :, i, j] += bias.double()
    return out


@pytest.mark.parametrize("stride,pad,dil", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_dcn_matches_direct_float64(stride, pad, dil):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    ho = (7 + 2 * pad - dil * 2 - 1) // stride + 1
    wo = (6 + 2 * pad - dil * 2 - 1) // stride + 1
    # offsets large enough to leave the image on some taps
    offset = torch.randn(2, 18, ho, wo, generator=g, dtype=torch.float64) * 2.5
    mask = torch.rand(2, 9, ho, wo, generator=g, dtype=torch.float64)
    got = deform_conv2d_torch(x, offset, mask, weight, bias, (stride, stride), (pad, pad), (dil, dil))
    ref = direct_dcn_float64(x, offset, mask, weight, bias, stride, pad, dil)
    assert torch.allclose(got, ref, atol=1e-10)


def test_dcn_zero_offsets_equal_conv():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 9, 9, generator=g, dtype=torch.float64)
    w = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    off = torch.zeros(1, 18, 5, 5, dtype=torch.float64)
    mask = torch.ones(1, 9, 5, 5, dtype=torch.float64)
    got = deform_conv2d_torch(x, off, mask, w, None, (2, 2), (1, 1), (1, 1))
    assert torch.allclose(got, torch.nn.functional.conv2d(x, w, stride=2, padding=1), atol=1e-12)


def test_dcn_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    # keep sampling points away from integer grid lines, where bilinear is not differentiable
    off = (torch.rand(1, 18, 4, 4, generator=g, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    m = torch.rand(1, 9, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f = lambda x, off, m, w, b: deform_conv2d_torch(x, off, m, w, b, (1, 1), (1, 1), (1, 1))
    assert torch.autograd.gradcheck(f, (x, off, m, w, b), eps=1e-6, atol=1e-5)


def test_dcn_module_layout_and_init():
    layer = DCNv2(8, 8, 3, stride=2, padding=1)
    names = dict(layer.named_parameters())
    assert set(names) == {"weight", "bias", "conv_offset_mask.weight", "conv_offset_mask.bias"}
    assert names["conv_offset_mask.weight"].shape == (27, 8, 3, 3)
    x = torch.randn(1, 8, 10, 10)
    # zero offset/mask logits -> a plain conv scaled by sigmoid(0) = 0.5
    ref = torch.nn.functional.conv2d(x, layer.weight, stride=2, padding=1) * 0.5 + layer.bias.view(1, -1, 1, 1)
    assert torch.allclose(layer(x), ref, atol=1e-5)


@pytest.mark.skipif(not dcn.torchvision_available(), reason="torchvision does not import in this install")
def test_torchvision_and_torch_paths_agree():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, 8, generator=g)
    w = torch.randn(3, 4, 3, 3, generator=g)
    b = torch.randn(3, generator=g)
    off = torch.randn(2, 18, 8, 8, generator=g) * 2
    m = torch.rand(2, 9, 8, 8, generator=g)
    a = deform_conv2d(x, off, m, w, b, (1, 1), (1, 1), (1, 1), backend="torchvision")
    t = deform_conv2d(x, off, m, w, b, (1, 1), (1, 1), (1, 1), backend="torch")
    assert torch.allclose(a, t, atol=1e-4)


def _torchvision_stand_in(calls):
    """A stand-in for torchvision.ops.deform_conv2d (it does not import here) with its dtype rule:
    float32, float64 and float16 kernels only; it records what it was given and computes with
    the plain-PyTorch path."""
    def fake(x, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None):
        calls.append((x, offset, mask, weight, bias))
        if x.dtype not in (torch.float32, torch.float64, torch.float16):
            raise NotImplementedError(f'"deformable_im2col" not implemented for {x.dtype}')
        return deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation)
    return fake


def test_bf16_through_torchvision_runs_in_float32_and_fp32_is_untouched(monkeypatch):
    calls = []
    monkeypatch.setattr(dcn, "_tv_deform_conv2d", _torchvision_stand_in(calls))
    torch.manual_seed(0)
    layer = DCNv2(4, 3)
    with torch.no_grad():
        layer.conv_offset_mask.weight.normal_(0, 0.3)
    layer.backend = "torchvision"
    x = torch.randn(2, 4, 8, 8)

    # fp32: the arguments reach torchvision as they are (the same tensors, no copy)
    with torch.no_grad():
        ref = layer(x)
    assert calls[-1][3] is layer.weight and calls[-1][4] is layer.bias and calls[-1][0] is x
    assert ref.dtype == torch.float32

    # bf16 (yolact_plus_base at --precision bf16): float32 inside, bf16 out, close to fp32
    layer_bf16 = DCNv2(4, 3)
    layer_bf16.load_state_dict(layer.state_dict())
    layer_bf16.backend = "torchvision"
    layer_bf16.to(torch.bfloat16)
    with torch.no_grad():
        out = layer_bf16(x.bfloat16())
    assert all(t.dtype == torch.float32 for t in calls[-1] if t is not None)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    assert torch.allclose(out.float(), ref, atol=0.15, rtol=0.05)
