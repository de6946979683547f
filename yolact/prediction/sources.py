"""The one source resolver: what ``predict`` (``Predictor.predict``, ``stream=True`` and the
``yolact predict`` verb), ``track`` and the runner accept, resolved to images, videos and cameras.

- BGR uint8 arrays (OpenCV's layout) and tensors;
- image files, video files, folders of images (searched recursively);
- globs, quoted or not (``"imgs/*.jpg"``, ``"data/**/*.png"``);
- ``.txt`` lists: one source a line (blank lines and ``#`` comments skipped; relative paths are
  taken from the current folder, else from the list's folder);
- http(s) URLs of images or videos, downloaded (urllib) into a folder the caller gives;
- webcam indices (digits that are not a path).
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
import tempfile
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

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


def is_pil_image(obj) -> bool:
    """Whether ``obj`` is a PIL image (without importing PIL when the caller has not)."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def pil_to_bgr(img) -> np.ndarray:
    """A PIL image (any mode: RGB, RGBA, L, P, I;16 ...) -> HxWx3 BGR uint8, the channel order
    of every other array source (PIL holds RGB; alpha is dropped, grey repeated). 16-bit, 32-bit
    integer and float grey modes are scaled as the same numpy array would be (PIL's own
    ``convert('RGB')`` clips them to 255: a white image)."""
    from ..data.images import to_bgr_uint8

    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img)
        if img.mode != "F":  # 'I' holds int32: 16-bit data when above 255, else 8-bit values
            a = a.clip(0, 65535).astype(np.uint16 if a.max() > 255 else np.uint8)
        return to_bgr_uint8(a.astype(np.float32) if img.mode == "F" else a, "PIL image")
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8)[:, :, ::-1])


def resolve_sources(sources, download_dir: Optional[Union[str, os.PathLike]] = None,
                    _depth: int = 0, urls: Optional[Dict[str, str]] = None) -> List[Tuple[str, object]]:
    """One source or a list of them -> [(kind, value)]: kind 'image' (a path), 'video' (a
    path), 'webcam' (an index) or 'array' (a BGR uint8 array, or a tensor; a PIL image becomes
    its BGR array), in the order given
    (folders and globs sorted). URLs need ``download_dir``; ``urls``, when given, gets each
    downloaded file's path -> its URL (what messages and records name). Raises YolactError
    naming the source that does not exist, matches nothing or cannot be downloaded."""
    if not isinstance(sources, (list, tuple)):
        sources = [sources]
    out: List[Tuple[str, object]] = []
    for s in sources:
        if is_pil_image(s):
            s = pil_to_bgr(s)
        if isinstance(s, (np.ndarray, torch.Tensor)):
            out.append(("array", s))
            continue
        if isinstance(s, int) and not isinstance(s, bool):
            out.append(("webcam", s))
            continue
        if not isinstance(s, (str, os.PathLike)):
            raise YolactError(f"source {len(out)}: expected a path, URL, webcam index, PIL image or BGR uint8 array, "
                              f"got {type(s).__name__}")
        s = str(s)
        if not s.strip():
            raise YolactError("an empty source name (give a file, folder, glob, URL or webcam index)")
        if webcam_index(s) is not None:
            out.append(("webcam", webcam_index(s)))
            continue
        if is_url(s):
            if download_dir is None:
                raise YolactError(f"{s}: URLs need a download folder")
            url, s = s, str(download(s, download_dir))
            if urls is not None:
                urls[s] = url
        p = Path(s)
        if not p.exists() and _GLOB_CHARS & set(s):
            media = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
            matches = sorted(m for m in glob.glob(s, recursive=True)
                             if Path(m).is_file() and Path(m).suffix.lower() in media)
            if not matches:
                raise YolactError(f"{s}: no images or videos match")
            out += resolve_sources(matches, download_dir, _depth, urls)
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
                out += resolve_sources(_from_list(p), download_dir, _depth + 1, urls)
            except YolactError as e:
                raise e if str(e).startswith(str(p)) else YolactError(f"{p}: {e}") from None
        elif p.suffix.lower() in VIDEO_EXTENSIONS:
            out.append(("video", str(p)))
        else:
            out.append(("image", str(p)))
    return out


def is_collection(source) -> bool:
    """True when ``source`` names several images however many it holds: a list or tuple, a
    folder, a glob or a ``.txt`` list (``predict`` then returns a list of Results)."""
    if isinstance(source, (list, tuple)):
        return True
    if not isinstance(source, (str, os.PathLike)) or is_url(str(source)):
        return False
    p = Path(source)
    return p.is_dir() or (not p.exists() and bool(_GLOB_CHARS & set(str(source)))) or p.suffix.lower() == ".txt"


@contextlib.contextmanager
def download_folder(sources) -> Iterator[Optional[str]]:
    """A temporary folder for the URLs among ``sources`` (one source or a list), removed on
    exit; None, and nothing made, when there is no URL."""
    items = sources if isinstance(sources, (list, tuple)) else [sources]
    if not any(is_url(s) for s in items):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="yolact-downloads-") as tmp:
        yield tmp


