"""YOLACT training losses (see YOLACT-FACTS.md, "Training").

Targets per image: ``boxes`` [N, 4] relative (x1, y1, x2, y2), ``labels`` [N] 0-based
foreground classes, ``masks`` [N, S, S] float in {0, 1} at input size, and ``num_crowds``:
the last ``num_crowds`` entries are crowd regions (only used to ignore priors).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .config import YolactConfig
from .ops.boxes import box_iou, center_size, encode, point_form
from .ops.masks import crop


class MatchResult(NamedTuple):
    """One image's priors matched to its GT boxes (the tensors the original's
    ``layers/box_utils.py: match`` fills in): P priors, boxes relative to the input image."""
    loc_t: torch.Tensor    # [P, 4] regression targets
    conf_t: torch.Tensor   # [P] 0 background, -1 ignored, c+1 foreground class c
    idx_t: torch.Tensor    # [P] index of the matched GT
    boxes_t: torch.Tensor  # [P, 4] matched GT box (point form)


@dataclass(frozen=True)
class LossOptions:
    """What a training recipe may change in the loss (the defaults are the original's, exactly).

    ``conf_loss``: ``"ohem"`` (softmax CE over positives and 3:1 hard negatives) or ``"focal"``
    (softmax focal loss, ``-(1 - p_t)^gamma log p_t`` summed over every non-ignored prior: the
    classifier still ends in a softmax, so inference is unchanged). ``pos_iou_thresh`` /
    ``neg_iou_thresh``: None takes the config's. ``center_topk``: > 0 adds, for each object, its
    k best-overlapping priors whose centres lie inside its box as positives (a centre prior,
    after ATSS/RTMDet), when their IoU is at least ``CENTER_MIN_IOU``. ``mask_weight``
    multiplies the mask term. ``mask_target``: ``"binary"`` (the original's: the GT mask
    bilinearly resized to the prototype grid, then > 0.5) or ``"soft"`` (each prototype cell's
    covered fraction of the GT mask in 0..1, :func:`mask_coverage`): binary targets quantise every
    edge to the grid (at 192 px only 34% of the synthetic set's objects can reach a mask IoU of
    0.9 through a binary 48 x 48 grid, 89% through a soft one; BENCHMARKS.md "Training
    recipes"). ``mask_dice`` > 0 adds a Dice term of that weight to each mask's (see
    :func:`mask_loss`)."""
    conf_loss: str = "ohem"
    focal_gamma: float = 2.0
    pos_iou_thresh: Optional[float] = None
    neg_iou_thresh: Optional[float] = None
    center_topk: int = 0
    mask_weight: float = 1.0
    mask_target: str = "binary"
    mask_dice: float = 0.0

    def __post_init__(self):
        if self.conf_loss not in ("ohem", "focal"):
            raise ValueError(f"conf_loss '{self.conf_loss}': expected ohem or focal")
        if self.mask_target not in ("binary", "soft"):
            raise ValueError(f"mask_target '{self.mask_target}': expected binary or soft")
        if not self.mask_dice >= 0:
            raise ValueError(f"mask_dice {self.mask_dice}: expected 0 or more")
        for name in ("pos_iou_thresh", "neg_iou_thresh"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} {value}: expected an IoU in 0..1")
        if None not in (self.pos_iou_thresh, self.neg_iou_thresh) and self.neg_iou_thresh > self.pos_iou_thresh:
            raise ValueError(f"neg_iou_thresh {self.neg_iou_thresh} above pos_iou_thresh {self.pos_iou_thresh}: "
                             "a prior would be both background and positive")
        if not (self.center_topk >= 0 and self.mask_weight >= 0 and self.focal_gamma >= 0):
            raise ValueError(f"center_topk {self.center_topk}, mask_weight {self.mask_weight}, focal_gamma "
                             f"{self.focal_gamma}: expected 0 or more")


# A centre-prior positive still needs this much overlap with its object.
CENTER_MIN_IOU = 0.1


def center_prior(overlaps: torch.Tensor, truths: torch.Tensor, priors: torch.Tensor, k: int) -> torch.Tensor:
    """[N, P] bool: for each GT (rows of ``overlaps`` [N, P]), its ``k`` highest-IoU priors whose
    centres (``priors`` [P, 4] cx, cy, w, h) lie inside its box (``truths`` [N, 4] x1, y1, x2, y2)
    and whose IoU is at least ``CENTER_MIN_IOU``."""
    cx, cy = priors[:, 0], priors[:, 1]
    inside = ((cx[None] > truths[:, 0:1]) & (cx[None] < truths[:, 2:3]) &
              (cy[None] > truths[:, 1:2]) & (cy[None] < truths[:, 3:4]))
    scores = torch.where(inside & (overlaps >= CENTER_MIN_IOU), overlaps, overlaps.new_full((), -1.0))
    top = scores.topk(min(k, scores.shape[1]), dim=1)
    chosen = torch.zeros_like(inside)
    chosen.scatter_(1, top.indices, top.values >= 0)
    return chosen


def match(truths: torch.Tensor, labels: torch.Tensor, priors: torch.Tensor, pos_thresh: float,
          neg_thresh: float, crowd_boxes: Optional[torch.Tensor] = None, crowd_thresh: float = 0.7,
          center_topk: int = 0) -> MatchResult:
    """SSD matching: IoU >= pos positive, < neg background, in between ignored; every GT keeps
    its best prior (taken greedily, highest overlap first); priors overlapping a crowd by more
    than ``crowd_thresh`` are ignored unless positive. ``center_topk`` > 0: the priors
    :func:`center_prior` picks for a GT and that are not positive already become positives of
    that GT (of the one it overlaps most where several GTs picked it, as ATSS assigns)."""
    decoded = point_form(priors)
    overlaps = box_iou(truths, decoded)
    if center_topk > 0:
        picked = center_prior(overlaps, truths, priors, center_topk)
        picked_overlap, picked_truth = torch.where(picked, overlaps, overlaps.new_full((), -1.0)).max(0)
    best_truth_overlap, best_truth_idx = overlaps.max(0)
    for _ in range(overlaps.shape[0]):
        best_prior_overlap, best_prior_idx = overlaps.max(1)
        j = best_prior_overlap.argmax()
        i = best_prior_idx[j]
        overlaps[:, i] = -1
        overlaps[j, :] = -1
        best_truth_overlap[i] = 2
        best_truth_idx[i] = j
    if center_topk > 0:
        extra = (picked_overlap >= 0) & (best_truth_overlap < pos_thresh)
        best_truth_idx = torch.where(extra, picked_truth, best_truth_idx)
    boxes_t = truths[best_truth_idx]
    conf = labels[best_truth_idx] + 1
    conf[best_truth_overlap < pos_thresh] = -1
    conf[best_truth_overlap < neg_thresh] = 0
    if center_topk > 0:
        conf[extra] = labels[best_truth_idx[extra]] + 1
    if crowd_boxes is not None and crowd_boxes.numel() and crowd_thresh < 1:
        crowd_overlap = box_iou(decoded, crowd_boxes, iscrowd=True).max(1).values
        conf[(conf <= 0) & (crowd_overlap > crowd_thresh)] = -1
    return MatchResult(encode(boxes_t, priors), conf, best_truth_idx, boxes_t)


def ohem_conf_loss(conf: torch.Tensor, conf_t: torch.Tensor, negpos_ratio: int = 3) -> torch.Tensor:
    """Softmax CE over positives plus the hardest negatives (by background loss), 3:1, summed.

    conf [B, P, C+1] logits; conf_t [B, P] with -1 for ignored priors.

    The original takes ``negpos_ratio`` x the image's positives, so an image without objects
    would add nothing. Such an image (a background image, which the original never trains on)
    takes as many hard negatives as an average image with objects in the same batch
    (``negpos_ratio`` x their mean positive count), or ``negpos_ratio`` when no image of the
    batch has any: it still teaches the classifier what is not an object. Batches in which
    every image has a positive are computed exactly as the original.
    """
    b, p, c = conf.shape
    pos = conf_t > 0
    with torch.no_grad():
        bg_loss = (torch.logsumexp(conf, -1) - conf[..., 0])
        bg_loss[pos] = 0
        bg_loss[conf_t < 0] = 0
        _, loss_idx = bg_loss.sort(1, descending=True)
        _, idx_rank = loss_idx.sort(1)
        num_pos = pos.long().sum(1, keepdim=True)
        empty = num_pos == 0
        if bool(empty.any()):
            typical = num_pos[~empty].float().mean().round().long() if bool((~empty).any()) else num_pos.new_ones(())
            num_pos = torch.where(empty, typical.clamp(min=1), num_pos)
        num_neg = torch.clamp(negpos_ratio * num_pos, max=p - 1)
        neg = idx_rank < num_neg
        neg[pos] = False
        neg[conf_t < 0] = False
    sel = pos | neg
    return F.cross_entropy(conf[sel], conf_t[sel], reduction="sum")


def focal_conf_loss(conf: torch.Tensor, conf_t: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Softmax focal loss ``-(1 - p_t)^gamma log p_t`` over every prior not ignored, summed.

    conf [B, P, C+1] logits; conf_t [B, P] (-1 ignored, 0 background, c+1 class c). Unlike OHEM
    every negative takes part, weighted down as it gets easy: the scores of background priors
    are pushed down everywhere, which calibrates them (fewer detections above 0.05)."""
    keep = conf_t >= 0
    logits, target = conf[keep], conf_t[keep]
    logp = F.log_softmax(logits.float(), -1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - logp.exp()).pow(gamma) * logp).sum()


