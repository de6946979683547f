"""Image reading and normalisation to OpenCV's BGR uint8 convention.

Every image file the package reads (datasets of every format, ``predict`` on paths, ``eval``,
uploads to ``yolact serve``, ``data check``) goes through :func:`decode_image`, which applies
the EXIF Orientation tag as ``cv2.imread``, PIL's ``ImageOps.exif_transpose`` and LabelMe do:
a phone photo stored sideways with Orientation=6 comes out upright, and annotations are in that
upright frame. :func:`image_size` gives the same upright size from the header alone.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Optional, Tuple, Union

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


EXIF_ORIENTATION = 0x0112


def _header(data: Union[bytes, str, os.PathLike]) -> Optional[Tuple[str, int, int, int]]:
    """-> (format, stored width, stored height, EXIF orientation 1..8) from the header alone
    (Pillow reads no pixels here); None when Pillow cannot identify the file."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: not ours to judge here
            with Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data) as im:
                fmt, (w, h) = im.format, im.size
                if fmt == "TIFF":  # recent Pillow reports TIFF sizes already turned: take the stored ones
                    w, h = im.tag_v2.get(256, w), im.tag_v2.get(257, h)
                # A PNG's eXIf chunk precedes its pixels; getexif() on a PNG without one would
                # decode the whole image to look for it after them.
                if fmt == "PNG" and "exif" not in im.info:
                    return fmt, w, h, 1
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # not an image Pillow knows (OpenCV may still read it), or a broken header
        return None
    return fmt, w, h, orientation if orientation in range(1, 9) else 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels [H, W, ...] turned upright for an EXIF Orientation 1..8 (what PIL's
    ``exif_transpose`` does: 6 is rotated 90 degrees clockwise, 8 counter-clockwise, 5 and 7
    transposed, 2 and 4 mirrored, 3 turned 180 degrees)."""
    t = img.swapaxes(0, 1) if orientation in (5, 6, 7, 8) else img
    flips = {2: (slice(None), slice(None, None, -1)), 3: (slice(None, None, -1), slice(None, None, -1)),
             4: (slice(None, None, -1),), 6: (slice(None), slice(None, None, -1)),
             7: (slice(None, None, -1), slice(None, None, -1)), 8: (slice(None, None, -1),)}
    return np.ascontiguousarray(t[flips[orientation]] if orientation in flips else t)


def image_size(path: Union[str, os.PathLike]) -> Optional[Tuple[int, int]]:
    """(width, height) in pixels of the image as :func:`read_image` returns it (EXIF orientation
    applied), read from the file header without decoding the pixels; a file whose header Pillow
    does not read is decoded. None when the file is missing or not a readable image."""
    head = _header(str(path))
    if head is None:
        try:
            img = decode_image(np.fromfile(str(path), dtype=np.uint8), str(path))
        except (OSError, ValueError, YolactError):
            return None
        return None if img is None else (img.shape[1], img.shape[0])
    _, w, h, orientation = head
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def decode_image(data: Union[bytes, np.ndarray], name: str = "image") -> Optional[np.ndarray]:
    """Encoded bytes -> HxWx3 BGR uint8, upright (EXIF orientation applied), or None when
    OpenCV cannot decode them. Grayscale, alpha and 16-bit images are converted (see
    :func:`to_bgr_uint8`)."""
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # keeps 16-bit and alpha; ignores EXIF orientation
    if img is None:
        return None
    head = _header(buf.tobytes())
    # OpenCV's TIFF decoder applies the orientation itself (libtiff); other formats are stored as is.
    if head is not None and head[0] != "TIFF" and head[3] != 1:
        img = apply_orientation(img, head[3])
    return to_bgr_uint8(img, name)


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as upright BGR uint8 [H, W, 3] (EXIF orientation applied, as
    ``cv2.imread`` does), with a one-line error naming the file on failure."""
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such file")
    if p.is_dir():
        raise YolactError(f"{p}: is a directory, expected an image file")
    if p.stat().st_size == 0:
        raise YolactError(f"{p}: empty file")
    img = decode_image(np.fromfile(str(p), dtype=np.uint8), str(p))
    if img is None:
        raise YolactError(f"{p}: not a readable image (corrupt or unsupported format)")
    return img
