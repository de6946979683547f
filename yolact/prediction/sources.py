"""What ``yolact predict`` (and ``track``) accept as sources, resolved to files and cameras.

- image files, video files, folders of images (searched recursively);
- globs, quoted or not (``"imgs/*.jpg"``, ``"data/**/*.png"``);
- ``.txt`` lists: one source a line (blank lines and ``#`` comments skipped; relative paths are
  taken from the current folder, else from the list's folder);
- http(s) URLs of images or videos, downloaded (urllib) into a folder the caller gives;
- webcam indices (digits that are not a path).
"""
from __future__ import annotations

import glob
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..data.images import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, read_image, to_bgr_uint8
from ..errors import YolactError

_GLOB_CHARS = set("*?[")
_CONTENT_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/bmp": ".bmp", "image/webp": ".webp",
                  "image/tiff": ".tiff", "video/mp4": ".mp4", "video/x-msvideo": ".avi", "video/quicktime": ".mov",
                  "video/webm": ".webm", "video/x-matroska": ".mkv"}


def webcam_index(source) -> Optional[int]:
    """The camera index when ``source`` names a webcam (an int, or digits that are not a path)."""
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.isdigit() and not Path(source).exists():
        return int(source)
    return None


def is_url(text: str) -> bool:
    """True for an http:// or https:// string (any case); other schemes and non-strings are not URLs."""
    return isinstance(text, str) and text.lower().startswith(("http://", "https://"))


def download(url: str, folder: Union[str, os.PathLike], timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``folder`` (named after the URL's last path part; the extension from
    the Content-Type when the name has none). Any failure (offline, refused, HTTP error, not
    an image or video) raises YolactError in one line naming the URL."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            data = response.read()
    except urllib.error.HTTPError as e:
        raise YolactError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except urllib.error.URLError as e:
        raise YolactError(f"{url}: download failed ({getattr(e, 'reason', e)}; offline?)") from None
    except (OSError, ValueError) as e:
        raise YolactError(f"{url}: download failed ({type(e).__name__}: {e})") from None
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
        if ctype not in _CONTENT_TYPES:
            raise YolactError(f"{url}: not an image or a video (Content-Type {ctype or 'missing'})")
        name += _CONTENT_TYPES[ctype]
    path = folder / name
    n = 2
    while path.exists():  # two URLs with the same file name
        path = folder / f"{Path(name).stem}_{n}{Path(name).suffix}"
        n += 1
    path.write_bytes(data)
    return path


def _from_list(path: Path) -> List[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise YolactError(f"{path}: not a text file (invalid UTF-8)") from None
    out = []
    for line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not is_url(s) and not os.path.isabs(s) and not Path(s).exists() and (path.parent / s).exists():
            s = str(path.parent / s)
        out.append(s)
    if not out:
        raise YolactError(f"{path}: the list names no sources")
    return out


def resolve_sources(sources: Sequence[str], download_dir: Optional[Union[str, os.PathLike]] = None,
                    _depth: int = 0) -> List[Tuple[str, Union[str, int]]]:
    """-> [(kind, value)], kind 'image' (a path), 'video' (a path) or 'webcam' (an index), in
    the order given (folders and globs sorted). URLs need ``download_dir``. Raises YolactError
    naming the source that does not exist, matches nothing or cannot be downloaded."""
    out: List[Tuple[str, Union[str, int]]] = []
    for s in sources:
        s = str(s)
        if webcam_index(s) is not None:
            out.append(("webcam", webcam_index(s)))
            continue
        if is_url(s):
            if download_dir is None:
                raise YolactError(f"{s}: URLs need a download folder")
            s = str(download(s, download_dir))
        p = Path(s)
        if not p.exists() and _GLOB_CHARS & set(s):
            media = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
            matches = sorted(m for m in glob.glob(s, recursive=True)
                             if Path(m).is_file() and Path(m).suffix.lower() in media)
            if not matches:
                raise YolactError(f"{s}: no images or videos match")
            out += resolve_sources(matches, download_dir, _depth)
            continue
        if not p.exists():
            raise YolactError(f"{p}: no such file or directory")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise YolactError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += [("image", str(f)) for f in files]
        elif p.suffix.lower() == ".txt":
            if _depth > 4:
                raise YolactError(f"{p}: lists nested more than 4 deep")
            try:
                out += resolve_sources(_from_list(p), download_dir, _depth + 1)
            except YolactError as e:
                raise YolactError(f"{p}: {e}") from None
        elif p.suffix.lower() in VIDEO_EXTENSIONS:
            out.append(("video", str(p)))
        else:
            out.append(("image", str(p)))
    return out


def load_sources(source) -> List[tuple]:
    """A path, a BGR uint8 array (or tensor), or a list of them -> [(bgr_uint8, path_or_None)].
    Raises YolactError naming the image that cannot be read or converted."""
    items = source if isinstance(source, (list, tuple)) else [source]
    loaded = []
    for i, s in enumerate(items):
        if isinstance(s, (str, os.PathLike)):
            if os.path.splitext(str(s))[1].lower() in VIDEO_EXTENSIONS:
                raise YolactError(f"{s}: a video; use predict(..., stream=True) or track() for videos")
            loaded.append((read_image(s), str(s)))
        elif isinstance(s, np.ndarray):
            loaded.append((to_bgr_uint8(s, f"image {i}"), None))
        elif isinstance(s, torch.Tensor):
            loaded.append((to_bgr_uint8(s.cpu().numpy(), f"image {i}"), None))
        else:
            raise YolactError(f"image {i}: expected a path or a BGR uint8 array, got {type(s).__name__}")
    return loaded
