"""What every tracker shares: the thresholds (:class:`TrackerConfig`), one identity
(:class:`Track`) and the base class (:class:`BaseTracker`: frame counting, identities, trails,
the Results going out, and :meth:`BaseTracker.track` over any iterable of Results).

A tracker subclasses BaseTracker and writes ``_associate(res) -> owner`` (the track id of each
detection, -1 for none); ``update`` and ``track`` come with the base. Registering it is one row
of :data:`yolact.tracking.TRACKERS`.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Deque, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import YolactError
from ..results import Results
from .kalman import KalmanBox, xyah


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of a tracker. Scores are class scores (``Results.box_scores``, 0..1); the match
    thresholds are similarities in 0..1 (box IoU; in the high-score and confirming associations
    blended with mask IoU by the 'mask' tracker and times the detection score when
    ``fuse_score``). ``kind`` names the row of :data:`yolact.tracking.TRACKERS` that
    :func:`yolact.tracking.Tracker` builds (checked when a tracker is built: rows may be added).
    Raises YolactError for out-of-range values."""
    kind: str = "bytetrack"         # a key of yolact.tracking.TRACKERS: bytetrack | mask | iou
    high_score: float = 0.5         # detections at or above: first association, new tracks
    low_score: float = 0.1          # detections at or above (and below high_score): second association
    new_track_score: float = 0.6    # a detection starts a track only at or above this
    match_iou: float = 0.2          # first association: least similarity to match (ByteTrack: cost 0.8)
    low_match_iou: float = 0.5      # second association
    unconfirmed_match_iou: float = 0.3  # a new track's confirming match
    fuse_score: bool = True         # first association similarity x detection score (ByteTrack)
    track_buffer: int = 30          # frames a lost track waits to be found again
    mask_weight: float = 0.5        # mask tracker: similarity = (1 - w) box IoU + w mask IoU
    mask_scale: int = 4             # mask tracker: masks compared at 1/mask_scale resolution
    class_aware: bool = True        # an identity never changes class
    trail: int = 30                 # box centres kept per track (for drawing)

    def __post_init__(self):
        if not 0 <= self.low_score <= self.high_score <= 1:
            raise YolactError("tracker: need 0 <= low_score <= high_score <= 1")
        if self.track_buffer < 0 or self.mask_scale < 1 or not 0 <= self.mask_weight <= 1:
            raise YolactError("tracker: track_buffer >= 0, mask_scale >= 1 and 0 <= mask_weight <= 1")


class Track:
    """One identity: a Kalman-filtered box in image pixels, its 0-based class and class score,
    ``state`` ('tracked', 'lost', 'removed'), ``confirmed``, the mask of its last matched frame
    (uint8, at 1/``mask_scale`` resolution, or None) with the box it had then (``mask_box``, also
    the last matched box), and ``trail``, the last box centres (x, y pixels)."""
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


class BaseTracker:
    """Feed one frame's Results at a time to :meth:`update` (or a whole iterable to :meth:`track`);
    get them back with ``track_ids``: only the detections that belong to a confirmed, currently
    tracked identity. Subclasses write :meth:`_associate`."""

    def __init__(self, config: Optional[TrackerConfig] = None):
        self.cfg = config if config is not None else TrackerConfig()
        self.frame = 0
        self.next_id = 1
        self.tracks: List[Track] = []

    def reset(self) -> None:
        """Forget every track: the next frame is frame 1 and identities restart at 1."""
        self.frame, self.next_id, self.tracks = 0, 1, []

    @property
    def min_score(self) -> float:
        """The lowest detection score the tracker uses (run the model at this threshold)."""
        return self.cfg.low_score

    def trails(self) -> Dict[int, List[Tuple[float, float]]]:
        """Box-centre trails (x, y pixels, oldest first) of the confirmed, currently tracked identities,
        by track id: the ``trails`` of :meth:`Results.plot`."""
        return {t.id: list(t.trail) for t in self.tracks if t.state == Track.TRACKED and t.confirmed}

    def update(self, res: Results) -> Results:
        """Associate the next frame's detections (Results in image pixels, bool masks) with the
        tracks; -> that frame's Results restricted to confirmed, tracked identities, with
        ``track_ids`` [D] int64 (ids start at 1). Raises YolactError when scipy is missing."""
        self.frame += 1
        owner = self._associate(res)
        idx = np.nonzero(owner >= 0)[0]
        out = res.subset(idx)
        out.track_ids = owner[idx]
        return out

    def track(self, results: Iterable[Results]) -> Iterator[Results]:
        """:meth:`update` over an iterable of per-frame Results (a list, a generator, a model's
        ``predict(source, stream=True)``), lazily: one tracked Results per frame, in order."""
        for res in results:
            yield self.update(res)

    def _associate(self, res: Results) -> np.ndarray:
        """This frame's association (``self.frame`` is already its number): update, create and drop
        tracks; -> int64 [len(res)], the track id owning each detection or -1 (not reported)."""
        raise NotImplementedError

    def _new_track(self, box: np.ndarray, label: int, score: float, mask: Optional[np.ndarray],
                   confirmed: bool) -> Track:
        """Start an identity with the next id at this frame and add it to ``tracks``."""
        t = Track(self.next_id, box, label, score, self.frame, confirmed, mask, self.cfg.trail)
        self.next_id += 1
        self.tracks.append(t)
        return t
