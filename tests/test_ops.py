import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from yolact.config import PRESETS
from yolact.ops.boxes import box_iou, center_size, decode, encode, point_form, sanitize_coordinates
from yolact.ops.masks import assemble_masks, crop, upsample_masks
from yolact.ops.nms import classic_nms, cross_class_fast_nms, fast_nms
from yolact.ops.priors import level_priors, make_priors


def rand_boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 0.7
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 0.3 + 0.01
    return torch.cat([xy, xy + wh], 1)


def test_encode_decode_roundtrip():
    g = torch.Generator().manual_seed(0)
    priors = center_size(rand_boxes(50, g))
    gt = rand_boxes(50, g)
    loc = encode(gt, priors)
    assert torch.allclose(decode(loc, priors), gt, atol=1e-12)
    # decode by hand for one prior: SSD variances 0.1 / 0.2
    l, p = loc[3], priors[3]
    cx = p[0] + l[0] * 0.1 * p[2]
    w = p[2] * math.exp(l[2] * 0.2)
    assert math.isclose(decode(loc, priors)[3, 0].item(), cx - w / 2, abs_tol=1e-12)


def test_point_form_center_size_inverse():
    g = torch.Generator().manual_seed(1)
    b = rand_boxes(10, g)
    assert torch.allclose(point_form(center_size(b)), b)


def test_box_iou_against_bruteforce():
    g = torch.Generator().manual_seed(2)
    a, b = rand_boxes(7, g), rand_boxes(9, g)
    iou = box_iou(a, b)
    for i, j in itertools.product(range(7), range(9)):
        ax1, ay1, ax2, ay2 = a[i].tolist()
        bx1, by1, bx2, by2 = b[j].tolist()
        iw, ih = max(0, min(ax2, bx2) - max(ax1, bx1)), max(0, min(ay2, by2) - max(ay1, by1))
        inter = iw * ih
        union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
        assert math.isclose(iou[i, j].item(), inter / union, abs_tol=1e-12)
        assert math.isclose(box_iou(a, b, iscrowd=True)[i, j].item(), inter / ((ax2 - ax1) * (ay2 - ay1)), abs_tol=1e-12)
    # batched form
    assert torch.allclose(box_iou(a[None], b[None])[0], iou)


def test_sanitize_coordinates_orders_pads_and_clamps():
    x1, x2 = sanitize_coordinates(torch.tensor([0.5, -0.1]), torch.tensor([0.2, 1.2]), 100, padding=1)
    assert x1.tolist() == pytest.approx([19.0, 0.0])
    assert x2.tolist() == pytest.approx([51.0, 100.0])


@pytest.mark.parametrize("name,count", [("yolact_base", 19248), ("yolact_plus_base", 57744),
                                        ("yolact_im400", 10077), ("yolact_im700", 30963)])
def test_prior_counts(name, count):
    cfg = PRESETS[name]
    sizes, s = [], cfg.max_size
    for _ in range(3):  # conv1 + maxpool + ... : ceil halving to stride 8
        s = (s + 1) // 2
    for _ in range(5):
        sizes.append((s, s))
        s = (s + 1) // 2
    assert make_priors(cfg, sizes).shape == (count, 4)


def test_prior_values_first_and_last():
    cfg = PRESETS["yolact_base"]
    sizes = [(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)]
    pri = make_priors(cfg, sizes)
    # first cell of P3, ratio 1: centre (0.5/69), side 24/550; ratio 1/2 -> sqrt(1/2) scaled square
    assert pri[0].tolist() == pytest.approx([0.5 / 69, 0.5 / 69, 24 / 550, 24 / 550], abs=1e-7)
    w = 24 * math.sqrt(0.5) / 550
    assert pri[1, 2].item() == pytest.approx(w, abs=1e-7) and pri[1, 3].item() == pytest.approx(w, abs=1e-7)
    # last: P7 cell (4, 4), ratio 2, square of side 384*sqrt(2)/550
    side = 384 * math.sqrt(2) / 550
    assert pri[-1].tolist() == pytest.approx([4.5 / 5, 4.5 / 5, side, side], abs=1e-6)
    # YOLACT++: three scales x three ratios, rectangular
    plus = make_priors(PRESETS["yolact_plus_base"], sizes)
    assert plus[1].tolist() == pytest.approx([0.5 / 69, 0.5 / 69, 24 * math.sqrt(0.5) / 550,
                                              24 / math.sqrt(0.5) / 550], abs=1e-7)
    s3 = 384 * 2 ** (2 / 3)
    assert plus[-1].tolist() == pytest.approx([0.9, 0.9, s3 * math.sqrt(2) / 550, s3 / math.sqrt(2) / 550], abs=1e-6)


