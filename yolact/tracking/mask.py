"""The 'mask' tracker: ByteTrack with mask IoU blended into the first and the confirming
associations.

Each track keeps the mask of its last matched frame; before comparing, that mask is warped by
the box motion (scaled and moved from the box it had then to the Kalman prediction), so a
moving object is compared with itself where it should now be. Masks are compared at
1/``mask_scale`` resolution; the similarity is (1 - ``mask_weight``) box IoU + ``mask_weight``
mask IoU. The low-score association stays on boxes, as ByteTrack's.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ..results import Results
from .base import Track
from .bytetrack import ByteTracker
from .matching import mask_iou


def warped_mask(track: Track, scale: int) -> np.ndarray:
    """``track``'s last mask (uint8 [h, w], at 1/``scale`` of the image) moved and scaled from the
    box it had then to the predicted box; nearest-neighbour, same shape."""
    ob, nb = track.mask_box / scale, track.kf.box / scale
    sx = (nb[2] - nb[0]) / max(ob[2] - ob[0], 1e-3)
    sy = (nb[3] - nb[1]) / max(ob[3] - ob[1], 1e-3)
    m = np.float32([[sx, 0, nb[0] - sx * ob[0]], [0, sy, nb[1] - sy * ob[1]]])
    h, w = track.mask.shape
    return cv2.warpAffine(track.mask, m, (w, h), flags=cv2.INTER_NEAREST)


class MaskTracker(ByteTracker):
    """ByteTracker whose high-score and confirming associations also compare masks."""

    def _small_masks(self, res: Results) -> Optional[np.ndarray]:
        """The detections' masks at 1/``mask_scale`` (= masks[:, ::s, ::s], built from the crops)."""
        return res.mask_crops.strided(self.cfg.mask_scale) if len(res) else None

    def _overlap(self, tracks: Sequence[Track], boxes: np.ndarray, masks: Optional[np.ndarray]) -> np.ndarray:
        """Box IoU blended with the IoU of each track's warped mask and ``masks`` (when given)."""
        sim = super()._overlap(tracks, boxes, masks)
        if masks is not None and len(tracks) and len(boxes):
            warped = np.stack([warped_mask(t, self.cfg.mask_scale) for t in tracks])
            sim = (1 - self.cfg.mask_weight) * sim + self.cfg.mask_weight * mask_iou(warped, masks)
        return sim
