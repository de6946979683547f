"""CVAT auto-annotation function for ``cvat-sdk`` (``pip install yolact[cvat]``).

    cvat-cli task auto-annotate TASK --function-module yolact.integrations.cvat \\
        -p weights=str:yolact_base_54_800000.pth -p conf=float:0.5
    cvat-cli function create-native "YOLACT" --function-module yolact.integrations.cvat -p weights=str:...

CVAT calls :func:`create` with the ``-p`` parameters, reads ``spec`` (one mask label per model
class, named as the model's classes, id = the 0-based class index) and calls ``detect(context,
image)`` per frame. Masks are CVAT's own encoding (``cvat_sdk.masks.encode_mask``, a bitmap RLE
plus its box in pixels, inclusive right/bottom); polygons (``context.conv_mask_to_poly``) are
the outer outline of each part, in pixels. ``context.conf_threshold`` (0..1, None = the model's
default, as ``predict --conf``) drops detections whose class score is below it.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

try:
    import cvat_sdk.auto_annotation as cvataa
    from cvat_sdk.masks import encode_mask
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("yolact.integrations.cvat needs cvat-sdk: pip install 'yolact[cvat]'") from e


class YolactFunction:
    """A CVAT detection function around a loaded predictor (``yolact.load(...)``).

    ``conf``: the score threshold used when CVAT gives none (default: the predictor's own).
    """

    def __init__(self, predictor, conf: Optional[float] = None):
        self.predictor = predictor
        self.conf = conf
        names = tuple(predictor.class_names)
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(name, i, type="mask") for i, name in enumerate(names)])

    def _predict(self, rgb: np.ndarray, conf: Optional[float]):
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        # the same threshold as ``yolact predict --conf``: the class score
        return self.predictor.predict(bgr) if conf is None else self.predictor.predict(bgr, conf=conf)

    def detect(self, context, image) -> List:
        """``image``: a PIL image (RGB). -> CVAT shapes: ``cvataa.mask`` per detection, or
        ``cvataa.polygon`` per part when ``context.conv_mask_to_poly`` is set."""
        rgb = np.asarray(image.convert("RGB"))
        conf = getattr(context, "conf_threshold", None)
        res = self._predict(rgb, self.conf if conf is None else conf)
        return shapes_from_results(res, polygons=bool(getattr(context, "conv_mask_to_poly", False)))


def mask_shape(label_id: int, mask: np.ndarray):
    """``cvataa.mask`` for a bool [H, W] mask, encoded by CVAT's own encoder."""
    return cvataa.mask(label_id, encode_mask(np.asarray(mask, bool)))


def shapes_from_results(res, polygons: bool = False) -> List:
    """CVAT shapes for :class:`yolact.Results`: one mask per detection (empty masks skipped), or
    one polygon per outer outline (flattened x, y pixel pairs) when ``polygons``."""
    shapes = []
    crops = res.mask_crops
    for i in range(len(res)):
        label = int(res.labels[i])
        if polygons:
            outer, _ = crops.outlines(i)
            for c in outer:
                if len(c) >= 3:
                    shapes.append(cvataa.polygon(label, [float(v) for v in np.asarray(c, float).reshape(-1)]))
        else:
            full = np.zeros(res.image_shape, bool)
            crops.paste(i, full)
            if full.any():
                shapes.append(mask_shape(label, full))
    return shapes


def create(weights: str = "yolact_base_54_800000.pth", conf: Optional[float] = None, device: str = "cpu",
           config: Optional[str] = None) -> YolactFunction:
    """The entry point ``cvat-cli`` calls with ``-p name=type:value`` parameters. Raises
    YolactError (one line naming the file) when the weights cannot be loaded."""
    from ..deploy import load_predictor as load

    return YolactFunction(load(weights, config=config, device=device), conf=conf)


def serverless_results(fn: YolactFunction, rgb: np.ndarray, threshold: Optional[float] = None) -> List[dict]:
    """The body CVAT's serverless (Nuclio) detector functions return: one dict per detection with
    ``label`` (class name), ``confidence`` (the mask score, as a string, as CVAT's examples
    send it), ``type`` 'mask', ``points`` (the outer outline, flattened x, y pixels) and
    ``mask`` (CVAT's mask RLE with its inclusive box, the same encoding as ``encode_mask``).
    ``rgb``: uint8 [H, W, 3]; ``threshold``: the minimum class score (None = the function's)."""
    res = fn._predict(rgb, fn.conf if threshold is None else threshold)
    out, crops = [], res.mask_crops
    for i in range(len(res)):
        full = np.zeros(res.image_shape, bool)
        crops.paste(i, full)
        if not full.any():
            continue
        outer, _ = crops.outlines(i)
        points = max(outer, key=len).astype(float).reshape(-1).tolist() if outer else []
        out.append({"label": res.class_names[int(res.labels[i])], "confidence": str(float(res.scores[i])),
                    "type": "mask", "points": points, "mask": encode_mask(full)})
    return out