def test_priors_row_major_order():
    p = level_priors(2, 3, [10], [1.0], 100, True)
    centres = [(round(x, 4), round(y, 4)) for x, y in p[:, :2]]
    assert centres == [(round((i + .5) / 3, 4), round((j + .5) / 2, 4)) for j in range(2) for i in range(3)]


def bruteforce_fast_nms(boxes, scores, thr, top_k, max_det):
    """Reference: for each class, a candidate survives iff no higher-ranked candidate (of the
    top_k) overlaps it above thr -- suppressed or not."""
    out = []
    for c in range(scores.shape[0]):
        order = sorted(range(scores.shape[1]), key=lambda i: -scores[c, i].item())[:top_k]
        for rank, i in enumerate(order):
            ious = [box_iou(boxes[j][None], boxes[i][None]).item() for j in order[:rank]]
            if not ious or max(ious) <= thr:
                out.append((scores[c, i].item(), i, c))
    out.sort(key=lambda t: -t[0])
    return out[:max_det]


def test_fast_nms_matches_bruteforce():
    g = torch.Generator().manual_seed(3)
    boxes = rand_boxes(60, g).float()
    scores = torch.rand(4, 60, generator=g)
    idx, cls, sc = fast_nms(boxes, scores, 0.5, top_k=30, max_det=40)
    ref = bruteforce_fast_nms(boxes, scores, 0.5, 30, 40)
    assert [(i, c) for _, i, c in ref] == list(zip(idx.tolist(), cls.tolist()))
    assert sc.tolist() == pytest.approx([s for s, _, _ in ref])


def test_fast_nms_is_looser_than_classic():
    # A suppresses B, B would suppress C; A and C do not overlap: Fast NMS drops C too.
    boxes = torch.tensor([[0.0, 0, .4, .4], [.2, 0, .6, .4], [.4, 0, .8, .4]])
    boxes[1] = torch.tensor([.1, 0, .5, .4])
    boxes[2] = torch.tensor([.25, 0, .65, .4])
    scores = torch.tensor([[.9, .8, .7]])
    idx_fast, _, _ = fast_nms(boxes, scores, 0.3)
    idx_classic, _, _ = classic_nms(boxes, scores, 0.3)
    assert idx_fast.tolist() == [0]
    assert idx_classic.tolist() == [0, 2]


def test_cross_class_nms_one_class_per_prior():
    boxes = torch.tensor([[0.0, 0, .4, .4], [0.01, 0, .41, .4], [.5, .5, .9, .9]])
    scores = torch.tensor([[.9, .2, .1], [.1, .8, .7]])
    idx, cls, sc = cross_class_fast_nms(boxes, scores, 0.5)
    assert idx.tolist() == [0, 2] and cls.tolist() == [0, 1]
    assert sc.tolist() == pytest.approx([.9, .7])


def test_crop_matches_loop():
    g = torch.Generator().manual_seed(4)
    masks = torch.rand(20, 24, 3, generator=g)
    # multiples of 1/64: exact in float32, so the float comparisons of the reference agree
    boxes = torch.tensor([[7, 13, 33, 39], [39, 0, 19, 64], [0, 0, 64, 64]]) / 64.0
    out = crop(masks, boxes)
    for n in range(3):
        x1, x2 = sorted([boxes[n, 0].item() * 24, boxes[n, 2].item() * 24])
        y1, y2 = sorted([boxes[n, 1].item() * 20, boxes[n, 3].item() * 20])
        x1, y1, x2, y2 = max(x1 - 1, 0), max(y1 - 1, 0), min(x2 + 1, 24), min(y2 + 1, 20)
        for y in range(20):
            for x in range(24):
                inside = x1 <= x < x2 and y1 <= y < y2
                assert out[y, x, n].item() == (masks[y, x, n].item() if inside else 0.0)


def test_assemble_and_upsample_masks():
    proto = torch.zeros(8, 8, 2)
    proto[2:6, 2:6, 0] = 10.0
    coeffs = torch.tensor([[1.0, 0.0]])
    boxes = torch.tensor([[0.25, 0.25, 0.75, 0.75]])
    soft = assemble_masks(proto, coeffs, boxes)
    assert soft.shape == (1, 8, 8)
    assert soft[0, 3, 3] > 0.99 and soft[0, 0, 0] == 0  # cropped outside the padded box
    hard = upsample_masks(soft, 32, 32)
    assert hard.dtype == torch.bool and hard.shape == (1, 32, 32)
    assert hard[0, 12:20, 12:20].all() and not hard[0, :4].any()
    assert upsample_masks(soft[:0], 5, 7).shape == (0, 5, 7)


