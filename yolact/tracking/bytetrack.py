"""ByteTrack (Zhang et al., 2022), as implemented here from the paper's description:

1. every track's box is predicted by a constant-velocity Kalman filter;
2. high-score detections are matched first to tracked and lost tracks (Hungarian on IoU);
3. low-score detections are matched to the tracks still unmatched (occluded objects often
   score low);
4. a new track waits one frame for confirmation (except on the first frame); unmatched
   tracks are kept as lost for ``track_buffer`` frames, then removed.

By default an identity never changes class (class-gated association); ``class_aware=False``
associates across classes and lets a track take the class of its newest detection.
Subclasses change what is compared through :meth:`ByteTracker._overlap` and
:meth:`ByteTracker._small_masks` (see :mod:`yolact.tracking.mask`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..results import Results
from .base import BaseTracker, Track
from .matching import assign, box_iou, class_gate


class ByteTracker(BaseTracker):
    """ByteTrack's two-stage association on Kalman-predicted boxes (thresholds in TrackerConfig)."""

    def _small_masks(self, res: Results) -> Optional[np.ndarray]:
        """The detections' masks as the tracks keep them, or None: ByteTrack keeps none."""
        return None

    def _overlap(self, tracks: Sequence[Track], boxes: np.ndarray, masks: Optional[np.ndarray]) -> np.ndarray:
        """Tracks x detections overlap [T, D] in 0..1: IoU of the predicted boxes with ``boxes``
        (``masks``, the detections' small masks or None, is for subclasses)."""
        return box_iou(np.array([t.kf.box for t in tracks]).reshape(-1, 4), boxes)

    def _similarity(self, tracks: Sequence[Track], boxes: np.ndarray, labels: np.ndarray,
                    scores: Optional[np.ndarray], masks: Optional[np.ndarray]) -> np.ndarray:
        """:meth:`_overlap`, times the detection scores when given, zero across classes when class-aware."""
        sim = self._overlap(tracks, boxes, masks)
        if scores is not None:
            sim = sim * scores[None, :]
        if self.cfg.class_aware:
            sim = class_gate(sim, np.array([t.label for t in tracks]), labels)
        return sim

    def _associate(self, res: Results) -> np.ndarray:
        cfg = self.cfg
        boxes = res.boxes.astype(np.float64).reshape(-1, 4)
        scores, labels = res.box_scores.astype(np.float64), res.labels.astype(np.int64)
        small = self._small_masks(res)
        owner = np.full(len(res), -1, np.int64)  # detection -> track id

        def pick(a: Optional[np.ndarray], idx: np.ndarray) -> Optional[np.ndarray]:
            return a[idx] if a is not None else None

        def take(track: Track, d: int) -> None:
            track.update(boxes[d], int(labels[d]), float(scores[d]), self.frame, pick(small, d))
            owner[d] = track.id

        for t in self.tracks:  # removed tracks were dropped at the end of the last update
            t.predict()
        pool = [t for t in self.tracks if t.confirmed]    # tracked and lost
        unconfirmed = [t for t in self.tracks if not t.confirmed]
        high = np.nonzero(scores >= cfg.high_score)[0]
        low = np.nonzero((scores >= cfg.low_score) & (scores < cfg.high_score))[0]
        fused = scores if cfg.fuse_score else None

        # 1. high-score detections against every confirmed track (box IoU, + masks for MaskTracker)
        sim = self._similarity(pool, boxes[high], labels[high], pick(fused, high), pick(small, high))
        matches, left_tracks, left_high = assign(sim, cfg.match_iou)
        for i, j in matches:
            take(pool[i], int(high[j]))
        # 2. low-score detections against the tracks that were tracked until now (box IoU)
        remaining = [pool[i] for i in left_tracks if pool[i].state == Track.TRACKED]
        sim = self._similarity(remaining, boxes[low], labels[low], None, None)
        matches, left2, _ = assign(sim, cfg.low_match_iou)
        for i, j in matches:
            take(remaining[i], int(low[j]))
        for i in left2:
            remaining[i].state = Track.LOST
        # 3. last frame's new tracks against the high-score detections still free
        free = high[left_high]
        sim = self._similarity(unconfirmed, boxes[free], labels[free], pick(fused, free), pick(small, free))
        matches, left_new, left_free = assign(sim, cfg.unconfirmed_match_iou)
        for i, j in matches:
            take(unconfirmed[i], int(free[j]))
        for i in left_new:
            unconfirmed[i].state = Track.REMOVED
        # 4. births: confirmed at once on the first frame, else after one more match
        for j in left_free:
            d = int(free[j])
            if scores[d] >= cfg.new_track_score:
                t = self._new_track(boxes[d], int(labels[d]), float(scores[d]), pick(small, d),
                                    confirmed=self.frame == 1)
                if t.confirmed:
                    owner[d] = t.id
        self._expire()
        return owner

    def _expire(self) -> None:
        """5. deaths: lost longer than ``track_buffer`` frames; removed tracks are dropped."""
        for t in self.tracks:
            if t.state == Track.LOST and self.frame - t.last_frame > self.cfg.track_buffer:
                t.state = Track.REMOVED
        self.tracks = [t for t in self.tracks if t.state != Track.REMOVED]
