"""Post-processing: the network's per-prior outputs of one image -> detections (DETR's PostProcess).

The only implementation of the steps between the heads and the Results, used by eager PyTorch,
the exported ONNX graph (it traces), OpenVINO and the server. In the original's order
(``layers/functions/detection.py`` and ``layers/output_utils.py``):

1. candidates: priors whose best foreground score > ``cfg.nms_conf_thresh`` (0.05);
2. NMS: per-class Fast NMS (default), class-agnostic Fast NMS, or classic greedy NMS;
3. score threshold and top-k;
4. masks: sigmoid(prototypes x coefficients), cropped to the box;
5. mask scores: YOLACT++ re-weights the class scores by the mask-IoU net's predicted IoU of
   each mask; models trained with ``--recipe fast`` by each mask's maskness (SOLOv2);
6. back to the image (:meth:`PostProcess.to_image`): integer pixel boxes, masks upsampled.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from ..config import YolactConfig
from ..ops.masks import assemble_masks, upsample_masks
from ..ops.nms import classic_nms, cross_class_fast_nms, fast_nms, fast_nms_keep
from .transform import YolactTransform

NMS_KINDS = ("fast", "cross_class", "classic")


class Detections(NamedTuple):
    """One image's detections in descending class score, on the model's grid (or, after
    :meth:`PostProcess.to_image`, in image pixels)."""
    boxes: torch.Tensor       # [D, 4] float32 x1, y1, x2, y2: relative (0..1), or integer pixels
    scores: torch.Tensor      # [D] float32 mask scores (YOLACT++: class score x predicted IoU)
    classes: torch.Tensor     # [D] int64, 0-based foreground class
    box_scores: torch.Tensor  # [D] float32 class scores
    masks: torch.Tensor       # [D, h, w] float32 soft masks on the prototype grid, or bool [D, H, W]
    coeffs: torch.Tensor      # [D, K] float32 mask coefficients
    proto: Optional[torch.Tensor] = None  # [h, w, K] the image's prototypes, when asked for
    valid: Optional[torch.Tensor] = None  # [D] bool: fixed-size detections (forward_static) that count

    def compact(self) -> "Detections":
        """Fixed-size detections (:meth:`PostProcess.forward_static`) -> only the valid ones
        (a boolean index: one host synchronisation, so do it after the copy to the host)."""
        if self.valid is None:
            return self
        keep = self.valid
        return Detections(*(t[keep] for t in self[:5]), self.coeffs[keep], self.proto, None)


def maskness(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Each soft mask's maskness [D] (float32, 0..1): the mean soft value of its pixels above
    ``threshold``; for a mask with none, its largest value (below ``threshold``). ``masks``
    [D, h, w] in 0..1. SOLOv2 (Wang et al., NeurIPS 2020, section 3.3 "inference") multiplies it
    into the class score, so that a mask the network is unsure of ranks below a crisp one of the
    same class score.

    SOLOv2 gives a mask with no pixel above the threshold 0 (and drops it); here that mask is
    still upsampled to the image, where bicubic overshoot can lift pixels above 0.5, so a 0
    would hand a visible mask a score of 0. Its largest value keeps it below every mask that
    has pixels above the threshold on the grid, in the order of how close it came."""
    flat = masks.flatten(1)
    inside = (flat > threshold).to(masks.dtype)
    count = inside.sum(1)
    mean_inside = (flat * inside).sum(1) / count.clamp(min=1)
    # arithmetic, not torch.where: the same graph in every export format
    return mean_inside + (count == 0).to(masks.dtype) * flat.amax(1)