def test_bicubic_upsample_is_pytorchs():
    """The 'bicubic' mask interpolation is F.interpolate's (A = -0.75, edges clamped), checked
    against a float64 brute force of the cubic convolution kernel."""
    import numpy as np
    g = torch.Generator().manual_seed(5)
    soft = torch.rand(2, 6, 7, generator=g)
    h, w = 23, 17
    up = torch.nn.functional.interpolate(soft[None], (h, w), mode="bicubic", align_corners=False)[0].double()

    def kernel(x, a=-0.75):
        x = abs(x)
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1 if x <= 1 else (a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
                                                                        if x < 2 else 0.0)

    def taps(n_out, n_in, o):
        src = (o + 0.5) * n_in / n_out - 0.5
        i = int(np.floor(src))
        return [(min(max(i + k, 0), n_in - 1), kernel(src - (i + k))) for k in (-1, 0, 1, 2)]

    m = soft.double().numpy()
    ref = np.zeros((2, h, w))
    for y in range(h):
        for x in range(w):
            for sy, wy in taps(h, 6, y):
                for sx, wx in taps(w, 7, x):
                    ref[:, y, x] += wy * wx * m[:, sy, sx]
    np.testing.assert_allclose(up.numpy(), ref, atol=1e-5)
    assert torch.equal(upsample_masks(soft, h, w, mode="bicubic"), up > 0.5)
    with pytest.raises(ValueError, match="mask interpolation 'nearest'"):
        upsample_masks(soft, h, w, mode="nearest")


