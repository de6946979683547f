"""The motion model of the trackers: a constant-velocity Kalman filter on a box's centre, aspect
and height (the SORT / DeepSORT / ByteTrack parameterisation), and the box -> measurement map."""
from __future__ import annotations

import numpy as np


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