class PostProcess(nn.Module):
    """Detections from one image's decoded head outputs.

    ``nms``: 'fast' (the paper's per-class Fast NMS), 'cross_class' (class-agnostic Fast NMS)
    or 'classic' (per-class greedy). ``iou_threshold``: None keeps ``cfg.nms_thresh`` (0.5, the
    original's). ``maskiou_net``: the YOLACT++ re-scoring net (shared with the network, not
    copied), None for YOLACT. ``max_det``: detections to keep when above the preset's cap
    (see :meth:`caps`). Raises ValueError for an unknown ``nms``.
    """

    def __init__(self, cfg: YolactConfig, maskiou_net: Optional[nn.Module] = None, nms: str = "fast",
                 iou_threshold: Optional[float] = None, max_det: Optional[int] = None):
        super().__init__()
        if nms not in NMS_KINDS:
            raise ValueError(f"unknown nms '{nms}' ({', '.join(NMS_KINDS)})")
        self.cfg = self.caps(cfg, max_det)
        self.nms = nms
        self.iou_threshold = cfg.nms_thresh if iou_threshold is None else float(iou_threshold)
        # Held in a list so that the module does not register (and export) the net a second time.
        self._maskiou = [maskiou_net]

    @staticmethod
    def caps(cfg: YolactConfig, max_det: Optional[int]) -> YolactConfig:
        """``cfg`` with its detection caps raised to keep ``max_det`` detections: the preset's
        ``max_num_detections`` (100 in every official config) to ``max_det``, and the per-class
        candidates ``nms_top_k`` (200) to at least ``max_det``, so that one class can fill it.
        At or below the preset's cap ``cfg`` itself is returned (the original's numbers)."""
        if max_det is None or max_det <= cfg.max_num_detections:
            return cfg
        return cfg.replace(max_num_detections=int(max_det), nms_top_k=max(cfg.nms_top_k, int(max_det)))

    @staticmethod
    def graph_caps(cfg: YolactConfig, max_det: Optional[int]) -> YolactConfig:
        """The caps of an exported graph with a fixed K = ``max_det`` rows: raised as
        :meth:`caps`, or lowered to ``max_det`` below the preset's cap (detections leave in
        descending score, so K rows are the first K of the default run's)."""
        if max_det is not None and max_det < cfg.max_num_detections:
            return cfg.replace(max_num_detections=int(max_det))
        return PostProcess.caps(cfg, max_det)

    @property
    def maskiou_net(self) -> Optional[nn.Module]:
        """The YOLACT++ re-scoring net (:class:`~yolact.model.heads.MaskIoUNet`), or None for YOLACT."""
        return self._maskiou[0]

    def select(self, boxes: torch.Tensor, scores: torch.Tensor):
        """Candidates and NMS. ``boxes`` [P, 4] relative point form, ``scores`` [P, C+1]
        softmax (background first). Returns (boxes [n, 4], classes [n], scores [n], prior
        indices [n]) in descending score, at most ``cfg.max_num_detections``."""
        cfg = self.cfg
        fg = scores[:, 1:].t()
        best = fg.max(dim=0).values
        cand = torch.nonzero(best > cfg.nms_conf_thresh).squeeze(1)
        boxes_c, fg_c = boxes[cand], fg[:, cand]
        if self.nms == "fast":
            idx, classes, kept = fast_nms(boxes_c, fg_c, self.iou_threshold, cfg.nms_top_k, cfg.max_num_detections)
        elif self.nms == "cross_class":
            idx, classes, kept = cross_class_fast_nms(boxes_c, fg_c, self.iou_threshold, cfg.nms_top_k,
                                                      cfg.max_num_detections)
        else:
            idx, classes, kept = classic_nms(boxes_c, fg_c, self.iou_threshold, cfg.nms_conf_thresh,
                                             cfg.max_num_detections)
        return boxes_c[idx], classes, kept, cand[idx]

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor, coeffs: torch.Tensor, proto: torch.Tensor,
                score_threshold: float = 0.0, top_k: int = 100,
                classes: Optional[Sequence[int]] = None) -> Detections:
        """One image. ``boxes`` [P, 4] decoded relative boxes, ``scores`` [P, C+1] softmax,
        ``coeffs`` [P, K], ``proto`` [h, w, K]; float32. ``score_threshold``: keep class scores
        above it (0 keeps all). ``top_k``: at most this many. ``classes``: 0-based class ids to
        keep (None: all), chosen after NMS: exactly the detections of those classes that the
        unfiltered run gives (per-class NMS never lets one class suppress another), on every
        backend, post-processing graphs included.
        """
        det_boxes, det_classes, det_scores, prior_idx = self.select(boxes, scores)
        if score_threshold > 0 or top_k < self.cfg.max_num_detections or classes is not None:
            keep = self.limit(det_scores, det_classes, score_threshold, top_k, classes)
            det_boxes, det_classes, det_scores, prior_idx = (det_boxes[keep], det_classes[keep], det_scores[keep],
                                                             prior_idx[keep])
        det_coeffs = coeffs[prior_idx]
        masks = assemble_masks(proto, det_coeffs, det_boxes)
        return Detections(det_boxes, self.rescore(masks, det_scores, det_classes), det_classes, det_scores,
                          masks, det_coeffs)

    def forward_static(self, boxes: torch.Tensor, scores: torch.Tensor, coeffs: torch.Tensor, proto: torch.Tensor,
                       score_threshold: float = 0.0, top_k: int = 100,
                       classes: Optional[Sequence[int]] = None) -> Detections:
        """:meth:`forward` with fixed shapes and no host synchronisation (for GPUs and CUDA
        graphs): always ``cfg.max_num_detections`` detections, with ``valid`` [D] marking those
        that count. Instead of selecting the candidates (a data-dependent size), non-candidates
        sink to score -1 and are masked out after the per-class Fast NMS; the NMS itself is the
        same rule (:func:`~yolact.ops.nms.fast_nms_keep`), so ``compact()`` gives the detections
        of :meth:`forward` (per-class Fast NMS only; ties in score may come in another order)."""
        cfg = self.cfg
        if self.nms != "fast":
            raise ValueError("forward_static runs the per-class Fast NMS only")
        fg = scores[:, 1:].t()  # [C, P]
        candidate = fg.max(dim=0).values > cfg.nms_conf_thresh
        fg = torch.where(candidate, fg, fg.new_full((), -1.0))
        num_classes, k = fg.shape[0], min(cfg.nms_top_k, fg.shape[1])
        top, idx = fg.topk(k, dim=1)  # [C, k], descending
        keep = fast_nms_keep(boxes[idx.reshape(-1)].reshape(-1, k, 4), self.iou_threshold) & (top >= 0)
        flat = torch.where(keep, top, top.new_full((), -1.0)).reshape(-1)
        det_scores, order = flat.topk(min(cfg.max_num_detections, flat.numel()))
        valid = det_scores >= 0
        if score_threshold > 0:
            valid = valid & (det_scores > score_threshold)
        det_classes = torch.div(order, k, rounding_mode="floor")
        if classes is not None:
            valid = valid & torch.isin(det_classes, torch.as_tensor(list(classes), dtype=det_classes.dtype,
                                                                   device=det_classes.device))
        # the first top_k valid ones; not in place: coremltools has no converter for aten::__iand__
        valid = valid & (torch.cumsum(valid, 0) <= top_k)
        prior_idx = idx.reshape(-1)[order]
        det_boxes, det_coeffs = boxes[prior_idx], coeffs[prior_idx]
        masks = assemble_masks(proto, det_coeffs, det_boxes)
        return Detections(det_boxes, self.rescore(masks, det_scores, det_classes), det_classes, det_scores, masks,
                          det_coeffs, None, valid)

    @staticmethod
    def limit(scores: torch.Tensor, classes: torch.Tensor, score_threshold: float = 0.0, top_k: int = 100,
              keep_classes: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Indices [n] (int64) of the detections to keep, in their (descending score) order:
        class score above ``score_threshold`` (0 keeps all), class in ``keep_classes`` (None:
        any), then the first ``top_k``. The one rule for every backend and for the server's
        per-request settings."""
        keep = scores > score_threshold if score_threshold > 0 else torch.ones_like(scores, dtype=torch.bool)
        if keep_classes is not None:
            keep &= torch.isin(classes, torch.as_tensor(list(keep_classes), dtype=classes.dtype,
                                                        device=classes.device))
        return torch.nonzero(keep).squeeze(1)[:top_k]

    def rescore(self, masks: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The mask scores [D] of soft masks [D, h, w] (cropped, on the prototype grid) with class
        scores [D]: YOLACT++ (paper section 4.2) multiplies them by the mask-IoU net's predicted
        IoU of each mask for its class; ``cfg.mask_score='maskness'`` (the ``fast`` recipe's
        models) by each mask's maskness (:func:`maskness`); with both, by both. Otherwise the class
        scores."""
        net = self.maskiou_net
        if self.cfg.mask_score == "maskness":
            scores = scores * maskness(masks)
        if net is None:
            return scores
        if not torch.jit.is_tracing() and masks.shape[0] == 0:
            return scores
        dtype = next(net.parameters()).dtype
        pred_iou = net(masks[:, None].to(dtype)).float()
        return scores * pred_iou.gather(1, classes[:, None]).squeeze(1)

    @staticmethod
    def to_image(det: Detections, height: int, width: int, crops: bool = False,
                 interpolation: str = "bilinear") -> Detections:
        """Detections on the model grid -> image pixels: integer boxes clamped to the image, and
        masks upsampled to ``height`` x ``width`` (``interpolation``: the model's
        ``cfg.mask_interpolation``, 'bilinear' as the original or 'bicubic') and thresholded at
        0.5 (bool tensor [N, height, width], or with ``crops`` a
        :class:`~yolact.results.MaskCrops` holding only each mask's own pixels). Fixed-size
        detections (``valid`` set: the GPU path) use the one-kernel full upsampling, which needs
        no host sync."""
        if det.valid is not None:
            masks = upsample_masks(det.masks, height, width, mode=interpolation)
        else:
            masks = YolactTransform.masks_to_image(det.masks, det.boxes, height, width, crops, interpolation)
        return det._replace(boxes=YolactTransform.boxes_to_image(det.boxes, height, width), masks=masks)
