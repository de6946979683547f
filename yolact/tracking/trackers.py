"""Multi-object tracking on YOLACT detections: ByteTrack-style association, a 'mask' mode that
also compares masks, and a naive IoU baseline.

ByteTrack (Zhang et al., 2022) in brief, as implemented here from the paper's description:
1. every track's box is predicted by a constant-velocity Kalman filter;
2. high-score detections are matched first to tracked and lost tracks (Hungarian on IoU);
3. low-score detections are matched to the tracks still unmatched (occluded objects often
   score low) ;
4. a new track waits one frame for confirmation (except on the first frame); unmatched
   tracks are kept as lost for ``track_buffer`` frames, then removed.

The 'mask' mode blends mask IoU into the first association. Each track keeps the mask of its
last matched frame; before comparing, that mask is warped by the box motion (scaled and moved
from the box it had then to the Kalman prediction), so a moving object is compared with
itself where it should now be. Masks are compared at 1/``mask_scale`` resolution.

By default an identity never changes class (class-gated association); ``class_aware=False``
associates across classes and lets a track take the class of its newest detection.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, replace
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import YolactError
from ..results import Results

TRACKERS = ("bytetrack", "mask", "iou")


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of a :class:`Tracker`. Scores are class scores (``Results.box_scores``, 0..1); the
    match thresholds are similarities in 0..1 (box IoU; in the high-score and confirming
    associations blended with mask IoU in 'mask' mode and times the detection score when
    ``fuse_score``). Raises YolactError for an unknown ``kind`` or out-of-range values."""
    kind: str = "bytetrack"         # bytetrack | mask | iou
    high_score: float = 0.5         # detections at or above: first association, new tracks
    low_score: float = 0.1          # detections at or above (and below high_score): second association
    new_track_score: float = 0.6    # a detection starts a track only at or above this
    match_iou: float = 0.2          # first association: least similarity to match (ByteTrack: cost 0.8)
    low_match_iou: float = 0.5      # second association
    unconfirmed_match_iou: float = 0.3  # a new track's confirming match
    fuse_score: bool = True         # first association similarity x detection score (ByteTrack)
    track_buffer: int = 30          # frames a lost track waits to be found again
    mask_weight: float = 0.5        # mask mode: similarity = (1 - w) box IoU + w mask IoU
    mask_scale: int = 4             # mask mode: masks compared at 1/mask_scale resolution
    class_aware: bool = True        # an identity never changes class
    trail: int = 30                 # box centres kept per track (for drawing)

    def __post_init__(self):
        if self.kind not in TRACKERS:
            raise YolactError(f"unknown tracker '{self.kind}' ({', '.join(TRACKERS)})")
        if not 0 <= self.low_score <= self.high_score <= 1:
            raise YolactError("tracker: need 0 <= low_score <= high_score <= 1")
        if self.track_buffer < 0 or self.mask_scale < 1 or not 0 <= self.mask_weight <= 1:
            raise YolactError("tracker: track_buffer >= 0, mask_scale >= 1 and 0 <= mask_weight <= 1")


