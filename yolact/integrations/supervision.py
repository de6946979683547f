"""supervision -> yolact (``pip install 'yolact[supervision]'``; the other way is
:meth:`yolact.Results.to_supervision`).

:func:`from_supervision` turns an ``sv.Detections`` with masks (another model's, a tracker's, a
dataset's from ``sv.DetectionDataset``) into :class:`yolact.Results`, so yolact's writers
(``save_txt``, ``to_labelme``, ``to_records``/COCO, plots, the video sinks) work on it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import YolactError
from ..results import Results


def from_supervision(detections, class_names: Optional[Sequence[str]] = None,
                     image_shape: Optional[Tuple[int, int]] = None) -> Results:
    """``sv.Detections`` -> :class:`Results`. ``detections.mask`` [N, H, W] bool is required
    (YolactError without it, unless N = 0 and ``image_shape`` (H, W) is given); ``xyxy`` [N, 4]
    pixels become ``boxes`` (float32), ``confidence`` the scores (1.0 when None), ``class_id`` the
    0-based ``labels`` (0 when None), ``tracker_id`` the ``track_ids``. ``class_names``: the
    names by class id; default: from ``data["class_name"]`` where given, else ``str(id)``.
    Raises YolactError when a class id has no name in ``class_names``."""
    n = len(detections)
    mask = detections.mask
    if mask is None:
        if n or image_shape is None:
            raise YolactError("from_supervision: the detections have no masks (an instance-segmentation "
                              "Results needs them)")
        mask = np.zeros((0, *image_shape), bool)
    mask = np.asarray(mask, bool)
    if image_shape is not None and tuple(mask.shape[1:]) != tuple(image_shape):
        raise YolactError(f"from_supervision: masks are {mask.shape[1:]}, image_shape is {tuple(image_shape)}")
    labels = np.zeros(n, np.int64) if detections.class_id is None else np.asarray(detections.class_id, np.int64)
    if class_names is None:
        given = (detections.data or {}).get("class_name")
        top = int(labels.max()) + 1 if n else 0
        names = [str(k) for k in range(top)]
        if given is not None:
            for k, name in zip(labels.tolist(), list(given)):
                names[k] = str(name)
        class_names = names
    class_names = tuple(class_names)
    if n and int(labels.max()) >= len(class_names):
        raise YolactError(f"from_supervision: class id {int(labels.max())} has no name "
                          f"({len(class_names)} class names)")
    scores = (np.ones(n, np.float32) if detections.confidence is None
              else np.asarray(detections.confidence, np.float32))
    track_ids = None if detections.tracker_id is None else np.asarray(detections.tracker_id, np.int64)
    return Results(np.asarray(detections.xyxy, np.float32).reshape(n, 4), scores, labels, mask, class_names,
                   scores.copy(), tuple(int(v) for v in mask.shape[1:]), track_ids=track_ids)