def load_sources(source) -> List[tuple]:
    """What ``predict`` reads at once: any source of :func:`resolve_sources` but videos and
    webcams -> [(bgr_uint8, path_or_None)]. Raises YolactError naming the image that cannot
    be read or converted, and for a video (those stream: ``predict(..., stream=True)``)."""
    with download_folder(source) as tmp:
        loaded = []
        for i, (kind, value) in enumerate(resolve_sources(source, tmp)):
            if kind in ("video", "webcam"):
                raise YolactError(f"{value if kind == 'video' else f'webcam {value}'}: a video; "
                                  "use predict(..., stream=True) or track() for videos")
            loaded.append(_read(kind, value, i))
        return loaded


def _read(kind: str, value, i: int) -> Tuple[np.ndarray, Optional[str]]:
    if kind == "array":
        arr = value.cpu().numpy() if isinstance(value, torch.Tensor) else value
        return to_bgr_uint8(arr, f"image {i}"), None
    return read_image(value), str(value)


def read_frames(source, on_skip: Optional[Callable[[YolactError], None]] = None, workers: int = 0
                ) -> Iterator[Tuple[np.ndarray, Optional[str], Optional[float]]]:
    """(BGR uint8 frame, image path or None, the video frame's timestamp in seconds or None) in
    order, from any source of
    :func:`resolve_sources` (URLs are downloaded to a temporary folder for the iteration).
    With ``on_skip``, an unreadable image among several is handed to it and skipped instead of
    stopping. ``workers`` > 0: image files are read and decoded by that many threads, up to
    ``2 * workers`` images ahead of the consumer (OpenCV's decoder releases the GIL), and still
    come out in order; video frames are read in order as always. Raises YolactError for a
    source that cannot be opened."""
    with download_folder(source) as tmp:
        items = resolve_sources(source, tmp)
        if workers > 0:
            yield from _read_ahead(items, on_skip, workers)
            return
        for i, (kind, value) in enumerate(items):
            if kind in ("video", "webcam"):
                yield from video_frames(value)
                continue
            try:
                image, path = _read(kind, value, i)
            except YolactError as e:
                if on_skip is None or len(items) == 1:
                    raise
                on_skip(e)
                continue
            yield image, path, None


def _read_ahead(items: list, on_skip, workers: int) -> Iterator[Tuple[np.ndarray, Optional[str], Optional[float]]]:
    """read_frames' loop with the images decoded on a thread pool, a bounded window ahead."""
    import collections
    from concurrent.futures import ThreadPoolExecutor

    pending: "collections.deque" = collections.deque()

    def ready():
        image, path = pending.popleft().result()
        return image, path, None

    def oldest():  # the oldest image in flight, or its error handed to on_skip (None then)
        try:
            return ready()
        except YolactError as e:
            if on_skip is None or len(items) == 1:
                raise
            on_skip(e)
            return None

    with ThreadPoolExecutor(workers, thread_name_prefix="yolact-read") as pool:
        try:
            for i, (kind, value) in enumerate(items):
                if kind in ("video", "webcam"):
                    while pending:
                        item = oldest()
                        if item is not None:
                            yield item
                    yield from video_frames(value)
                    continue
                pending.append(pool.submit(_read, kind, value, i))
                while len(pending) > 2 * workers:
                    item = oldest()
                    if item is not None:
                        yield item
            while pending:
                item = oldest()
                if item is not None:
                    yield item
        finally:  # left early: the images not started are dropped, not decoded
            for f in pending:
                f.cancel()


def video_frames(source: Union[str, int]) -> Iterator[Tuple[np.ndarray, None, Optional[float]]]:
    """(frame, None, timestamp) for the frames of a video file or webcam index, in order (BGR
    uint8). The timestamp is the frame's presentation time in its container in seconds (the
    real time of a variable-frame-rate video, where index / fps drifts); None for webcams.
    Raises YolactError when the source cannot be opened."""
    import cv2

    cap = cv2.VideoCapture(source)
    name = f"webcam {source}" if isinstance(source, int) else str(source)
    if not cap.isOpened():
        raise YolactError(f"{name}: cannot open video source")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame, None, None if isinstance(source, int) else round(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000, 6)
    finally:
        cap.release()


def count_frames(source) -> Tuple[str, Optional[int], float]:
    """-> (name, frame count or None when unknown, fps; 30 unless a video file says otherwise)
    for progress bars and output names. Opens video files; reads no frames."""
    import cv2

    if isinstance(source, (list, tuple)):
        return "images", len(source), 30.0
    if isinstance(source, (np.ndarray, torch.Tensor)) or is_pil_image(source):
        return "image", 1, 30.0
    if webcam_index(source) is not None:
        return f"webcam{webcam_index(source)}", None, 30.0
    if is_url(source):
        return Path(urllib.parse.urlparse(source).path).stem or "download", None, 30.0
    p = Path(source)
    if not p.exists() and _GLOB_CHARS & set(str(source)):  # a glob: named after the folder it searches
        p = Path(str(source).split("*")[0].split("?")[0].split("[")[0] or ".").resolve()
        p = p if p.is_dir() else p.parent
        return count_frames(str(p))[0], len(resolve_sources(source)), 30.0
    if p.is_dir():  # a MOTChallenge sequence's frames (SEQ/img1) are named after the sequence
        name = p.parent.name if p.name == "img1" and (p.parent / "seqinfo.ini").exists() else p.name
        return name, sum(1 for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS), 30.0
    if p.suffix.lower() not in VIDEO_EXTENSIONS:
        return p.stem, 1, 30.0
    cap = cv2.VideoCapture(str(p))
    try:
        return p.stem, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None, cap.get(cv2.CAP_PROP_FPS) or 30.0
    finally:
        cap.release()