# ---------------------------------------------------------------- Kalman filter
class KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, aspect w/h, h) and their velocities; noise
    proportional to the box height (the usual SORT / DeepSORT / ByteTrack parameterisation)."""

    STD_POS, STD_VEL = 1 / 20, 1 / 160
    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)

    def __init__(self, box_xyah: np.ndarray):
        h = box_xyah[3]
        self.mean = np.r_[box_xyah, np.zeros(4)]
        std = [2 * self.STD_POS * h, 2 * self.STD_POS * h, 1e-2, 2 * self.STD_POS * h,
               10 * self.STD_VEL * h, 10 * self.STD_VEL * h, 1e-5, 10 * self.STD_VEL * h]
        self.cov = np.diag(np.square(std))

    def predict(self, frozen_velocity: bool = False) -> None:
        """Advance one frame (mean F x, covariance F P F^T + Q). ``frozen_velocity``: zero the height
        velocity first (lost tracks, as ByteTrack)."""
        if frozen_velocity:  # a lost track's height velocity is zeroed, as ByteTrack
            self.mean[7] = 0
        h = self.mean[3]
        q = np.square([self.STD_POS * h, self.STD_POS * h, 1e-2, self.STD_POS * h,
                       self.STD_VEL * h, self.STD_VEL * h, 1e-5, self.STD_VEL * h])
        self.mean = self.F @ self.mean
        self.cov = self.F @ self.cov @ self.F.T + np.diag(q)

    def update(self, box_xyah: np.ndarray) -> None:
        """Correct the state with a measured box (cx, cy, w/h, h) in pixels (see :func:`xyah`)."""
        h = self.mean[3]
        r = np.diag(np.square([self.STD_POS * h, self.STD_POS * h, 1e-1, self.STD_POS * h]))
        s = self.H @ self.cov @ self.H.T + r
        gain = np.linalg.solve(s, self.H @ self.cov).T  # cov H^T s^-1 (s is symmetric)
        self.mean = self.mean + gain @ (box_xyah - self.H @ self.mean)
        self.cov = self.cov - gain @ s @ gain.T

    @property
    def box(self) -> np.ndarray:
        """The current estimate as a pixel box: float64 [4] x1, y1, x2, y2."""
        cx, cy, a, h = self.mean[:4]
        w = a * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def xyah(box: np.ndarray) -> np.ndarray:
    """Pixel box (x1, y1, x2, y2) -> float64 [4] (cx, cy, w/h, h), the Kalman filter's measurement;
    width and height are taken as at least 1e-3 so the aspect is finite."""
    w, h = max(box[2] - box[0], 1e-3), max(box[3] - box[1], 1e-3)
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, w / h, h])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixel boxes [N, 4] and [M, 4] (x1, y1, x2, y2; area (x2 - x1) (y2 - y1), no +1) ->
    float64 IoU [N, M]; pairs with no area give 0."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Binary masks [N, h, w] and [M, h, w] (bool or 0/1 of any dtype) -> IoU [N, M]; two
    empty masks give 0."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    return inter / np.maximum(fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter, 1e-9)


def assign(similarity: np.ndarray, threshold: float) -> Tuple[List[Tuple[int, int]], List[int], List[int]]:
    """Maximum-similarity one-to-one matching (Hungarian, scipy), keeping pairs >= threshold.
    -> (matches, unmatched rows, unmatched columns). Raises YolactError without scipy."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise YolactError("tracking needs scipy: pip install 'yolact[track]'") from None

    rows, cols = similarity.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    r, c = linear_sum_assignment(-similarity)
    matches = [(int(i), int(j)) for i, j in zip(r, c) if similarity[i, j] >= threshold]
    mr, mc = {i for i, _ in matches}, {j for _, j in matches}
    return matches, [i for i in range(rows) if i not in mr], [j for j in range(cols) if j not in mc]


