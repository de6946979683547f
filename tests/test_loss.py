import math

import pytest
import torch
import torch.nn.functional as F

from yolact.config import get_config
from yolact.loss import LossOptions, YolactCriterion as YolactLoss, mask_loss, match, ohem_conf_loss, semantic_loss
from yolact.model.yolact import HeadOutputs
from yolact.ops.boxes import center_size, encode


def test_match_thresholds_best_prior_and_crowd():
    # priors (cx, cy, w, h): 0 overlaps GT0 perfectly, 1 partially (IoU 0.45: ignored),
    # 2 lightly (IoU < 0.4: background), 3 is GT1's only overlap (IoU 0.25 -> forced positive),
    # 4 sits inside a crowd region.
    gt = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.6, 0.6, 0.8, 0.8]])
    labels = torch.tensor([2, 0])
    priors = center_size(torch.tensor([
        [0.0, 0.0, 0.2, 0.2],
        [0.0, 0.0, 0.2, 0.09],   # IoU 0.45
        [0.1, 0.1, 0.3, 0.3],    # IoU 1/7
        [0.6, 0.6, 0.7, 0.7],    # IoU 0.25 with GT1, its best prior
        [0.35, 0.35, 0.45, 0.45],
    ]))
    crowd = torch.tensor([[0.3, 0.3, 0.5, 0.5]])
    m = match(gt, labels, priors, 0.5, 0.4, crowd, 0.7)
    assert m.conf_t.tolist() == [3, -1, 0, 1, -1]
    assert m.idx_t[0] == 0 and m.idx_t[3] == 1
    assert torch.allclose(m.loc_t[3], encode(gt[1:2], priors[3:4])[0])
    # without the crowd, prior 4 is plain background
    assert match(gt, labels, priors, 0.5, 0.4).conf_t[4] == 0


def test_ohem_picks_hardest_negatives_3_to_1():
    conf = torch.zeros(1, 6, 3)
    conf[0, 0] = torch.tensor([0.0, 2.0, 0.0])   # positive, class 1
    bg_logit = torch.tensor([5.0, -1.0, 0.0, -3.0, 4.0])  # lower bg logit = harder negative
    conf[0, 1:, 0] = bg_logit
    conf_t = torch.tensor([[1, 0, 0, 0, 0, 0]])
    got = ohem_conf_loss(conf, conf_t, 3)
    hardest = [4, 2, 3]  # priors 1..5 -> bg logits -1 (p2), 0 (p3), -3 (p4) are the hardest
    expected = F.cross_entropy(conf[0, [0] + hardest], torch.tensor([1, 0, 0, 0]), reduction="sum")
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # ignored priors (-1) are never negatives
    conf_t2 = torch.tensor([[1, 0, -1, -1, -1, 0]])
    got2 = ohem_conf_loss(conf, conf_t2, 3)
    exp2 = F.cross_entropy(conf[0, [0, 1, 5]], torch.tensor([1, 0, 0]), reduction="sum")
    assert got2.item() == pytest.approx(exp2.item(), rel=1e-6)


def test_mask_loss_by_hand():
    h = w = 8
    proto = torch.zeros(h, w, 1, dtype=torch.float64)
    proto[2:6, 2:6, 0] = 1.0
    coef = torch.tensor([[2.0]], dtype=torch.float64)
    gt = torch.zeros(1, h, w, dtype=torch.float64)
    gt[0, 3:6, 3:6] = 1
    box = torch.tensor([[0.25, 0.25, 0.75, 0.75]], dtype=torch.float64)  # 4x4 proto px
    gt[0, 0, 0] = 1  # a GT pixel outside the padded box: the cropped prediction there is 0
    got, pred = mask_loss(proto, coef, gt, torch.tensor([0]), box)
    total = 0.0
    for y in range(h):
        for x in range(w):
            t = gt[0, y, x].item()
            if not (1 <= x < 7 and 1 <= y < 7):  # crop window: box padded by 1 px
                total += 100.0 * t  # BCE(0, 1), with PyTorch's log clamp at -100 (as the original)
                continue
            p = 1 / (1 + math.exp(-2.0 * proto[y, x, 0].item()))
            total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    assert got.item() == pytest.approx(total / (4 * 4), rel=1e-9)
    assert pred.shape == (h, w, 1) and pred[0, 0, 0] == 0
    # with a subset drawn, the term is scaled by positives / subset size
    assert mask_loss(proto, coef, gt, torch.tensor([0]), box, scale=2.5)[0].item() == pytest.approx(2.5 * got.item())
    # a Dice term (recipe field mask_dice) adds 1 - (2 sum(p t) + 1) / (sum(p^2) + sum(t^2) + 1) per mask
    p = pred[:, :, 0]
    dice = 1 - (2 * (p * gt[0]).sum().item() + 1) / ((p * p).sum().item() + (gt[0] * gt[0]).sum().item() + 1)
    with_dice = mask_loss(proto, coef, gt, torch.tensor([0]), box, dice=0.7)[0].item()
    assert with_dice == pytest.approx(total / 16 + 0.7 * dice, rel=1e-9) and 0 < dice < 1