def _widened(t: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> float32; any other tensor as it is (no copy)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _coverage_matrix(n_in: int, n_out: int, device) -> torch.Tensor:
    """[n_out, n_in] float32: the share of output cell i (spanning n_in / n_out input pixels)
    that input pixel j covers; rows sum to 1."""
    edges = torch.arange(n_out + 1, dtype=torch.float64, device=device) * (n_in / n_out)
    px = torch.arange(n_in, dtype=torch.float64, device=device)
    overlap = (torch.minimum(edges[1:, None], px + 1) - torch.maximum(edges[:-1, None], px)).clamp(min=0)
    return (overlap * (n_out / n_in)).float()


def mask_coverage(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Masks [N, H, W] in 0..1 -> [N, height, width] float32: the fraction of each output cell
    that the mask covers, exact for any size ratio (an area average; ``F.interpolate(mode="area")``
    is the same only when H and W are multiples of the output size). In float32 whatever the
    autocast state: these are training targets."""
    n, h_in, w_in = masks.shape
    with torch.autocast(masks.device.type, enabled=False):
        rows = _coverage_matrix(h_in, height, masks.device)
        cols = _coverage_matrix(w_in, width, masks.device)
        return torch.einsum("ph,nhw,qw->npq", rows, masks.float(), cols)


def mask_loss(proto: torch.Tensor, coef: torch.Tensor, gt_masks: torch.Tensor, idx_t: torch.Tensor,
              boxes_t: torch.Tensor, scale: float = 1.0, dice: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """BCE of the box-cropped sigmoid(P C^T) against GT masks at proto size (not cropped;
    binarised as the original, or fractions in 0..1 under ``LossOptions(mask_target="soft")``),
    normalised by the GT box area in proto pixels; summed over masks and times
    ``scale`` (the original's positives / masks_to_train when a subset was drawn). ``dice`` > 0
    adds ``dice x (1 - (2 sum(p t) + 1) / (sum(p^2) + sum(t^2) + 1))`` to each mask's term (the
    Dice loss of V-Net and SOLO, smoothed by 1, on the same cropped prediction): a term on the
    overlap itself, weighted in the total as the BCE (x mask_alpha x the recipe's mask_weight).

    proto [H, W, K]; coef [n, K] of the positives; gt_masks [N, H, W] at proto size, in 0..1;
    idx_t [n] GT index of each positive; boxes_t [n, 4] its box. Also returns the cropped
    predicted masks [H, W, n], which YOLACT++'s mask-IoU term takes with their gradient.
    Computed outside autocast, fp16/bf16 inputs (AMP) widened to float32: the loss and the
    returned masks are float32 (float64 for float64 inputs).
    """
    h, w, _ = proto.shape
    # In float32 with autocast off: CUDA autocast refuses binary_cross_entropy ("unsafe to
    # autocast"), and fp16 sigmoids saturate to exactly 0 or 1. Under mixed precision the
    # prototypes and coefficients arrive in fp16/bf16 and are widened here; fp32 (and fp64)
    # tensors are used as they are, so the arithmetic is the original's, bit for bit.
    with torch.autocast(proto.device.type, enabled=False):
        pred = crop(torch.sigmoid(_widened(proto) @ _widened(coef).t()), _widened(boxes_t))  # [H, W, n]
        target = _widened(gt_masks[idx_t].permute(1, 2, 0))
        if not bool(torch.isfinite(pred).all()):
            # binary_cross_entropy refuses NaN: hand a NaN loss to the trainer's guard instead.
            return pred.sum() * float("nan"), pred
        # As the original: BCE on probabilities (PyTorch clamps each log at -100), so a GT pixel
        # outside the padded box costs 100 and a saturated prediction gets no gradient.
        pre = F.binary_cross_entropy(pred.clamp(0, 1), target, reduction="none")
        wh = center_size(_widened(boxes_t))[:, 2:]
        # The original's "emulate ROI pooling" normalisation: sum / box area (proto px) * H * W;
        # the final mask_alpha / (H * W) then cancels the H * W.
        per_mask = pre.sum(dim=(0, 1)) / (wh[:, 0] * w) / (wh[:, 1] * h)
        if dice:
            overlap = 2 * (pred * target).sum(dim=(0, 1))
            per_mask = per_mask + dice * (1 - (overlap + 1) / ((pred * pred).sum(dim=(0, 1)) +
                                                                (target * target).sum(dim=(0, 1)) + 1))
        return (per_mask * scale).sum(), pred


def semantic_loss(segm: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sigmoid BCE per class against the union of that class's GT masks at P3 size, / area."""
    c, h, w = segm.shape
    with torch.no_grad():
        target = torch.zeros_like(segm)
        if masks.shape[0]:
            down = F.interpolate(masks[None], (h, w), mode="bilinear", align_corners=False)[0].gt(0.5).float()
            for m, lab in zip(down, labels):
                target[lab] = torch.maximum(target[lab], m)
    return F.binary_cross_entropy_with_logits(segm, target, reduction="sum") / (h * w)


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks [H, W, n] pairwise along n."""
    inter = (pred * gt).sum(dim=(0, 1))
    union = pred.sum(dim=(0, 1)) + gt.sum(dim=(0, 1)) - inter
    return inter / union.clamp(min=1e-6)


class MaskIoUSample(NamedTuple):
    """What the mask-IoU term needs of one image's trained masks."""
    pred: torch.Tensor    # [H, W, n] cropped soft predicted masks (with their gradient)
    gt: torch.Tensor      # [H, W, n] binarised GT masks at proto size
    labels: torch.Tensor  # [n] their classes


class ImageTargets(NamedTuple):
    """One image's targets after matching (the crowd regions taken out).

    ``conf_t`` [P]: 0 background, -1 ignored, c+1 foreground class c. For an image without
    objects every prior is background (or ignored inside a crowd region) and ``match`` is None.
    """
    conf_t: torch.Tensor
    match: Optional[MatchResult]
    labels: torch.Tensor   # [N] 0-based classes of the non-crowd objects
    masks: torch.Tensor    # [N, S, S] their masks at input size, float {0, 1}


class YolactCriterion(nn.Module):
    """The YOLACT / YOLACT++ training loss, one method per term (DETR's ``SetCriterion`` style).

    Built once and called with the network's training outputs::

        criterion = YolactCriterion(cfg)
        losses = criterion(model.forward_heads(images), targets, model.maskiou_net)

    ``generator``: the ``torch.Generator`` that draws the ``masks_to_train`` subset of a crowded
    image; None (the default) draws from PyTorch's global RNG, exactly as the original, so a
    ``torch.manual_seed`` before the call reproduces the original's draws bit for bit.

    The criterion has no parameters or buffers: as a submodule of the model it adds nothing to
    the state dict. The YOLACT++ re-scoring net is an argument of ``forward`` (it belongs to the
    network), so this module never imports the model.

    Images without objects (background images) are allowed: their box and mask terms are 0, the
    semantic target is empty, and the confidence term takes their hardest negatives (see
    :func:`ohem_conf_loss`).
    """

    def __init__(self, cfg: YolactConfig, generator: Optional[torch.Generator] = None,
                 options: Optional[LossOptions] = None):
        super().__init__()
        self.cfg = cfg
        self.generator = generator
        self.options = options or LossOptions()

    # ------------------------------------------------------------------ matching
    def match_image(self, target: Dict[str, torch.Tensor], priors: torch.Tensor) -> ImageTargets:
        """Split off the crowd regions (the last ``num_crowds`` entries) and match the priors."""
        cfg = self.cfg
        n_crowd = int(target.get("num_crowds", 0))
        boxes, labels, masks = target["boxes"], target["labels"].long(), target["masks"]
        crowd = boxes[boxes.shape[0] - n_crowd:] if n_crowd else None
        if n_crowd:
            boxes, labels, masks = boxes[:-n_crowd], labels[:-n_crowd], masks[:-n_crowd]
        if boxes.shape[0] == 0:  # a background image: every prior is a negative
            conf_t = torch.zeros(priors.shape[0], dtype=torch.long, device=priors.device)
            if crowd is not None and cfg.crowd_iou_thresh < 1:
                overlap = box_iou(point_form(priors), crowd, iscrowd=True).max(1).values
                conf_t[overlap > cfg.crowd_iou_thresh] = -1
            return ImageTargets(conf_t, None, labels, masks)
        o = self.options
        pos = cfg.pos_iou_thresh if o.pos_iou_thresh is None else o.pos_iou_thresh
        neg = cfg.neg_iou_thresh if o.neg_iou_thresh is None else o.neg_iou_thresh
        m = match(boxes, labels, priors, pos, neg, crowd, cfg.crowd_iou_thresh, o.center_topk)
        return ImageTargets(m.conf_t, m, labels, masks)

    def match_batch(self, priors: torch.Tensor, targets: List[Dict[str, torch.Tensor]]) -> List[ImageTargets]:
        """:meth:`match_image` for each image's target dict; ``priors`` [P, 4] relative (cx, cy,
        w, h). The original's per-image loop at the top of ``MultiBoxLoss.forward``."""
        return [self.match_image(t, priors) for t in targets]

    @staticmethod
    def num_positives(conf_t: torch.Tensor) -> torch.Tensor:
        """The normaliser: positives in the batch (at least 1). Under DDP, the global count
        divided by the world size, so that DDP's gradient average equals the single-process loss."""
        num_pos = (conf_t > 0).sum().float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_pos)
            num_pos = num_pos / dist.get_world_size()
        return num_pos.clamp(min=1)

    # ------------------------------------------------------------------ terms (unweighted sums)
    def loss_boxes(self, loc: torch.Tensor, matched: List[ImageTargets]) -> torch.Tensor:
        """Smooth L1 of the positives' regressions against their encoded GT boxes, summed."""
        total = loc.new_zeros(())
        for b, t in enumerate(matched):
            if t.match is not None:
                pos = t.conf_t > 0
                total = total + F.smooth_l1_loss(loc[b][pos], t.match.loc_t[pos], reduction="sum")
        return total

    def loss_conf(self, conf: torch.Tensor, matched: List[ImageTargets]) -> torch.Tensor:
        """Softmax cross-entropy over positives and OHEM negatives (or the focal loss over every
        prior, see :class:`LossOptions`), summed."""
        if self.options.conf_loss == "focal":
            return focal_conf_loss(conf, torch.stack([t.conf_t for t in matched]), self.options.focal_gamma)
        return ohem_conf_loss(conf, torch.stack([t.conf_t for t in matched]), self.cfg.ohem_negpos_ratio)

    def loss_semantic(self, segm: torch.Tensor, matched: List[ImageTargets]) -> torch.Tensor:
        """Per-class sigmoid BCE at P3 size, summed over images (an empty image: all-zero target)."""
        total = segm.new_zeros(())
        for b, t in enumerate(matched):
            total = total + semantic_loss(segm[b], t.masks, t.labels)
        return total

    def loss_masks(self, proto: torch.Tensor, coef: torch.Tensor, matched: List[ImageTargets],
                   keep_for_maskiou: bool = False) -> Tuple[torch.Tensor, List[MaskIoUSample]]:
        """Cropped mask BCE of the positives (a random subset of ``masks_to_train`` when an image
        has more, that image's term scaled back up), summed. With ``keep_for_maskiou``, also
        returns what the mask-IoU term needs of each image's predicted masks."""
        cfg = self.cfg
        ph, pw = proto.shape[1:3]
        total = proto.new_zeros(())
        samples: List[MaskIoUSample] = []
        for b, t in enumerate(matched):
            if t.match is None:
                continue
            pos_idx = (t.conf_t > 0).nonzero().squeeze(1)
            if pos_idx.numel() == 0:
                continue
            scale = 1.0
            if pos_idx.numel() > cfg.masks_to_train:
                scale = pos_idx.numel() / cfg.masks_to_train
                perm = torch.randperm(pos_idx.numel(), generator=self.generator)[: cfg.masks_to_train]
                pos_idx = pos_idx[perm.to(pos_idx.device)]
            with torch.no_grad():
                # binary: the original's target; the mask-IoU term takes it under either target
                binary = self.options.mask_target == "binary"
                gt_small = F.interpolate(t.masks[None], (ph, pw), mode="bilinear", align_corners=False)[0].gt(0.5).float() \
                    if binary or keep_for_maskiou else None
                target = gt_small if binary else mask_coverage(t.masks, ph, pw)  # soft: each cell's covered fraction
            idx_t, boxes_t = t.match.idx_t[pos_idx], t.match.boxes_t[pos_idx]
            loss_b, pred = mask_loss(proto[b], coef[b][pos_idx], target, idx_t, boxes_t, scale,
                                     self.options.mask_dice)
            total = total + loss_b
            if keep_for_maskiou:
                samples.append(MaskIoUSample(pred, gt_small[idx_t].permute(1, 2, 0), t.labels[idx_t]))
        return total, samples

    def loss_maskiou(self, maskiou_net: nn.Module, samples: List[MaskIoUSample]) -> torch.Tensor:
        """YOLACT++: smooth L1 between the re-scoring net's output for the GT class and the IoU of
        the binarised prediction with the GT, summed; GT masks of at most ``discard_mask_area``
        proto pixels are left out. The net sees the cropped soft masks with their gradient (as
        the original) unless ``cfg.maskiou_detach_input``."""
        cfg = self.cfg
        inputs, iou_t, labels = [], [], []
        for s in samples:
            keep = s.gt.sum(dim=(0, 1)) > cfg.discard_mask_area
            if keep.any():
                net_in = s.pred.detach() if cfg.maskiou_detach_input else s.pred
                inputs.append(net_in.permute(2, 0, 1)[keep][:, None])
                with torch.no_grad():
                    iou_t.append(mask_iou(s.pred.gt(0.5).float(), s.gt)[keep])
                labels.append(s.labels[keep])
        if not inputs:  # keep the net in the graph so DDP sees a gradient for every parameter
            return sum(p.sum() * 0 for p in maskiou_net.parameters())
        pred_iou = maskiou_net(torch.cat(inputs)).gather(1, torch.cat(labels)[:, None]).squeeze(1)
        return F.smooth_l1_loss(pred_iou, torch.cat(iou_t), reduction="sum")

    # ------------------------------------------------------------------ all terms
    def forward(self, out, targets: List[Dict[str, torch.Tensor]],
                maskiou_net: Optional[nn.Module] = None) -> Dict[str, torch.Tensor]:
        """``out``: the network's training outputs (``HeadOutputs``: loc [B, P, 4], conf logits
        [B, P, C+1], coef [B, P, K], proto [B, H, W, K], priors [P, 4], segm [B, C, H3, W3] or None);
        ``targets``: one dict per image (see the module docstring); ``maskiou_net``: the YOLACT++
        re-scoring net, or None for no mask-IoU term.

        Returns 0-dim tensors: 'box', 'conf', 'mask' (x alpha / positives), 'semantic'
        (x alpha / batch size, when segm is given), 'maskiou' (YOLACT++), and their sum 'total'.
        """
        cfg = self.cfg
        loc, conf, coef, proto, priors, segm = out
        matched = self.match_batch(priors, targets)
        loss_box = self.loss_boxes(loc, matched)
        loss_sem = self.loss_semantic(segm, matched) if segm is not None else None
        loss_mask, iou_samples = self.loss_masks(proto, coef, matched, keep_for_maskiou=maskiou_net is not None)
        num_pos = self.num_positives(torch.stack([t.conf_t for t in matched]))
        losses = {
            "box": loss_box * cfg.bbox_alpha / num_pos,
            "conf": self.loss_conf(conf, matched) * cfg.conf_alpha / num_pos,
            "mask": loss_mask * cfg.mask_alpha / num_pos,
        }
        if self.options.mask_weight != 1.0:
            losses["mask"] = losses["mask"] * self.options.mask_weight
        if loss_sem is not None:
            losses["semantic"] = loss_sem * cfg.semantic_alpha / loc.shape[0]
        if maskiou_net is not None:
            losses["maskiou"] = self.loss_maskiou(maskiou_net, iou_samples) * cfg.maskiou_alpha / num_pos
        losses["total"] = sum(losses.values())
        return losses