# ---------------------------------------------------------------- tracks
class Track:
    """One identity: a Kalman-filtered box in image pixels, its 0-based class and class score,
    ``state`` ('tracked', 'lost', 'removed'), ``confirmed``, the mask of its last matched frame
    (uint8, at 1/``mask_scale`` resolution, or None) with the box it had then, and ``trail``, the
    last box centres (x, y pixels)."""
    TRACKED, LOST, REMOVED = "tracked", "lost", "removed"

    def __init__(self, track_id: int, box: np.ndarray, label: int, score: float, frame: int, confirmed: bool,
                 mask: Optional[np.ndarray], trail: int):
        self.id, self.label, self.score = track_id, label, score
        self.kf = KalmanBox(xyah(box))
        self.state = Track.TRACKED
        self.confirmed = confirmed
        self.last_frame = frame
        self.mask, self.mask_box = mask, box.copy()
        self.trail: Deque[Tuple[float, float]] = collections.deque(maxlen=trail)
        self.trail.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))

    def predict(self) -> None:
        """Kalman prediction for the next frame (height velocity frozen unless the track is tracked)."""
        self.kf.predict(frozen_velocity=self.state != Track.TRACKED)

    def update(self, box: np.ndarray, label: int, score: float, frame: int, mask: Optional[np.ndarray]) -> None:
        """A matched detection (pixel box x1, y1, x2, y2, 0-based class, class score, frame number,
        small mask or None): Kalman update; the track becomes tracked and confirmed."""
        self.kf.update(xyah(box))
        self.label, self.score, self.last_frame = label, score, frame
        self.state, self.confirmed = Track.TRACKED, True
        if mask is not None:
            self.mask, self.mask_box = mask, box.copy()
        self.trail.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))

    def warped_mask(self, scale: int) -> np.ndarray:
        """The last mask (uint8 [h, w], at 1/``scale`` of the image) moved and scaled from the box
        it had then to the predicted box; nearest-neighbour, same shape."""
        ob, nb = self.mask_box / scale, self.kf.box / scale
        sx = (nb[2] - nb[0]) / max(ob[2] - ob[0], 1e-3)
        sy = (nb[3] - nb[1]) / max(ob[3] - ob[1], 1e-3)
        m = np.float32([[sx, 0, nb[0] - sx * ob[0]], [0, sy, nb[1] - sy * ob[1]]])
        h, w = self.mask.shape
        return cv2.warpAffine(self.mask, m, (w, h), flags=cv2.INTER_NEAREST)