def _crowded(n_gt=6, size=64, seed=0, proto=16):
    """One image whose GT boxes each match many identical priors: n_gt * 40 positives."""
    g = torch.Generator().manual_seed(seed)
    boxes, masks = [], torch.zeros(n_gt, size, size)
    for i in range(n_gt):
        x1 = 0.02 + 0.15 * i
        boxes.append([x1, 0.1, x1 + 0.12, 0.5])
        masks[i, int(0.1 * size):int(0.5 * size), int(x1 * size):int((x1 + 0.12) * size)] = 1
    boxes = torch.tensor(boxes)
    priors = center_size(boxes).repeat_interleave(40, 0)  # 40 perfect priors per GT
    priors = torch.cat([priors, torch.tensor([[0.5, 0.9, 0.1, 0.1]])])  # and one background
    p = priors.shape[0]
    out = HeadOutputs(loc=torch.randn(1, p, 4, generator=g), conf=torch.randn(1, p, 4, generator=g),
                      coef=torch.tanh(torch.randn(1, p, 8, generator=g)).requires_grad_(),
                      proto=torch.rand(1, proto, proto, 8, generator=g).requires_grad_(), priors=priors,
                      segm=torch.randn(1, 3, 16, 16, generator=g))
    targets = [{"boxes": boxes, "labels": torch.arange(n_gt) % 3, "masks": masks, "num_crowds": 0}]
    return out, targets


def test_crowded_image_mask_term_is_rescaled_like_the_original():
    cfg = get_config("yolact_resnet18", class_names=["a", "b", "c"]).replace(max_size=64, masks_to_train=100)
    out, targets = _crowded()
    num_pos = 240
    torch.manual_seed(7)
    losses = YolactLoss(cfg)(out, targets)
    # by hand: the same subset from the same global RNG draw, the per-mask sums times 240 / 100
    torch.manual_seed(7)
    subset = torch.randperm(num_pos)[:100]
    gt_small = F.interpolate(targets[0]["masks"][None], (16, 16), mode="bilinear", align_corners=False)[0].gt(0.5)
    total = 0.0
    for i in subset.tolist():
        j = i // 40  # prior i belongs to GT j
        x1, y1, x2, y2 = targets[0]["boxes"][j].tolist()
        p = torch.sigmoid(out.proto[0] @ out.coef[0, i]).detach().double()
        t = gt_small[j].double()
        cols = torch.arange(16, dtype=torch.float64)
        inside = ((cols[None, :] >= x1 * 16 - 1) & (cols[None, :] < x2 * 16 + 1) &
                  (cols[:, None] >= y1 * 16 - 1) & (cols[:, None] < y2 * 16 + 1))
        p = torch.where(inside, p, torch.zeros_like(p))
        bce = -(t * torch.log(p).clamp(min=-100) + (1 - t) * torch.log(1 - p).clamp(min=-100))
        total += bce.sum().item() / ((x2 - x1) * 16 * (y2 - y1) * 16)
    expected = total * num_pos / 100 * cfg.mask_alpha / num_pos
    assert losses["mask"].item() == pytest.approx(expected, rel=1e-5)
    # without the subset (masks_to_train >= positives) there is no rescale and no RNG draw
    full = YolactLoss(cfg.replace(masks_to_train=1000))(out, targets)["mask"].item()
    assert full == pytest.approx(losses["mask"].item(), rel=0.3)  # same order: the rescale is in


