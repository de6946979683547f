"""Inference: BGR images -> network -> Fast NMS -> masks -> Results.

Pre- and post-processing follow the original implementation step for step so that the
official checkpoints give the same detections.
"""
from __future__ import annotations

import os
from typing import List, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MEANS_BGR, STD_BGR, YolactConfig
from ..data.images import read_image, to_bgr_uint8
from ..errors import YolactError
from ..ops.boxes import decode, sanitize_coordinates
from ..ops.masks import assemble_masks, upsample_masks, upsample_masks_in_boxes
from ..ops.nms import classic_nms, cross_class_fast_nms, fast_nms
from ..results import Results

ImageSource = Union[str, os.PathLike, np.ndarray]


def normalize_input(images: torch.Tensor, cfg: YolactConfig) -> torch.Tensor:
    """BGR float images [N, 3, S, S] (0..255) -> network input (normalised, RGB order)."""
    if cfg.normalize == "imagenet":
        mean = torch.tensor(MEANS_BGR, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(STD_BGR, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        images = (images - mean) / std
    else:
        images = images / 255
    return images[:, (2, 1, 0)].contiguous()


def resize_images(images: Sequence[np.ndarray], size: int, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 images -> float BGR [N, 3, size, size], 0..255 (bilinear,
    align_corners=False on the float image, as the original)."""
    batch = []
    for img in images:
        t = torch.from_numpy(img).to(device).float().permute(2, 0, 1)[None]
        batch.append(F.interpolate(t, (size, size), mode="bilinear", align_corners=False))
    return torch.cat(batch, 0)


def preprocess(images: Sequence[np.ndarray], cfg: YolactConfig, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 images -> [N, 3, S, S] float32 network input: resized to max_size
    square, normalised in BGR, then reordered to RGB (the original's FastBaseTransform)."""
    return normalize_input(resize_images(images, cfg.max_size, device), cfg)


def pixel_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Relative boxes -> pixel boxes, ordered, clamped and truncated to integers (as float)."""
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    return torch.stack([x1, y1, x2, y2], 1).long().float()


def detect(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, cfg: YolactConfig,
           nms: str = "fast"):
    """One image: decode boxes, then :func:`select_detections`."""
    return select_detections(decode(loc, priors), conf, cfg, nms)


def select_detections(boxes: torch.Tensor, conf: torch.Tensor, cfg: YolactConfig, nms: str = "fast"):
    """Decoded boxes [P, 4] and class scores [P, C+1]: drop priors whose best foreground score
    is <= nms_conf_thresh, then NMS.

    Returns (boxes [n, 4] relative, classes [n], scores [n], prior indices [n]).
    """
    scores = conf[:, 1:].t()
    best, _ = scores.max(dim=0)
    cand = (best > cfg.nms_conf_thresh).nonzero().squeeze(1)
    if cand.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return boxes[:0], empty, best[:0], empty
    boxes_c, scores_c = boxes[cand], scores[:, cand]
    if nms == "fast":
        idx, classes, kept = fast_nms(boxes_c, scores_c, cfg.nms_thresh, cfg.nms_top_k, cfg.max_num_detections)
    elif nms == "cross_class":
        idx, classes, kept = cross_class_fast_nms(boxes_c, scores_c, cfg.nms_thresh, cfg.nms_top_k,
                                                  cfg.max_num_detections)
    elif nms == "classic":
        idx, classes, kept = classic_nms(boxes_c, scores_c, cfg.nms_thresh, cfg.nms_conf_thresh,
                                         cfg.max_num_detections)
    else:
        raise ValueError(f"unknown nms '{nms}' (fast, cross_class, classic)")
    return boxes_c[idx], classes, kept, cand[idx]


def postprocess(model, out, index: int, height: int, width: int, score_threshold: float = 0.0,
                top_k: int = 100, nms: str = "fast", keep_proto: bool = False) -> Results:
    """Detections of image ``index`` of a batch of eval-mode head outputs, at image size."""
    cfg = model.cfg
    loc, conf, coef = out.loc[index].float(), out.conf[index].float(), out.coef[index].float()
    proto = out.proto[index].float()
    boxes, classes, scores, prior_idx = detect(loc, conf, out.priors.float(), cfg, nms)
    if score_threshold > 0:
        keep = scores > score_threshold
        boxes, classes, scores, prior_idx = boxes[keep], classes[keep], scores[keep], prior_idx[keep]
    boxes, classes, scores, prior_idx = boxes[:top_k], classes[:top_k], scores[:top_k], prior_idx[:top_k]
    coeffs = coef[prior_idx]
    soft = assemble_masks(proto, coeffs, boxes)
    mask_scores = scores
    if model.maskiou_net is not None and len(scores):
        pred_iou = model.maskiou_net(soft[:, None].to(next(model.maskiou_net.parameters()).dtype)).float()
        mask_scores = scores * pred_iou.gather(1, classes[:, None]).squeeze(1)
    if soft.shape[0] * height * width > 4_000_000:
        # Large outputs: evaluate the bilinear taps only inside each box (same result).
        masks = upsample_masks_in_boxes(soft, boxes, height, width)
    else:
        masks = upsample_masks(soft, height, width)
    abs_boxes = pixel_boxes(boxes, height, width)
    return Results(
        boxes=abs_boxes.cpu().numpy(), scores=mask_scores.cpu().numpy(), labels=classes.cpu().numpy(),
        masks=masks.cpu().numpy(), class_names=cfg.class_names, box_scores=scores.cpu().numpy(),
        image_shape=(height, width),
        proto=proto.cpu().numpy() if keep_proto else None,
        coeffs=coeffs.cpu().numpy() if keep_proto else None)


def load_sources(source) -> List[tuple]:
    """A path, array, or list of them -> [(bgr_uint8, path_or_None)]."""
    items = source if isinstance(source, (list, tuple)) else [source]
    loaded = []
    for i, s in enumerate(items):
        if isinstance(s, (str, os.PathLike)):
            loaded.append((read_image(s), str(s)))
        elif isinstance(s, np.ndarray):
            loaded.append((to_bgr_uint8(s, f"image {i}"), None))
        elif isinstance(s, torch.Tensor):
            loaded.append((to_bgr_uint8(s.cpu().numpy(), f"image {i}"), None))
        else:
            raise YolactError(f"image {i}: expected a path or a BGR uint8 array, got {type(s).__name__}")
    return loaded


def predict(model, source, score_threshold: float = 0.15, top_k: int = 100, nms: str = "fast",
            keep_image: bool = True, keep_proto: bool = False, stream: bool = False, batch_size: int = 4):
    """See :meth:`yolact.model.yolact.Yolact.predict`."""
    if stream:
        from .video import stream as stream_results
        return stream_results(model, source, batch_size=batch_size, score_threshold=score_threshold, top_k=top_k,
                              keep_image=keep_image, nms=nms, keep_proto=keep_proto)
    return _predict(model, source, score_threshold, top_k, nms, keep_image, keep_proto)


@torch.no_grad()
def _predict(model, source, score_threshold: float, top_k: int, nms: str, keep_image: bool, keep_proto: bool):
    single = not isinstance(source, (list, tuple))
    items = load_sources(source)
    if not items:
        return []
    was_training = model.training
    model.eval()
    try:
        x = preprocess([img for img, _ in items], model.cfg, model.device)
        x = x.to(_input_dtype(model))
        out = model(x)
        results = []
        for i, (img, path) in enumerate(items):
            r = postprocess(model, out, i, img.shape[0], img.shape[1], score_threshold, top_k, nms, keep_proto)
            r.path = path
            if keep_image:
                r.image = img
            results.append(r)
    finally:
        model.train(was_training)
    return results[0] if single else results


def _input_dtype(model) -> torch.dtype:
    return getattr(model, "input_dtype", torch.float32)