class Tracker:
    """Feed one frame's Results at a time to :meth:`update`; get them back with ``track_ids``
    (only the detections that belong to a confirmed, currently tracked identity)."""

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.cfg = config
        self.frame = 0
        self.next_id = 1
        self.tracks: List[Track] = []

    def reset(self) -> None:
        """Forget every track: the next frame is frame 1 and identities restart at 1."""
        self.frame, self.next_id, self.tracks = 0, 1, []

    @property
    def min_score(self) -> float:
        """The lowest detection score the tracker uses (run the model at this threshold)."""
        return self.cfg.low_score if self.cfg.kind != "iou" else self.cfg.high_score

    def trails(self) -> Dict[int, List[Tuple[float, float]]]:
        """Box-centre trails (x, y pixels, oldest first) of the confirmed, currently tracked identities,
        by track id: the ``trails`` of :meth:`Results.plot`."""
        return {t.id: list(t.trail) for t in self.tracks if t.state == Track.TRACKED and t.confirmed}

    # ------------------------------------------------------------ association
    def _similarity(self, tracks: Sequence[Track], boxes: np.ndarray, labels: np.ndarray,
                    scores: Optional[np.ndarray], masks: Optional[np.ndarray]) -> np.ndarray:
        sim = box_iou(np.array([t.kf.box for t in tracks]).reshape(-1, 4), boxes)
        if masks is not None and len(tracks) and len(boxes):
            warped = np.stack([t.warped_mask(self.cfg.mask_scale) for t in tracks])
            sim = (1 - self.cfg.mask_weight) * sim + self.cfg.mask_weight * mask_iou(warped, masks)
        if scores is not None:
            sim = sim * scores[None, :]
        if self.cfg.class_aware and len(tracks) and len(boxes):
            sim = np.where(np.array([t.label for t in tracks])[:, None] == labels[None, :], sim, 0.0)
        return sim

    def _new_track(self, box, label, score, mask, confirmed) -> Track:
        t = Track(self.next_id, box, label, score, self.frame, confirmed, mask, self.cfg.trail)
        self.next_id += 1
        self.tracks.append(t)
        return t

    def update(self, res: Results) -> Results:
        """Associate the next frame's detections (Results in image pixels, bool masks) with the
        tracks; -> that frame's Results restricted to confirmed, tracked identities, with
        ``track_ids`` [D] int64 (ids start at 1). Raises YolactError when scipy is missing."""
        self.frame += 1
        if self.cfg.kind == "iou":
            return self._update_iou(res)
        cfg = self.cfg
        boxes = res.boxes.astype(np.float64).reshape(-1, 4)
        scores, labels = res.box_scores.astype(np.float64), res.labels.astype(np.int64)
        small = None
        if cfg.kind == "mask" and len(res):
            small = res.mask_crops.strided(cfg.mask_scale)  # = masks[:, ::s, ::s], built from the crops
        owner = np.full(len(res), -1, np.int64)  # detection -> track id

        for t in self.tracks:  # removed tracks were dropped at the end of the last update
            t.predict()
        pool = [t for t in self.tracks if t.confirmed]    # tracked and lost
        unconfirmed = [t for t in self.tracks if not t.confirmed]
        high = np.nonzero(scores >= cfg.high_score)[0]
        low = np.nonzero((scores >= cfg.low_score) & (scores < cfg.high_score))[0]

        def take(track: Track, d: int) -> None:
            track.update(boxes[d], int(labels[d]), float(scores[d]), self.frame, small[d] if small is not None else None)
            owner[d] = track.id

        # 1. high-score detections against every confirmed track (box IoU, + masks in mask mode)
        sim = self._similarity(pool, boxes[high], labels[high], scores[high] if cfg.fuse_score else None,
                               small[high] if small is not None else None)
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
        sim = self._similarity(unconfirmed, boxes[free], labels[free], scores[free] if cfg.fuse_score else None,
                               small[free] if small is not None else None)
        matches, left_new, left_free = assign(sim, cfg.unconfirmed_match_iou)
        for i, j in matches:
            take(unconfirmed[i], int(free[j]))
        for i in left_new:
            unconfirmed[i].state = Track.REMOVED
        # 4. births: confirmed at once on the first frame, else after one more match
        for j in left_free:
            d = int(free[j])
            if scores[d] >= cfg.new_track_score:
                t = self._new_track(boxes[d], int(labels[d]), float(scores[d]),
                                    small[d] if small is not None else None, confirmed=self.frame == 1)
                if t.confirmed:
                    owner[d] = t.id
        # 5. deaths
        for t in self.tracks:
            if t.state == Track.LOST and self.frame - t.last_frame > cfg.track_buffer:
                t.state = Track.REMOVED
        self.tracks = [t for t in self.tracks if t.state != Track.REMOVED]
        return self._output(res, owner)

    def _update_iou(self, res: Results) -> Results:
        """The naive baseline: match to the previous frame's boxes by IoU; no motion model, no
        second chance, no memory (an unmatched track ends at once)."""
        cfg = self.cfg
        boxes = res.boxes.astype(np.float64).reshape(-1, 4)
        keep = np.nonzero(res.box_scores >= cfg.high_score)[0]
        labels = res.labels.astype(np.int64)
        sim = box_iou(np.array([t.mask_box for t in self.tracks]).reshape(-1, 4), boxes[keep])
        if cfg.class_aware and len(self.tracks) and len(keep):
            sim = np.where(np.array([t.label for t in self.tracks])[:, None] == labels[keep][None, :], sim, 0.0)
        matches, _, left = assign(sim, 0.3)
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
        return self._output(res, owner)

    def _output(self, res: Results, owner: np.ndarray) -> Results:
        idx = np.nonzero(owner >= 0)[0]
        out = res.subset(idx)
        out.track_ids = owner[idx]
        return out


def tracker_config(tracker: str = "bytetrack", config: Optional[TrackerConfig] = None,
                   agnostic: bool = False) -> TrackerConfig:
    """``config`` (default TrackerConfig()) with ``kind=tracker``; ``agnostic`` lets an
    identity change class. Raises YolactError for an unknown tracker."""
    cfg = replace(config or TrackerConfig(), kind=tracker)
    return replace(cfg, class_aware=False) if agnostic else cfg