def test_soft_mask_targets_are_each_cells_covered_fraction(monkeypatch):
    """``mask_target="soft"``: the target of each prototype cell is the fraction of its input
    pixels inside the GT mask (brute force over 4 x 4 blocks), the BCE otherwise unchanged;
    the default stays the original's binarised bilinear resize."""
    import yolact.loss as loss_mod

    cfg = get_config("yolact_resnet18", class_names=["a", "b", "c"]).replace(max_size=64, masks_to_train=1000)
    out, targets = _crowded(n_gt=3)
    masks = targets[0]["masks"]
    masks[0, 10:13, 5:7] = 0  # odd edges, off the 4-pixel grid
    seen = []
    real = loss_mod.mask_loss
    monkeypatch.setattr(loss_mod, "mask_loss", lambda *a, **k: seen.append(a[2]) or real(*a, **k))
    soft = YolactLoss(cfg, options=LossOptions(mask_target="soft"))(out, targets)["mask"].item()
    binary = YolactLoss(cfg)(out, targets)["mask"].item()
    blocks = masks.double().reshape(3, 16, 4, 16, 4).mean(dim=(2, 4))
    assert torch.allclose(seen[0].double(), blocks, atol=1e-6)
    assert ((blocks > 0) & (blocks < 1)).any()  # fractional cells exist
    assert torch.equal(seen[1], F.interpolate(masks[None], (16, 16), mode="bilinear", align_corners=False)[0].gt(0.5).float())
    # by hand, as the original's term but against the fractions
    total, num_pos = 0.0, 3 * 40
    for i in range(num_pos):
        j = i // 40
        x1, y1, x2, y2 = targets[0]["boxes"][j].tolist()
        p = torch.sigmoid(out.proto[0] @ out.coef[0, i]).detach().double()
        cols = torch.arange(16, dtype=torch.float64)
        inside = ((cols[None, :] >= x1 * 16 - 1) & (cols[None, :] < x2 * 16 + 1) &
                  (cols[:, None] >= y1 * 16 - 1) & (cols[:, None] < y2 * 16 + 1))
        p = torch.where(inside, p, torch.zeros_like(p))
        t = blocks[j]
        bce = -(t * torch.log(p).clamp(min=-100) + (1 - t) * torch.log(1 - p).clamp(min=-100))
        total += bce.sum().item() / ((x2 - x1) * 16 * (y2 - y1) * 16)
    assert soft == pytest.approx(total * cfg.mask_alpha / num_pos, rel=1e-5)
    assert soft != pytest.approx(binary, rel=1e-3)
    with pytest.raises(ValueError, match="mask_target 'hard'"):
        LossOptions(mask_target="hard")
    with pytest.raises(ValueError, match="mask_dice -1"):
        LossOptions(mask_dice=-1)
    with pytest.raises(ValueError, match="neg_iou_thresh 0.6 above pos_iou_thresh 0.5"):
        LossOptions(pos_iou_thresh=0.5, neg_iou_thresh=0.6)
    with pytest.raises(ValueError, match="pos_iou_thresh 1.5: expected an IoU in 0..1"):
        LossOptions(pos_iou_thresh=1.5)
    with pytest.raises(ValueError, match="center_topk -1"):
        LossOptions(center_topk=-1)
    assert LossOptions(pos_iou_thresh=0.6, neg_iou_thresh=0.3).pos_iou_thresh == 0.6


def test_mask_coverage_is_exact_at_any_size_ratio():
    """Against brute force: each pixel cut into ph x pw sub-pixels, then exact block means."""
    from yolact.loss import mask_coverage

    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, 10, 14, generator=g) > 0.5).float()
    for ph, pw in ((4, 6), (5, 7), (3, 14), (10, 14)):
        fine = masks.double().repeat_interleave(ph, 1).repeat_interleave(pw, 2)  # [3, 10 ph, 14 pw]
        brute = fine.reshape(3, ph, 10, pw, 14).mean(dim=(2, 4))
        got = mask_coverage(masks, ph, pw)
        assert got.dtype == torch.float32 and torch.allclose(got.double(), brute, atol=1e-6), (ph, pw)
    # a whole multiple: the same as F.interpolate's area mode
    assert torch.allclose(mask_coverage(masks[:, :8, :12], 4, 3), F.interpolate(masks[None, :, :8, :12], (4, 3),
                                                                                  mode="area")[0], atol=1e-6)
    # under autocast the targets stay float32 (not bf16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mask_coverage(masks, 4, 6).dtype == torch.float32


