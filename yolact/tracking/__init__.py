"""Multi-object tracking on YOLACT detections: one class per tracker, chosen by name from
:data:`TRACKERS`.

=============  =====================  ==========================================================
name           class                  module
=============  =====================  ==========================================================
``bytetrack``  :class:`ByteTracker`   :mod:`.bytetrack`: Kalman-predicted boxes, two-stage
                                      association (high-score, then low-score detections)
``mask``       :class:`MaskTracker`   :mod:`.mask`: ByteTrack + IoU of motion-warped masks
``iou``        :class:`IouTracker`    :mod:`.iou`: previous-frame box IoU, a naive baseline
=============  =====================  ==========================================================

Every tracker is a :class:`BaseTracker` (:mod:`.base`): ``update(results) -> Results`` with
``track_ids``, ``track(iterable of Results)``, ``reset``, ``trails``, ``min_score``; the shared
thresholds are :class:`TrackerConfig`. :mod:`.kalman` holds the motion model, :mod:`.matching`
the similarities and the Hungarian assignment, :mod:`.evaluate` MOTChallenge files and TrackEval.
Adding a tracker is one module (a BaseTracker subclass) and one row of ``TRACKERS``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional, Type

from ..errors import YolactError
from .base import BaseTracker, Track, TrackerConfig
from .bytetrack import ByteTracker
from .iou import IouTracker
from .kalman import KalmanBox, xyah
from .mask import MaskTracker, warped_mask
from .matching import assign, box_iou, class_gate, mask_iou

TRACKERS: Dict[str, Type[BaseTracker]] = {"bytetrack": ByteTracker, "mask": MaskTracker, "iou": IouTracker}

__all__ = ["TRACKERS", "build_tracker", "tracker_config", "check_tracker", "Tracker", "TrackerConfig", "BaseTracker",
           "ByteTracker", "MaskTracker", "IouTracker", "Track", "KalmanBox", "xyah", "assign", "box_iou",
           "mask_iou", "class_gate", "warped_mask"]


def check_tracker(name: str) -> str:
    """``name`` if it is a row of TRACKERS; else a one-line YolactError listing the rows."""
    if name not in TRACKERS:
        raise YolactError(f"unknown tracker '{name}' (choose from {', '.join(TRACKERS)})")
    return name


def tracker_config(tracker: str = "bytetrack", config: Optional[TrackerConfig] = None,
                   agnostic: bool = False) -> TrackerConfig:
    """``config`` (default TrackerConfig()) with ``kind=tracker``; ``agnostic`` lets an
    identity change class. Raises YolactError for an unknown tracker."""
    cfg = replace(config or TrackerConfig(), kind=check_tracker(tracker))
    return replace(cfg, class_aware=False) if agnostic else cfg


def build_tracker(name: str = "bytetrack", config: Optional[TrackerConfig] = None,
                  agnostic: bool = False) -> BaseTracker:
    """A new tracker of the row ``name`` of TRACKERS with the thresholds of ``config`` (default
    TrackerConfig(); its ``kind`` becomes ``name``); ``agnostic`` lets an identity change class.
    Raises YolactError for an unknown name, listing the choices."""
    return TRACKERS[check_tracker(name)](tracker_config(name, config, agnostic))


def Tracker(config: Optional[TrackerConfig] = None) -> BaseTracker:
    """The earlier spelling: the tracker that ``config.kind`` names (default ByteTrack), i.e.
    ``build_tracker(config.kind, config)``."""
    cfg = config if config is not None else TrackerConfig()
    return build_tracker(cfg.kind, cfg)
