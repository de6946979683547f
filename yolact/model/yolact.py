"""The YOLACT / YOLACT++ network.

``Yolact.forward(images)`` is a plain tensor-in/tensors-out core (what export traces):
normalised images [N, 3, S, S] -> ``HeadOutputs``. In training mode, passing targets returns
the loss terms instead (torchvision's convention). ``Yolact.predict`` runs the whole pipeline
from BGR images to per-image :class:`~yolact.results.Results`.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..config import YolactConfig
from ..ops.priors import make_priors
from .backbones import build_backbone
from .fpn import FPN
from .heads import MaskIoUNet, PredictionHead, make_protonet


class HeadOutputs(NamedTuple):
    loc: torch.Tensor             # [N, P, 4] box regressions
    conf: torch.Tensor            # [N, P, C+1] class logits (training) or softmax scores (eval)
    coef: torch.Tensor            # [N, P, K] tanh mask coefficients
    proto: torch.Tensor           # [N, H, W, K] prototypes (after ReLU)
    priors: torch.Tensor          # [P, 4] (cx, cy, w, h) relative
    segm: Optional[torch.Tensor]  # [N, C, H3, W3] semantic logits (training only)


class Yolact(nn.Module):
    """The network. ``criterion``: the training loss module (``yolact.loss.YolactCriterion``), called
    by ``forward(images, targets)`` in training mode; None for a network that only infers.
    ``yolact.build`` passes one. It holds no weights, so the state dict is the same either way."""

    def __init__(self, cfg: YolactConfig, criterion: Optional[nn.Module] = None):
        super().__init__()
        self.cfg = cfg
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
        return self.cfg.class_names

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ core
    def priors_for(self, level_sizes: Sequence[Tuple[int, int]], device: torch.device) -> torch.Tensor:
        key = (tuple(level_sizes), str(device))
        if key not in self._prior_cache:
            self._prior_cache[key] = make_priors(self.cfg, level_sizes).to(device)
        return self._prior_cache[key]

    def forward_heads(self, images: torch.Tensor) -> HeadOutputs:
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
        priors = self.priors_for([tuple(p.shape[-2:]) for p in pyramid], images.device)
        segm = self.semantic_seg_conv(pyramid[0]) if self.training else None
        return HeadOutputs(torch.cat(locs, 1), torch.cat(confs, 1), torch.cat(coefs, 1), proto, priors, segm)

    def forward(self, images: torch.Tensor, targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        out = self.forward_heads(images)
        if self.training:
            if targets is None:
                raise ValueError("training mode needs targets (or call model.eval() for inference)")
            if self.criterion is None:
                raise ValueError("this Yolact was built without a criterion, so it cannot return losses: "
                                 "build it with yolact.build(cfg) or Yolact(cfg, criterion=YolactCriterion(cfg))")
            return self.criterion(out, targets, self.maskiou_net)
        return out._replace(conf=torch.softmax(out.conf, -1))

    # ------------------------------------------------------------------ convenience
    @torch.no_grad()
    def predict(self, source, score_threshold: float = 0.15, top_k: int = 100, **kwargs):
        """Segment images: a path, a BGR uint8 array, or a list of them (one batched forward).

        Returns one :class:`~yolact.results.Results` for a single image, a list for a list.
        ``stream=True`` returns a generator of Results, one frame at a time, for a video file,
        a webcam index, a folder of frames, an image or a list (``batch_size`` frames per
        forward pass; decoding and inference run in threads; memory stays flat).
        """
        from ..engine.predict import predict
        return predict(self, source, score_threshold=score_threshold, top_k=top_k, **kwargs)

    def track(self, source, tracker: str = "bytetrack", persist: bool = False, **kwargs):
        """Track instances through a video, webcam, folder of frames or list of frames: a
        generator of per-frame Results with ``track_ids``. ``tracker``: 'bytetrack', 'mask'
        (adds mask IoU to the association) or 'iou' (a naive baseline); ``persist=True`` keeps
        the tracks between calls (e.g. one frame per call). See :func:`yolact.engine.track.track`.
        """
        from ..engine.track import track
        return track(self, source, tracker=tracker, persist=persist, **kwargs)