def test_maskiou_term_trains_coefficients_unless_detached():
    torch.manual_seed(0)
    cfg = get_config("yolact_plus_resnet50", class_names=["a", "b", "c"]).replace(max_size=64, discard_mask_area=0)
    from yolact.model.heads import MaskIoUNet
    net = MaskIoUNet(3)
    for attempt_cfg, expect_grad in ((cfg, True), (cfg.replace(maskiou_detach_input=True), False)):
        out, targets = _crowded(n_gt=2, proto=64)
        out = out._replace(coef=out.coef.detach().requires_grad_(), proto=out.proto.detach().requires_grad_())
        losses = YolactLoss(attempt_cfg)(out, targets, net)
        losses["maskiou"].backward()
        g = out.coef.grad
        assert (g is not None and g.abs().sum() > 0) == expect_grad
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        net.zero_grad()


def test_semantic_loss_by_hand():
    segm = torch.zeros(2, 2, 2)
    masks = torch.zeros(1, 4, 4)
    masks[0, :2, :2] = 1  # -> top-left cell of class 1 after downsampling
    got = semantic_loss(segm, masks, torch.tensor([1]))
    # logits 0 -> BCE log(2) everywhere, 8 cells, divided by the area 4
    assert got.item() == pytest.approx(8 * math.log(2) / 4, rel=1e-6)
    segm2 = torch.zeros(2, 2, 2)
    segm2[1, 0, 0] = 10.0
    assert semantic_loss(segm2, masks, torch.tensor([1])).item() < got.item()


def test_total_loss_terms_and_normalisation():
    torch.manual_seed(0)
    cfg = get_config("yolact_resnet18", class_names=["a", "b"]).replace(max_size=64)
    priors = center_size(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.4, 0.4]]))
    out = HeadOutputs(loc=torch.randn(1, 3, 4), conf=torch.randn(1, 3, 3), coef=torch.tanh(torch.randn(1, 3, 4)),
                      proto=torch.rand(1, 8, 8, 4), priors=priors, segm=torch.randn(1, 2, 8, 8))
    masks = torch.zeros(2, 64, 64)
    masks[0, :32, :32] = 1
    masks[1, 32:, 32:] = 1
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]), "labels": torch.tensor([0, 1]),
                "masks": masks, "num_crowds": 0}]
    losses = YolactLoss(cfg)(out, targets)
    assert set(losses) == {"box", "conf", "mask", "semantic", "total"}
    # two positives (priors 0, 1): box term = 1.5 * smooth L1 sum / 2
    tgt = encode(targets[0]["boxes"], priors[:2])
    expected_box = 1.5 * F.smooth_l1_loss(out.loc[0, :2], tgt, reduction="sum") / 2
    assert losses["box"].item() == pytest.approx(expected_box.item(), rel=1e-5)
    assert losses["total"].item() == pytest.approx(sum(v.item() for k, v in losses.items() if k != "total"), rel=1e-6)