def test_cpu_bicubic_by_matrix_products_equals_pytorchs_kernel():
    """The CPU's bicubic upsampling (two matrix products, masks with a near-tie settled by the
    kernel) thresholds to the same bits as F.interpolate's bicubic kernel: random sizes (1x1
    grids, downsampling, odd ratios), cropped masks, values a few ulps around 0.5 and exact
    ties; and it is what upsample_masks runs on the CPU."""
    from unittest import mock

    from yolact.ops import masks as ops_masks

    g = torch.Generator().manual_seed(5)

    def kernel(m, h, w):
        return F.interpolate(m[None], (h, w), mode="bicubic", align_corners=False)[0] > 0.5

    settled = 0
    for trial in range(120):
        n, sh, sw = (int(torch.randint(1, k, (1,), generator=g)) for k in (6, 50, 50))
        h, w = (int(torch.randint(1, 260, (1,), generator=g)) for _ in range(2))
        soft = torch.sigmoid(torch.randn(n, sh, sw, generator=g) * 4)
        if trial % 3 == 0:
            b = torch.rand(n, 4, generator=g)
            boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
            soft = crop(soft.permute(1, 2, 0), boxes).permute(2, 0, 1).contiguous()
        if trial % 4 == 1:
            soft = 0.5 + (torch.randint(-3, 4, soft.shape, generator=g) * 2.0 ** -24).float()
        if trial % 5 == 2:
            soft[soft > 0.5] = 0.5
        with mock.patch.object(ops_masks, "_kernel_above", wraps=ops_masks._kernel_above) as spy:
            got = upsample_masks(soft, h, w, mode="bicubic")
        settled += spy.call_count
        assert torch.equal(got, kernel(soft, h, w)), (trial, n, sh, sw, h, w)
    assert 0 < settled < 120  # near-ties exist here and went to the kernel; the rest did not
    soft = torch.randn(2, 24, 24, generator=g)
    soft[0, 5, 5] = float("nan")  # spreads through a whole product; the kernel keeps it to its taps
    assert torch.equal(upsample_masks(soft, 96, 96, mode="bicubic"), kernel(soft, 96, 96))
    soft = torch.rand(3, 48, 48, generator=g)
    with mock.patch.object(ops_masks, "_kernel_above", side_effect=AssertionError("kernel used")):
        upsample_masks(soft * 0.4, 192, 192, mode="bicubic")  # no value near 0.5: products only


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_upsample_in_boxes_equals_full_upsample(mode):
    from yolact.ops.masks import upsample_masks_in_boxes
    g = torch.Generator().manual_seed(7)
    n = 12
    b = torch.rand(n, 4, generator=g)
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    soft = crop(torch.rand(40, 50, n, generator=g), boxes).permute(2, 0, 1).contiguous()
    # float32 on the CPU runs the windows in NumPy; other dtypes (and other devices) in PyTorch
    for dtype in (torch.float32, torch.float64):
        for h, w in [(97, 131), (300, 200), (23, 17), (40, 50), (41, 300)]:
            full = upsample_masks(soft.to(dtype), h, w, mode=mode)
            fast = upsample_masks_in_boxes(soft.to(dtype), boxes, h, w, mode=mode)
            assert torch.equal(full, fast), (h, w, dtype)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_upsample_in_boxes_chunked_is_bit_identical(mode):
    """Bands of any height (one output row, a few, the whole window) give the same bits as
    the one-band pass and as F.interpolate, for full arrays and for crops."""
    from yolact.ops.masks import upsample_masks_in_boxes
    g = torch.Generator().manual_seed(3)
    n = 9
    b = torch.rand(n, 4, generator=g)
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    boxes[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # a box covering the whole image
    soft = crop(torch.rand(35, 44, n, generator=g), boxes).permute(2, 0, 1).contiguous()
    for h, w in [(211, 389), (480, 640)]:
        full = upsample_masks(soft, h, w, mode=mode)
        one = upsample_masks_in_boxes(soft, boxes, h, w, chunk_bytes=1 << 40, mode=mode)
        assert torch.equal(full, one)
        for chunk in (1, 16 * w, 4096 * 7):
            assert torch.equal(upsample_masks_in_boxes(soft, boxes, h, w, chunk_bytes=chunk, mode=mode), full), \
                (h, w, chunk)
            a = upsample_masks_in_boxes(soft, boxes, h, w, crops=True, chunk_bytes=chunk, mode=mode)
            b_ = upsample_masks_in_boxes(soft, boxes, h, w, crops=True, chunk_bytes=1 << 40, mode=mode)
            assert [(x0, y0) for _, x0, y0 in a] == [(x0, y0) for _, x0, y0 in b_]
            assert all(torch.equal(c, d) for (c, _, _), (d, _, _) in zip(a, b_))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_upsample_in_boxes_exact_at_the_threshold(mode):
    # soft values a few ulps around 0.5: the in-box taps must not decide these differently
    # from F.interpolate (the original's path), so the result is bit-identical.
    from yolact.ops.masks import upsample_masks_in_boxes
    g = torch.Generator().manual_seed(11)
    n = 8
    b = torch.rand(n, 4, generator=g)
    boxes = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    noise = (torch.randint(-3, 4, (45, 60, n), generator=g) * 2.0 ** -24).float()
    soft = crop(0.5 + noise, boxes).permute(2, 0, 1).contiguous()
    for h, w in [(480, 640), (331, 257)]:
        for dtype in (torch.float32, torch.float64):  # NumPy's windows and PyTorch's
            assert torch.equal(upsample_masks(soft.to(dtype), h, w, mode=mode),
                               upsample_masks_in_boxes(soft.to(dtype), boxes, h, w, mode=mode)), (h, w, dtype)


def test_fast_nms_empty_inputs():
    for boxes, scores in ((torch.zeros(0, 4), torch.zeros(3, 0)), (torch.rand(5, 4), torch.zeros(0, 5))):
        idx, classes, kept = fast_nms(boxes, scores)
        assert idx.numel() == classes.numel() == kept.numel() == 0


def test_fast_nms_chunked_equals_one_shot():
    # 80 classes x top-200 is split into chunks inside fast_nms; the result must equal the
    # whole-tensor computation with a full sort (the original's formulation).
    g = torch.Generator().manual_seed(5)
    boxes = rand_boxes(500, g).float()
    scores = torch.rand(80, 500, generator=g)
    idx, cls, sc = fast_nms(boxes, scores, 0.5, top_k=200, max_det=100)
    s, order = scores.sort(1, descending=True)
    s, order = s[:, :200], order[:, :200]
    cand = boxes[order.reshape(-1)].view(80, 200, 4)
    a, b = cand[:, :, None, :], cand[:, None, :, :]
    wh = (torch.min(a[..., 2:], b[..., 2:]) - torch.max(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = (cand[..., 2] - cand[..., 0]) * (cand[..., 3] - cand[..., 1])
    iou = (inter / (area[:, :, None] + area[:, None, :] - inter)).triu_(1)
    keep = iou.max(1).values <= 0.5
    ks, ko = s[keep].sort(0, descending=True)
    ref_idx = order[keep][ko][:100]
    ref_cls = torch.arange(80)[:, None].expand_as(keep)[keep][ko][:100]
    assert torch.equal(idx, ref_idx) and torch.equal(cls, ref_cls)
    assert torch.equal(sc, ks[:100])


@pytest.mark.parametrize("groups,dets", [(5, 200), (80, 200), (3, 7), (1, 1)])
def test_fast_nms_keep_numpy_path_equals_torch_iou(groups, dets):
    # On CPU the keep rule runs in NumPy; it must decide as box_iou (PyTorch) does, NaN,
    # zero-area, duplicate boxes and an IoU of exactly the threshold included.
    from yolact.ops.nms import fast_nms_keep

    g = torch.Generator().manual_seed(groups * 1000 + dets)
    cand = rand_boxes(groups * dets, g).float().view(groups, dets, 4)
    if dets >= 7:
        cand[0, 1] = float("nan")
        cand[0, 2, 2:] = cand[0, 2, :2]  # zero area
        cand[0, 3] = cand[0, 2]  # a zero-area duplicate: IoU 0 / 0
        cand[0, 4] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        cand[0, 5] = torch.tensor([0.0, 0.0, 1.0, 0.5])  # IoU with the one before: exactly 0.5
    ref = box_iou(cand, cand).triu_(diagonal=1).amax(dim=1) <= 0.5
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):  # the same decisions at any torch thread count
            torch.set_num_threads(n)
            assert torch.equal(fast_nms_keep(cand, 0.5), ref), f"{n} threads"
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(fast_nms_keep(cand.requires_grad_(), 0.5), ref)  # the PyTorch path


# ---------------------------------------------------------------------------------------------
# Kernel launches of the GPU post-processing. Eager CUDA pays a launch (~5-10 us of host time)
# per operation, so on a GPU the operation count per image, not the arithmetic, bounds batched
# post-processing. Counted on the meta device (no data, same dispatch as CUDA: not 'cpu').
# ---------------------------------------------------------------------------------------------

_VIEWS = {"view", "_unsafe_view", "select", "slice", "unbind", "as_strided", "expand", "permute", "t", "unsqueeze",
          "squeeze", "alias", "transpose", "detach", "split", "split_with_sizes", "_reshape_alias", "lift_fresh"}


def _count_ops(fn):
    """Operations (views left out) that ``fn`` dispatches: roughly its kernel launches on a GPU."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in _VIEWS:
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def test_fast_nms_keep_is_one_pass_off_the_cpu():
    """The CPU computes the [G, D, D] IoU in cache-sized chunks; a GPU must not (each chunk is
    ~20 launches: 14 chunks an image made batch 32 post-processing launch-bound)."""
    from yolact.ops.nms import fast_nms_keep

    few = _count_ops(lambda: fast_nms_keep(torch.rand(8, 200, 4, device="meta"), 0.5))
    many = _count_ops(lambda: fast_nms_keep(torch.rand(80, 200, 4, device="meta"), 0.5))
    assert many == few, (few, many)


def test_fast_nms_keep_chunks_give_the_bits_of_one_pass():
    from yolact.ops.nms import fast_nms_keep

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(80, 200, 2, generator=g)
    cand = torch.cat([xy, xy + 0.3 * torch.rand(80, 200, 2, generator=g)], -1)
    one_pass = box_iou(cand, cand).triu_(diagonal=1).amax(dim=1) <= 0.5
    assert torch.equal(fast_nms_keep(cand, 0.5), one_pass)  # the CPU's chunked path
    cand64 = cand.double()  # float64: the PyTorch (not NumPy) chunked path
    assert torch.equal(fast_nms_keep(cand64, 0.5), box_iou(cand64, cand64).triu_(diagonal=1).amax(dim=1) <= 0.5)


def test_gpu_postprocess_launches_per_image_do_not_grow_with_classes():
    """PostProcess.forward_static + to_image (what the GPU runs per image): about 90 operations
    for yolact_base (it was ~350 with the chunked IoU), the same for 8 or 80 classes."""
    from yolact.config import get_config
    from yolact.model.postprocess import PostProcess

    def run(classes):
        cfg = get_config("yolact_base")
        p = 19248
        args = (torch.rand(p, 4, device="meta"), torch.rand(p, classes + 1, device="meta"),
                torch.rand(p, 32, device="meta"), torch.rand(138, 138, 32, device="meta"))
        post = PostProcess(cfg)
        return _count_ops(lambda: PostProcess.to_image(post.forward_static(*args, 0.0, 100), 480, 640))

    n80 = run(80)
    assert n80 == run(8)
    assert n80 < 150, n80
