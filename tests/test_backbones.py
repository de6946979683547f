"""Backbones: the CPU fast path of the ResNet stem's max pooling gives max_pool2d's bits."""
import pytest
import torch
import torch.nn.functional as F

from yolact.model.backbones import ResNetBackbone, StemMaxPool, max_pool_3x3_s2


@pytest.mark.parametrize("h,w", [(96, 96), (97, 95), (1, 1), (2, 3), (48, 33)])
def test_separable_max_pool_equals_max_pool2d(h, w):
    x = torch.randn(2, 5, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    x[0, 0, 0, 0] = float("nan")
    x[1, 1, -1, -1] = float("-inf")
    x[1, 2] = float("-inf")  # a whole plane of -inf: the padding must not leak in as a value
    ref = F.max_pool2d(x, 3, 2, 1)
    out = max_pool_3x3_s2(x)
    assert out.shape == ref.shape
    assert torch.equal(out.nan_to_num(nan=7.0), ref.nan_to_num(nan=7.0))
    assert torch.equal(out.isnan(), ref.isnan())


def test_stem_pool_fast_path_only_where_it_is_the_same():
    pool = StemMaxPool()
    x = torch.randn(1, 4, 20, 20)
    with torch.no_grad():
        assert torch.equal(pool(x), F.max_pool2d(x, 3, 2, 1))
        cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(pool(cl), F.max_pool2d(x, 3, 2, 1))
    g = x.clone().requires_grad_()
    pool(g).sum().backward()  # training: max_pool2d's gradient (one winner per window)
    ref = x.clone().requires_grad_()
    F.max_pool2d(ref, 3, 2, 1).sum().backward()
    assert torch.equal(g.grad, ref.grad)


def test_resnet_backbone_outputs_unchanged_by_the_fast_pool():
    torch.manual_seed(0)
    net = ResNetBackbone("resnet18", width=16).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        fast = net(x)
        net.maxpool = torch.nn.MaxPool2d(3, 2, 1)
        ref = net(x)
    assert all(torch.equal(a, b) for a, b in zip(fast, ref))
