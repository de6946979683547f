"""Image reading and normalisation to OpenCV's BGR uint8 convention."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from ..errors import YolactError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def to_bgr_uint8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Grayscale, BGRA, 16-bit and float images -> HxWx3 BGR uint8 (converted, not rejected)."""
    if not isinstance(img, np.ndarray):
        raise YolactError(f"{name}: expected a numpy array, got {type(img).__name__}")
    if img.size == 0:
        raise YolactError(f"{name}: empty image")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        scale = 255.0 if img.max() <= 1.0 else 1.0
        img = np.clip(img * scale, 0, 255).round().astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise YolactError(f"{name}: unsupported image shape {img.shape}")
    return np.ascontiguousarray(img)


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as BGR uint8, with a one-line error naming the file on failure."""
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such file")
    if p.is_dir():
        raise YolactError(f"{p}: is a directory, expected an image file")
    if p.stat().st_size == 0:
        raise YolactError(f"{p}: empty file")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise YolactError(f"{p}: not a readable image (corrupt or unsupported format)")
    return to_bgr_uint8(img, str(p))