def test_maskiou_term_for_yolact_plus():
    from conftest import make_tiny_model
    model = make_tiny_model("yolact_plus_resnet50", size=256, detections=False).train()
    x = torch.randn(1, 3, 256, 256)
    masks = torch.zeros(1, 256, 256)
    masks[0, 40:200, 60:180] = 1
    targets = [{"boxes": torch.tensor([[60 / 256, 40 / 256, 180 / 256, 200 / 256]]), "labels": torch.tensor([1]),
                "masks": masks, "num_crowds": 0}]
    losses = model(x, targets)
    assert "maskiou" in losses and torch.isfinite(losses["maskiou"]) and losses["maskiou"] > 0
    losses["total"].backward()
    assert model.maskiou_net.maskiou_net[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Mixed precision: CUDA autocast refuses binary_cross_entropy ("unsafe to autocast"), so the mask
# term runs in float32 with autocast off. CPU autocast does not refuse it, so these tests make
# the rule explicit: no BCE on probabilities may run while autocast is on, on any device.
# ---------------------------------------------------------------------------------------------


def _refuse_bce_under_autocast(monkeypatch):
    real = F.binary_cross_entropy
    calls = []

    def guarded(input, target, *args, **kwargs):
        if torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda"):
            raise RuntimeError("binary_cross_entropy is unsafe to autocast (as CUDA autocast says)")
        calls.append((input.dtype, target.dtype))
        return real(input, target, *args, **kwargs)

    monkeypatch.setattr(F, "binary_cross_entropy", guarded)
    return calls


def _mask_case(seed=0, n=5, k=8, h=12, w=12):
    g = torch.Generator().manual_seed(seed)
    proto = torch.rand(h, w, k, generator=g)
    coef = torch.randn(n, k, generator=g)
    xy = torch.rand(n, 2, generator=g) * 0.5
    boxes = torch.cat([xy, xy + 0.2 + 0.3 * torch.rand(n, 2, generator=g)], 1)
    gt = (torch.rand(3, h, w, generator=g) > 0.5).float()
    idx = torch.randint(0, 3, (n,), generator=g)
    return proto, coef, gt, idx, boxes


def _mask_loss_as_the_original(proto, coef, gt, idx, boxes, scale=1.0):
    """The fp32 mask term written out as the original computes it (pre-AMP-fix code)."""
    from yolact.ops.masks import crop

    h, w, _ = proto.shape
    pred = crop(torch.sigmoid(proto @ coef.t()), boxes)
    pre = F.binary_cross_entropy(pred.clamp(0, 1), gt[idx].permute(1, 2, 0), reduction="none")
    wh = center_size(boxes)[:, 2:]
    return ((pre.sum(dim=(0, 1)) / (wh[:, 0] * w) / (wh[:, 1] * h)) * scale).sum(), pred


def test_mask_loss_fp32_is_bit_identical_to_the_original_formulation():
    for seed in range(3):
        case = _mask_case(seed)
        got, pred = mask_loss(*case, scale=1.5)
        want, want_pred = _mask_loss_as_the_original(*case, scale=1.5)
        assert got.dtype == torch.float32
        assert torch.equal(got, want) and torch.equal(pred, want_pred)


def test_mask_loss_under_autocast_runs_bce_in_float32_outside_it(monkeypatch):
    calls = _refuse_bce_under_autocast(monkeypatch)
    proto, coef, gt, idx, boxes = _mask_case(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, pred = mask_loss(proto.bfloat16(), coef.bfloat16(), gt, idx, boxes)
    assert calls == [(torch.float32, torch.float32)]
    assert got.dtype == torch.float32 and pred.dtype == torch.float32 and torch.isfinite(got)
    # the same float32 arithmetic on the widened inputs
    want, _ = _mask_loss_as_the_original(proto.bfloat16().float(), coef.bfloat16().float(), gt, idx, boxes)
    assert torch.equal(got, want)


@pytest.mark.parametrize("preset,size", [("yolact_resnet18", 96),  # not 64: see test_amp_refuses_a_1x1_p6
                                         pytest.param("yolact_plus_resnet50", 256, marks=pytest.mark.slow)])
def test_full_loss_under_cpu_autocast_bf16(monkeypatch, preset, size):
    """Forward and backward of the whole criterion (YOLACT++: mask-IoU term, DCN) under bf16
    autocast: finite, float32 loss terms, and no BCE on probabilities inside autocast."""
    import yolact

    _refuse_bce_under_autocast(monkeypatch)
    cfg = get_config(preset, class_names=("a", "b")).replace(max_size=size, fpn_channels=32, discard_mask_area=0)
    torch.manual_seed(0)
    model = yolact.build(cfg).train()
    images = torch.randn(2, 3, size, size)
    boxes = torch.tensor([[0.125, 0.125, 0.625, 0.625], [0.15625, 0.3125, 0.78125, 0.9375]])
    masks = torch.zeros(2, size, size)
    for m, (x1, y1, x2, y2) in zip(masks, (boxes * size).long().tolist()):
        m[y1:y2, x1:x2] = 1
    targets = [{"boxes": boxes[i:i + 1], "labels": torch.tensor([i]), "masks": masks[i:i + 1], "num_crowds": 0}
               for i in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert losses["mask"].dtype == torch.float32
    if cfg.use_maskiou:
        assert "maskiou" in losses
    assert all(torch.isfinite(v) for v in losses.values()), losses
    losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
