"""The naive baseline: match each detection to the previous frame's boxes by IoU. No motion
model, no second chance, no memory (an unmatched track ends at once); every match is reported
at once (no confirmation). A yardstick for the other trackers, not a tracker to use."""
from __future__ import annotations

import numpy as np

from ..results import Results
from .base import BaseTracker, Track
from .matching import assign, box_iou, class_gate

MATCH_IOU = 0.3  # least IoU with the previous box


class IouTracker(BaseTracker):
    """Previous-frame box IoU only, on the detections at or above ``high_score``."""

    @property
    def min_score(self) -> float:
        """The lowest detection score the tracker uses: ``high_score`` (there is no low-score pass)."""
        return self.cfg.high_score

    def _associate(self, res: Results) -> np.ndarray:
        cfg = self.cfg
        boxes = res.boxes.astype(np.float64).reshape(-1, 4)
        keep = np.nonzero(res.box_scores >= cfg.high_score)[0]
        labels = res.labels.astype(np.int64)
        sim = box_iou(np.array([t.mask_box for t in self.tracks]).reshape(-1, 4), boxes[keep])
        if cfg.class_aware:
            sim = class_gate(sim, np.array([t.label for t in self.tracks]), labels[keep])
        matches, _, left = assign(sim, MATCH_IOU)
        owner = np.full(len(res), -1, np.int64)
        survivors = []
        for i, j in matches:
            t, d = self.tracks[i], int(keep[j])
            t.mask_box, t.label, t.last_frame = boxes[d].copy(), int(labels[d]), self.frame
            t.trail.append(((boxes[d][0] + boxes[d][2]) / 2, (boxes[d][1] + boxes[d][3]) / 2))
            owner[d] = t.id
            survivors.append(t)
        for j in left:
            d = int(keep[j])
            t = Track(self.next_id, boxes[d], int(labels[d]), float(res.box_scores[d]), self.frame, True, None,
                      cfg.trail)
            self.next_id += 1
            owner[d] = t.id
            survivors.append(t)
        self.tracks = survivors
        return owner
