"""Uploaded bytes -> a BGR uint8 image, entirely in memory, with limits checked before decoding.

The content type a client sends is not trusted: the bytes are identified and decoded. The pixel
count is read from the file header (Pillow reads headers without decoding) so that a
decompression bomb is refused before any pixel buffer is allocated; the decode itself is
OpenCV's through :func:`yolact.data.images.decode_image`, as ``yolact predict`` reads files, so the
server and the CLI see the same upright pixels (EXIF orientation applied).
"""
from __future__ import annotations

import io
import re
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np

# Formats both Pillow (header) and OpenCV (decode) read.
SUPPORTED = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")


class UploadError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def image_size(data: bytes) -> Tuple[str, int, int]:
    """-> (format, width, height) from the header alone; UploadError if not a supported image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: our limit is checked below
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError as e:
        # Pillow refuses beyond twice its own limit before telling the size; its message holds it.
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise UploadError(413, f"image has {int(m.group(1)) / 1e6:.1f} Mpx" if m else "image is a decompression bomb")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        fmt, w, h = None, 0, 0
    if fmt not in SUPPORTED:
        raise UploadError(415, f"not a supported image ({', '.join(SUPPORTED)}); "
                               f"the {len(data)} bytes sent are {fmt or 'unrecognised'}")
    return fmt, w, h


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes -> HxWx3 BGR uint8. Raises UploadError (413 over the pixel limit, 415 not an image,
    400 corrupt or truncated)."""
    from ..data.images import decode_image

    if not data:
        raise UploadError(400, "empty upload: send the image as the request body or as a multipart file")
    try:
        fmt, w, h = image_size(data)
    except UploadError as e:
        if e.status == 413:
            raise UploadError(413, f"{e.message}; the limit is {max_pixels / 1e6:.1f} Mpx") from None
        raise
    if w * h > max_pixels:
        raise UploadError(413, f"image is {w}x{h} = {w * h / 1e6:.1f} Mpx; the limit is {max_pixels / 1e6:.1f} Mpx")
    if w == 0 or h == 0:
        raise UploadError(400, f"{fmt} image has no pixels ({w}x{h})")
    # libjpeg decodes a truncated file into a half-grey picture without an error; the end-of-image
    # marker tells. (0xFFD9 cannot occur inside entropy-coded data, where 0xFF is stuffed.)
    if fmt == "JPEG" and b"\xff\xd9" not in data[-4096:]:
        raise UploadError(400, "truncated JPEG (no end-of-image marker)")
    try:
        img = decode_image(data, "upload")
    except Exception as e:  # YolactError: an image layout we cannot use
        raise UploadError(400, str(e)) from None
    if img is None:
        raise UploadError(400, f"corrupt or truncated {fmt} image (it could not be decoded)")
    return img


class _Parts:
    """python-multipart callbacks collecting each part's name, whether it is a file, and its bytes."""

    def __init__(self):
        self.parts: List[Dict] = []
        self.open = False  # inside a part: the body must not end here
        self.headers: Dict[bytes, bytes] = {}
        self.field = self.value = b""
        self.chunks: List[bytes] = []

    def callbacks(self) -> Dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_part_data": self.on_part_data, "on_part_end": self.on_part_end}

    def on_part_begin(self):
        self.headers, self.field, self.value, self.chunks, self.open = {}, b"", b"", [], True

    def on_header_field(self, data, start, end):
        self.field += data[start:end]

    def on_header_value(self, data, start, end):
        self.value += data[start:end]

    def on_header_end(self):
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def on_part_data(self, data, start, end):
        self.chunks.append(bytes(data[start:end]))

    def on_part_end(self):
        from python_multipart.multipart import parse_options_header

        self.open = False
        _, disp = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.parts.append({"name": disp.get(b"name", b"").decode("latin-1"), "is_file": b"filename" in disp,
                           "data": b"".join(self.chunks)})


def multipart_file(body: bytes, content_type: str) -> bytes:
    """The bytes of the file field (``image`` or ``file``, else the first file) of a
    multipart/form-data body, parsed in memory (no temporary files)."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart body without a boundary in its Content-Type")
    collected = _Parts()
    parser = MultipartParser(boundary, collected.callbacks())
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as e:
        raise UploadError(400, f"malformed multipart body: {e}") from None
    if collected.open:
        raise UploadError(400, "malformed multipart body: it ends inside a part (no closing boundary)")
    parts = collected.parts
    chosen: Optional[Dict] = next((p for p in parts if p["name"] in ("image", "file")), None)
    chosen = chosen or next((p for p in parts if p["is_file"]), None)
    if chosen is None:
        names = ", ".join(p["name"] or "?" for p in parts) or "none"
        raise UploadError(400, f"multipart body has no 'image' or 'file' field (fields: {names})")
    return chosen["data"]
