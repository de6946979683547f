"""The YOLACT / YOLACT++ network (YOLACT paper, section 3; the original's yolact.py).

A pure network: ``Yolact.forward(images)`` maps normalised images [N, 3, S, S] (see
:class:`~yolact.model.transform.YolactTransform`) to ``HeadOutputs``. In training mode, passing
targets returns the loss terms of the criterion given at construction (torchvision's
convention; :func:`yolact.build` wires one). Pre- and post-processing, precision and
prediction live in :mod:`yolact.prediction.predictor`, which subclasses this network.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..config import YolactConfig
from ..ops.boxes import decode
from ..ops.priors import make_priors
from .backbones import build_backbone
from .fpn import FPN
from .heads import MaskIoUNet, PredictionHead, make_protonet


class HeadOutputs(NamedTuple):
    """The network's raw outputs for N images: P priors over every FPN level (P3 first), C
    foreground classes, K prototypes on a grid twice P3's size (138x138 for a 550 input)."""
    loc: torch.Tensor             # [N, P, 4] box regressions
    conf: torch.Tensor            # [N, P, C+1] class logits (training) or softmax scores (eval)
    coef: torch.Tensor            # [N, P, K] tanh mask coefficients
    proto: torch.Tensor           # [N, H, W, K] prototypes (after ReLU)
    priors: torch.Tensor          # [P, 4] (cx, cy, w, h) relative
    segm: Optional[torch.Tensor]  # [N, C, H3, W3] semantic logits (training only)


class Decoded(NamedTuple):
    """Head outputs ready for post-processing, all float32 (:func:`decode_heads`)."""
    boxes: torch.Tensor   # [N, P, 4] relative (x1, y1, x2, y2), may leave 0..1
    scores: torch.Tensor  # [N, P, C+1] softmax over background (first) and the C classes
    coef: torch.Tensor    # [N, P, K] tanh mask coefficients
    proto: torch.Tensor   # [N, H, W, K] prototypes


def decode_heads(out: HeadOutputs, priors: Optional[torch.Tensor] = None) -> Decoded:
    """The one decode of the network's raw outputs (``Yolact.forward_heads``, class logits):
    softmax over C+1 in the network's dtype, boxes from the regressions and ``priors`` (default
    ``out.priors``), everything in float32. The original's ``Yolact.forward`` softmax and
    ``layers/functions/detection.py`` ``decode``; the same arithmetic, so fp32 is bit-exact.
    Used by TorchPredictor, the exported graphs and the timing tools."""
    scores = _float32(torch.softmax(out.conf, -1))
    boxes = decode(_float32(out.loc), _float32(out.priors if priors is None else priors))
    return Decoded(boxes, scores, _float32(out.coef), _float32(out.proto))


def _float32(t: torch.Tensor) -> torch.Tensor:
    # a float32 tensor as it is: no Cast node in an exported fp32 graph
    return t if t.dtype == torch.float32 else t.float()


class Yolact(nn.Module):
    """The network. ``criterion``: the training loss module (``yolact.loss.YolactCriterion``), called
    by ``forward(images, targets)`` in training mode; None for a network that only infers.
    ``yolact.build`` passes one. It holds no weights, so the state dict is the same either way."""

    def __init__(self, cfg: YolactConfig, criterion: Optional[nn.Module] = None):
        super().__init__()
        self.cfg = cfg
        # The loss is given, not imported: the network does not depend on training code.
        self.criterion = criterion
        self.backbone = build_backbone(cfg.backbone, cfg.dcn_layers, cfg.dcn_interval, cfg.backbone_width)
        ch = cfg.fpn_channels
        self.fpn = FPN(self.backbone.channels[-3:], ch, cfg.num_downsample)
        self.proto_net = make_protonet(ch, ch, cfg.mask_dim)
        # One head shared by every level; a ModuleList keeps the official key names
        # (prediction_layers.0.*).
        self.prediction_layers = nn.ModuleList(
            [PredictionHead(ch, cfg.anchors_per_location, cfg.num_classes + 1, cfg.mask_dim)])
        self.semantic_seg_conv = nn.Conv2d(ch, cfg.num_classes, 1)
        self.maskiou_net = MaskIoUNet(cfg.num_classes, cfg.maskiou_channels) if cfg.use_maskiou else None
        self._prior_cache: Dict[Tuple, torch.Tensor] = {}

    # ------------------------------------------------------------------ properties
    @property
    def class_names(self) -> Tuple[str, ...]:
        """The C foreground class names, in label order (label i is ``class_names[i]``)."""
        return self.cfg.class_names

    @property
    def device(self) -> torch.device:
        """The device of the network's parameters."""
        return next(self.parameters()).device

    # ------------------------------------------------------------------ core
    def priors_for(self, level_sizes: Sequence[Tuple[int, int]], device: torch.device,
                   input_size: Optional[int] = None) -> torch.Tensor:
        """The priors for FPN level sizes [(h, w), ...] (P3 first) on ``device``: float32 [P, 4]
        relative (cx, cy, w, h), see :func:`~yolact.ops.priors.make_priors`. ``input_size``:
        the network input's side in pixels when it is not the trained ``cfg.max_size``: the
        anchors keep their size in pixels (the regressions were learnt against it), so their
        relative size is scale / input_size. Cached per (sizes, input size, device) as the
        original's ``make_priors`` caches them; the tensor is shared, never modify it in place."""
        size = input_size or self.cfg.max_size
        key = (tuple(level_sizes), size, str(device))
        if key not in self._prior_cache:
            cfg = self.cfg if size == self.cfg.max_size else self.cfg.replace(max_size=size)
            self._prior_cache[key] = make_priors(cfg, level_sizes).to(device)
        return self._prior_cache[key]

    def forward_heads(self, images: torch.Tensor) -> HeadOutputs:
        """Normalised images [N, 3, S, S] float -> :class:`HeadOutputs` with class logits (no
        softmax); ``segm`` only in training mode. Backbone, FPN, protonet and the shared
        prediction head, as the original's ``Yolact.forward`` before its softmax and ``Detect``."""
        feats = self.backbone(images)[-3:]
        pyramid = self.fpn(feats)
        proto = torch.relu(self.proto_net(pyramid[0])).permute(0, 2, 3, 1).contiguous()
        head = self.prediction_layers[0]
        locs, confs, coefs = [], [], []
        for p in pyramid:
            loc, conf, coef = head(p)
            locs.append(loc)
            confs.append(conf)
            coefs.append(coef)
        priors = self.priors_for([tuple(p.shape[-2:]) for p in pyramid], images.device, images.shape[-1])
        segm = self.semantic_seg_conv(pyramid[0]) if self.training else None
        return HeadOutputs(torch.cat(locs, 1), torch.cat(confs, 1), torch.cat(coefs, 1), proto, priors, segm)

    def forward(self, images: torch.Tensor, targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        """Eval mode: :meth:`forward_heads` with ``conf`` softmaxed over C+1 (background first).
        Training mode: the criterion's loss terms (dict of 0-dim tensors) for ``targets``, one dict
        per image (see :mod:`yolact.loss`). Raises ValueError in training mode without targets
        or without a criterion."""
        out = self.forward_heads(images)
        if self.training:
            if targets is None:
                raise ValueError("training mode needs targets (or call model.eval() for inference)")
            if self.criterion is None:
                raise ValueError("this model has no criterion: build it with yolact.build(...) to train it")
            return self.criterion(out, targets, self.maskiou_net)
        return out._replace(conf=torch.softmax(out.conf, -1))
