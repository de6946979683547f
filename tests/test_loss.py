import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from yolact.config import get_config
from yolact.loss import YolactLoss, mask_loss, match, ohem_conf_loss, semantic_loss
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
    got = mask_loss(proto, coef, gt, torch.tensor([0]), box)
    total = 0.0
    for y in range(h):
        for x in range(w):
            if not (1 <= x < 7 and 1 <= y < 7):  # crop window: box padded by 1 px
                continue
            p = 1 / (1 + math.exp(-2.0 * proto[y, x, 0].item()))
            t = gt[0, y, x].item()
            total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    assert got.item() == pytest.approx(total / (4 * 4), rel=1e-9)


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
