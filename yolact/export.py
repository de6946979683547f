"""ONNX export and an ONNX Runtime model with the same ``predict`` API.

Two graphs:

* core (default): input ``images`` float32 [N, 3, S, S], BGR, 0..255, already resized to
  S x S. Outputs ``boxes`` [N, P, 4] (relative x1, y1, x2, y2), ``scores`` [N, P, C+1]
  (softmax, background first), ``coefs`` [N, P, K], ``proto`` [N, Hp, Wp, K].
* ``include_postprocess=True`` (batch 1): the same input, and the graph also runs the
  candidate threshold, per-class Fast NMS and mask assembly. Outputs ``det_boxes`` [D, 4]
  relative, ``det_scores`` [D] (for YOLACT++: re-scored mask scores), ``det_classes`` [D]
  (0-based), ``det_box_scores`` [D] (class scores) and ``det_masks`` [D, Hp, Wp] soft masks,
  cropped to their boxes; upsample bilinearly to the image size and threshold at 0.5.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from .config import YolactConfig
from .errors import YolactError
from .ops.boxes import box_iou, decode
from .ops.masks import crop


class ExportCore(nn.Module):
    """Normalisation + network + box decoding, as one tensor-in/tensors-out module."""

    def __init__(self, model, size: int):
        super().__init__()
        self.model = model
        with torch.no_grad():
            probe = model.forward_heads(torch.zeros(1, 3, size, size, dtype=next(model.parameters()).dtype))
        self.register_buffer("priors", probe.priors.float().clone())

    def heads(self, images: torch.Tensor):
        from .engine.predict import normalize_input

        out = self.model.forward_heads(normalize_input(images, self.model.cfg))
        return decode(out.loc, self.priors), torch.softmax(out.conf, -1), out.coef, out.proto

    def forward(self, images: torch.Tensor):
        return self.heads(images)


class ExportWithPost(ExportCore):
    """Adds threshold, per-class Fast NMS and mask assembly (batch 1) to the graph."""

    def forward(self, images: torch.Tensor):
        boxes, conf, coef, proto = self.heads(images)
        cfg: YolactConfig = self.model.cfg
        boxes, conf, coef, proto = boxes[0], conf[0], coef[0], proto[0]
        scores = conf[:, 1:].t()
        best = scores.max(dim=0).values
        cand = torch.nonzero(best > cfg.nms_conf_thresh).squeeze(1)
        boxes_c, scores_c, coef_c = boxes[cand], scores[:, cand], coef[cand]
        n = scores_c.shape[1]
        k = torch.clamp(torch.tensor(cfg.nms_top_k), max=n) if torch.jit.is_tracing() else min(cfg.nms_top_k, n)
        top_scores, idx = torch.topk(scores_c, k, dim=1)  # sorted descending
        c, d = idx.shape
        cand_boxes = boxes_c[idx.reshape(-1)].reshape(c, d, 4)
        iou = box_iou(cand_boxes, cand_boxes)
        upper = torch.ones(d, d, device=iou.device).triu(1)
        iou_max = (iou * upper).max(dim=1).values
        keep = iou_max <= cfg.nms_thresh
        classes = torch.arange(c, device=boxes.device).unsqueeze(1).expand(c, d)[keep]
        kept_idx = idx[keep]
        kept_scores = top_scores[keep]
        m = torch.clamp(torch.tensor(cfg.max_num_detections), max=kept_scores.shape[0]) if torch.jit.is_tracing() \
            else min(cfg.max_num_detections, kept_scores.shape[0])
        det_scores, order = torch.topk(kept_scores, m)
        det_classes = classes[order]
        det_idx = kept_idx[order]
        det_boxes = boxes_c[det_idx]
        masks = torch.sigmoid(proto @ coef_c[det_idx].t())
        masks = crop(masks, det_boxes).permute(2, 0, 1)
        mask_scores = det_scores
        if self.model.maskiou_net is not None:
            pred = self.model.maskiou_net(masks.unsqueeze(1))
            mask_scores = det_scores * pred.gather(1, det_classes.unsqueeze(1)).squeeze(1)
        return det_boxes, mask_scores, det_classes, det_scores, masks


def export_onnx(model, path: Union[str, os.PathLike], img_size: Optional[int] = None, dynamic_batch: bool = False,
                include_postprocess: bool = False, opset: int = 17) -> Path:
    """Write an ONNX file (see the module docstring for its inputs and outputs)."""
    model = model.eval().float()
    size = img_size or model.cfg.max_size
    if size != model.cfg.max_size:
        model.cfg = model.cfg.with_input_size(size)
        model._prior_cache.clear()
    if include_postprocess and dynamic_batch:
        raise YolactError("--include-postprocess exports a batch-1 graph; drop --dynamic-batch")
    if model.cfg.use_maskiou and not include_postprocess:
        warnings.warn("YOLACT++ core graph: the mask re-scoring net needs the assembled masks, so its scores "
                      "are the class scores; export with --include-postprocess for re-scored masks", stacklevel=2)
    wrapper = (ExportWithPost if include_postprocess else ExportCore)(model, size).eval()
    dummy = torch.zeros(1, 3, size, size)
    dummy[:, :, size // 4: size // 2, size // 4: size // 2] = 200  # some structure for tracing
    if include_postprocess:
        names = ["det_boxes", "det_scores", "det_classes", "det_box_scores", "det_masks"]
        dynamic = {n: {0: "detections"} for n in names}
    else:
        names = ["boxes", "scores", "coefs", "proto"]
        dynamic = {n: {0: "batch"} for n in ["images"] + names} if dynamic_batch else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (dummy,), str(path), input_names=["images"], output_names=names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    meta = {"yolact_config": model.cfg.to_dict(), "include_postprocess": include_postprocess}
    import json
    import onnx
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "yolact", json.dumps(meta)
    onnx.save(proto, str(path))
    return path


def calibration_images(source: Optional[str], images_dir: Optional[str], count: int, size: int,
                       progress: bool = True) -> List[np.ndarray]:
    """``count`` preprocessed inputs [1, 3, S, S] (BGR 0..255, resized as predict does) from a
    folder of images, a COCO file (with ``images_dir``), or, without a source, the synthetic
    shapes generator."""
    import torch
    from tqdm import tqdm

    from .data.images import IMAGE_EXTENSIONS, read_image
    from .engine.predict import resize_images

    if source is None:
        from .data.synth import make_image
        rng = np.random.default_rng(0)
        imgs = (make_image(rng, size, size)[0] for _ in range(count))
        total = count
    else:
        p = Path(source)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)[:count]
        elif p.suffix.lower() == ".json":
            from .data.coco import read_coco_json
            if not images_dir:
                raise YolactError(f"{p}: a COCO calibration file needs its image folder (--calib-images)")
            files = [Path(images_dir) / im["file_name"] for im in read_coco_json(p)["images"]][:count]
        else:
            raise YolactError(f"{p}: --calib takes a folder of images or a COCO .json")
        if not files:
            raise YolactError(f"{p}: no calibration images found")
        imgs = (read_image(f) for f in files)
        total = len(files)
    out = []
    for img in tqdm(imgs, total=total, desc="calibration", unit="img", disable=not progress):
        out.append(resize_images([img], size, torch.device("cpu")).numpy())
    return out


def quantize_onnx(src: Union[str, os.PathLike], dst: Union[str, os.PathLike], calibration: list) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) with ONNX Runtime."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.it = iter([{"images": b} for b in batches])

        def get_next(self):
            return next(self.it, None)

    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a warning per conv bias
    try:
        quantize_static(str(src), str(dst), Reader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)
    import onnx
    s, d = onnx.load(str(src)), onnx.load(str(dst))
    for p in s.metadata_props:
        e = d.metadata_props.add()
        e.key, e.value = p.key, p.value
    onnx.save(d, str(dst))
    return Path(dst)


class GraphModel:
    """An exported graph (core or with post-processing) behind ``predict`` like :class:`Yolact`.
    Subclasses run the graph: :meth:`run_each` maps preprocessed [1, 3, S, S] inputs to their
    outputs (lists of arrays, batch axis dropped)."""

    cfg: YolactConfig
    include_postprocess: bool
    maskiou_net = None

    @property
    def class_names(self):
        return self.cfg.class_names

    def run_each(self, images: np.ndarray) -> list:
        raise NotImplementedError

    def _per_image(self, outs: list) -> list:
        """One batch-1 run's outputs without the batch axis (the post-processing graph has none)."""
        return outs if self.include_postprocess else [o[0] for o in outs]

    def predict(self, source, score_threshold: float = 0.15, top_k: int = 100, keep_image: bool = True, **_):
        from .engine.predict import load_sources, pixel_boxes, resize_images
        from .ops.masks import upsample_masks
        from .results import Results

        single = not isinstance(source, (list, tuple))
        items = load_sources(source)
        x = resize_images([img for img, _ in items], self.cfg.max_size, torch.device("cpu")).numpy()
        outs = self.run_each(x)
        results = []
        for (img, path), out in zip(items, outs):
            h, w = img.shape[:2]
            if self.include_postprocess:
                boxes, scores, classes, box_scores, soft = (torch.from_numpy(np.asarray(o)) for o in out)
            else:
                boxes, scores, classes, box_scores, soft = self._post(*(torch.from_numpy(np.asarray(o)) for o in out))
            keep = box_scores > score_threshold if score_threshold > 0 else torch.ones_like(box_scores, dtype=torch.bool)
            boxes, scores, classes, box_scores, soft = (t[keep][:top_k] for t in (boxes, scores, classes, box_scores, soft))
            results.append(Results(pixel_boxes(boxes, h, w).numpy(), scores.float().numpy(), classes.long().numpy(),
                                   upsample_masks(soft.float(), h, w).numpy(), self.cfg.class_names,
                                   box_scores.float().numpy(), (h, w), image=img if keep_image else None, path=path))
        return results[0] if single else results

    def _post(self, boxes, conf, coef, proto):
        """Core-graph outputs of one image (boxes already decoded) -> detections, as predict."""
        from .engine.predict import select_detections
        from .ops.masks import assemble_masks

        det_boxes, classes, scores, prior_idx = select_detections(boxes, conf, self.cfg)
        soft = assemble_masks(proto, coef[prior_idx], det_boxes)
        return det_boxes, scores, classes, scores, soft


class OnnxModel(GraphModel):
    """An exported graph run by ONNX Runtime, with ``predict`` like :class:`Yolact`."""

    def __init__(self, path, config=None, providers=None):
        import json

        import onnxruntime as ort

        p = Path(path)
        if not p.exists():
            raise YolactError(f"{p}: no such ONNX file")
        try:
            self.session = ort.InferenceSession(str(p), providers=providers or ort.get_available_providers())
        except Exception as e:
            raise YolactError(f"{p}: not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get("yolact")
        if meta is None:
            raise YolactError(f"{p}: no yolact metadata; export it with `yolact export`")
        meta = json.loads(meta)
        self.cfg = YolactConfig.from_dict(meta["yolact_config"])
        self.include_postprocess = meta["include_postprocess"]
        self.path = p

    def run(self, images: np.ndarray):
        return self.session.run(None, {"images": images.astype(np.float32)})

    def run_each(self, images: np.ndarray) -> list:
        if self.include_postprocess or self.session.get_inputs()[0].shape[0] == 1:  # a batch-1 graph
            return [self._per_image(self.run(images[i:i + 1])) for i in range(len(images))]
        full = self.run(images)
        return [[o[i] for o in full] for i in range(len(images))]
