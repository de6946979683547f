"""The model zoo: official weights fetched by name from the Hugging Face Hub.

``resolve_weights`` turns what a user passes as weights into a local file:

- an existing local path is returned unchanged;
- a preset name (``yolact_base``) or an official file name (``yolact_base_54_800000.pth``)
  is fetched from the repository the original's README points to (one per model);
- ``hf://owner/repo/path/file.pth`` (optionally ``owner/repo@revision/...``) fetches any hub file.

Files land in the hub's standard cache through ``huggingface_hub.hf_hub_download``, so
``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` behave as in
the rest of that ecosystem; a cached file loads with no network request when offline.

Integrity: the hub client does not hash what it downloads. After each download the bytes are
checked against the hub's hash of the file: the sha256 of an LFS/Xet file (its LFS object id,
which the hub sends as ``X-Linked-Etag`` and the client uses as the blob's name in the cache),
or the git blob sha1 of a small file stored in git; and against the sha256 recorded in
:data:`ZOO`, where one is recorded. A mismatch removes the bad copy from the cache (blob and
snapshot link) and raises :class:`~yolact.errors.YolactError`, so the next run downloads again.

Config layer: imports nothing from model/engine/cli.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

from .backbones import BACKBONES, INITIAL_WEIGHTS_REPO
from .config import PRESETS, YolactConfig
from .errors import YolactError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubFile:
    """One file of the zoo. ``repo`` None: no copy on the hub (``note`` says why).

    ``params``: number of tensor elements in the official state dict (from the original's
    keys and shapes), which gives the approximate size before download; ``sha256``: the
    file's hash when recorded here (None: not recorded, the hub's own hash is used).
    """
    name: str
    repo: Optional[str]
    filename: str
    mask_ap: Optional[float] = None     # COCO test-dev mask mAP (original README / paper)
    fps: Optional[float] = None         # Titan Xp, the original's measurement
    params: Optional[int] = None
    sha256: Optional[str] = None
    note: str = ""

    @property
    def approx_mb(self) -> Optional[float]:
        """Approximate download size in MB (10^6 bytes): ``params`` fp32 values, None when unknown."""
        return self.params * 4 / 1e6 if self.params else None


# The original's README (github.com/dbolya/yolact, commit 902073d, Sep 2025) links these
# repositories of the "yolact-2019-models" collection. It lists no hub copy for yolact_im400
# (never released as a file) nor for the Pascal SBD model (still a Google Drive link).
# sha256: not recorded (the hub could not be reached when this table was written); the hub's
# own sha256 (the LFS object id) is checked after every download.
ZOO: Dict[str, HubFile] = {e.name: e for e in [
    HubFile("yolact_resnet50", "dbolya/yolact-resnet50", "yolact_resnet50_54_800000.pth", 28.2, 42.5, 31218116),
    HubFile("yolact_darknet53", "dbolya/yolact-darknet53", "yolact_darknet53_54_800000.pth", 28.7, 40.0, 47818851),
    HubFile("yolact_base", "dbolya/yolact-base", "yolact_base_54_800000.pth", 29.8, 33.5, 50262519),
    HubFile("yolact_im400", None, "yolact_im400_54_800000.pth", 24.9, 45.3, 50262519,
            note="no hub copy: the original's README lists no download for it"),
    HubFile("yolact_im700", "dbolya/yolact-im700", "yolact_im700_54_800000.pth", 31.2, 23.6, 50262519),
    HubFile("yolact_plus_resnet50", "dbolya/yolact-plus-resnet50", "yolact_plus_resnet50_54_800000.pth",
            34.1, 33.5, 33819633),
    HubFile("yolact_plus_base", "dbolya/yolact-plus-base", "yolact_plus_base_54_800000.pth", 34.6, 27.3, 52676590),
    HubFile("yolact_resnet50_pascal", None, "yolact_resnet50_pascal_*.pth", None, None, 30787796,
            note="no hub copy: the original's README still links an expired Google Drive file "
                 "(Pascal SBD: 72.3 mask AP50, 56.2 AP70)"),
]}



def imagenet_files() -> Dict[str, HubFile]:
    """The ImageNet backbones training starts from, by backbone name: the ``imagenet`` files of
    the backbones table (:mod:`yolact.backbones`), in table order. Also ``hub.IMAGENET``."""
    return {b.name: HubFile(b.name, b.imagenet_repo, b.imagenet) for b in BACKBONES.values() if b.imagenet}


def __getattr__(name: str):
    # IMAGENET: read from the backbones table when asked, so rows registered later are in it
    if name == "IMAGENET":
        return imagenet_files()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _by_filename(name: str) -> Optional[HubFile]:
    """The zoo or ImageNet entry with this file name (entries with a hub copy only)."""
    return next((e for e in [*ZOO.values(), *imagenet_files().values()] if e.repo and e.filename == name), None)


def resolve_weights(weights: Union[str, os.PathLike]) -> Path:
    """A local checkpoint path for what the user passed as weights.

    ``weights``: a local path (returned unchanged if it exists), 'demo' (the built-in demo model), a zoo preset name
    (``yolact_base``), an official file name (``yolact_base_54_800000.pth``) or
    ``hf://owner/repo[@revision]/path/in/repo``. Hub files are downloaded into the hub's cache
    (the client's progress bar on a terminal; ``HF_HUB_DISABLE_PROGRESS_BARS=1`` hides it) and
    checked against the hub's sha256. Raises YolactError (one line) for a preset
    without hub copy, a name that is neither a file nor a model, a file missing on the hub,
    offline and not cached, or a download whose hash does not match.
    """
    text = os.fspath(weights)
    if text == "demo" and not os.path.isfile(text):  # the built-in demo model, in every verb (a demo/ folder is no file)
        from .config import DEMO_WEIGHTS

        if not DEMO_WEIGHTS.exists():
            raise YolactError(f"{DEMO_WEIGHTS}: the built-in demo model is missing from this install")
        return DEMO_WEIGHTS
    if os.path.exists(text):
        return Path(text)
    if text.startswith("hf://"):
        repo, revision, filename, repo_type = parse_hf_url(text)
        return fetch(repo, filename, revision=revision, repo_type=repo_type, label=text)
    entry = ZOO.get(text) or _by_filename(text)
    if entry is not None:
        if entry.repo is None:
            raise YolactError(f"{text}: {entry.note}; pass a local weights file")
        return fetch_entry(entry, label=text)
    if text in PRESETS:
        raise YolactError(f"{text}: a light preset without official weights (train it with "
                          f"`yolact train --config {text}`); zoo models: {', '.join(available())}")
    if os.sep not in text and "/" not in text and not Path(text).suffix:
        raise YolactError(f"{text}: no such file, and not a model name; demo (built in) or a zoo model: "
                          f"{', '.join(available())}")
    known = _by_filename(Path(text).name)
    if known is not None:  # e.g. the original's weights/yolact_base_54_800000.pth, not downloaded yet
        name = known.name if known.name in ZOO else known.filename
        raise YolactError(f"{text}: no such file; pass '{name}' instead to fetch {known.filename} from the "
                          "Hugging Face Hub, or download it there by hand")
    return Path(text)  # a path that does not exist: the loader names it


def available() -> List[str]:
    """Preset names with weights on the hub."""
    return [name for name, e in ZOO.items() if e.repo]


def parse_hf_url(url: str):
    """``hf://[datasets/|spaces/]owner/repo[@revision]/path`` -> (repo_id, revision, path, repo_type)."""
    rest = url[len("hf://"):]
    repo_type = "model"
    for prefix, kind in (("datasets/", "dataset"), ("spaces/", "space"), ("models/", "model")):
        if rest.startswith(prefix):
            rest, repo_type = rest[len(prefix):], kind
            break
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise YolactError(f"{url}: expected hf://owner/repo/path/to/file.pth (optionally owner/repo@revision/...)")
    owner, repo, path = parts[0], parts[1], "/".join(parts[2:])
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return f"{owner}/{repo}", revision, path, repo_type


def imagenet_file(cfg: Union[str, YolactConfig]) -> Optional[HubFile]:
    """The ImageNet backbone file the original's training starts from (None: light presets)."""
    cfg = PRESETS[cfg] if isinstance(cfg, str) else cfg
    return imagenet_files().get(cfg.backbone)


def resolve_backbone_weights(spec: Optional[str], cfg: YolactConfig, finetune: bool = False) -> Optional[Path]:
    """The ImageNet backbone file for training, or None to start from random initialisation.

    ``spec``: None (default: the preset's ImageNet file for official backbones, as the
    original; nothing when fine-tuning from other weights or for the light presets),
    'imagenet', 'none', a local path or an ``hf://`` URL.
    """
    entry = imagenet_file(cfg)
    if spec is None:
        if finetune or entry is None:
            return None
        spec = "imagenet"
    if spec.lower() == "none":
        return None
    if spec.lower() == "imagenet":
        if entry is None:
            raise YolactError(f"--backbone-weights imagenet: no ImageNet file for the {cfg.backbone} backbone of "
                              f"'{cfg.name}' in {INITIAL_WEIGHTS_REPO}; pass a file or --backbone-weights none")
        return fetch_entry(entry, label=f"{entry.filename} (ImageNet backbone of {cfg.name})",
                           pass_hint=f"--backbone-weights path/to/{entry.filename}, or pass --backbone-weights none "
                                     "to start from random weights")
    return resolve_weights(spec)


def cached_file(entry: HubFile) -> Optional[Path]:
    """The cached copy of a zoo file (main revision), or None. No network."""
    if entry.repo is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(entry.repo, entry.filename)
    return Path(path) if isinstance(path, str) else None


def download_url(repo: str, filename: str, revision: Optional[str] = None, repo_type: str = "model") -> str:
    """The address to download a hub file by hand (honours HF_ENDPOINT)."""
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, filename, revision=revision, repo_type=None if repo_type == "model" else repo_type)


def fetch_entry(entry: HubFile, label: Optional[str] = None, pass_hint: Optional[str] = None) -> Path:
    """:func:`fetch` for a zoo entry (checked against its recorded sha256, if any); returns the
    cache path. Raises YolactError on a failed or corrupted download."""
    return fetch(entry.repo, entry.filename, label=label or entry.name, expected_sha256=entry.sha256,
                 pass_hint=pass_hint)


def fetch(repo: str, filename: str, revision: Optional[str] = None, repo_type: str = "model",
          label: Optional[str] = None, expected_sha256: Optional[str] = None,
          pass_hint: Optional[str] = None) -> Path:
    """Download one hub file into the hub's cache (or find it there) and verify fresh downloads.

    Returns the cache path (``.../snapshots/<commit>/<filename>``). ``label`` names the model
    in error messages; ``pass_hint`` tells the user how to pass a hand-downloaded file.
    """
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    except ImportError:  # a core dependency; only a broken install lands here
        raise YolactError(f"{label or filename}: fetching weights by name needs huggingface_hub "
                          "(pip install huggingface_hub), or pass a local file") from None
    label = label or f"{repo}/{filename}"
    url = download_url(repo, filename, revision, repo_type)
    hint = pass_hint or f"its path instead of '{label}' (e.g. --weights path/to/{Path(filename).name})"
    before = try_to_load_from_cache(repo, filename, revision=revision, repo_type=repo_type)
    before_blob = os.path.realpath(before) if isinstance(before, str) else None
    if not constants.HF_HUB_OFFLINE and not _resolves(constants.ENDPOINT):
        # No network at all: the client would retry for ~25 s, printing each retry. Say it now
        # (or use the cached copy, as the client would).
        if before_blob is not None:
            return Path(before)
        raise YolactError(f"{label}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                          f"{constants.ENDPOINT} cannot be reached (its name does not resolve: offline?); "
                          f"download {url} by hand and pass {hint}")
    if before_blob is None and not constants.HF_HUB_OFFLINE:
        print(f"downloading {label}: {url} -> {constants.HF_HUB_CACHE}", file=sys.stderr, flush=True)
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings: the one line below says what failed
    try:
        path = hf_hub_download(repo, filename, revision=revision, repo_type=repo_type)
    except Exception as e:  # the hub client's many error types: each becomes one line below
        raise _hub_error(e, label, repo, filename, url, hint) from None
    finally:
        hub_log.setLevel(level)
    if os.path.realpath(path) != before_blob:
        verify_download(Path(path), repo, filename, revision, repo_type, expected_sha256)
    return Path(path)


def _resolves(endpoint: str) -> bool:
    """Whether the endpoint's host name resolves (no network: it does not, at once)."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(endpoint).hostname
    if not host:
        return True
    try:
        socket.getaddrinfo(host, None)
        return True
    except (socket.gaierror, UnicodeError, OSError):
        return False


def verify_download(path: Path, repo: str, filename: str, revision: Optional[str] = None,
                    repo_type: str = "model", expected_sha256: Optional[str] = None, fresh: bool = True) -> None:
    """Hash a cached hub file against the hub's hash (and ``expected_sha256``); on mismatch remove
    it from the cache and raise YolactError naming the file. ``fresh``: just downloaded (the
    message blames the transfer) or found in the cache."""
    blob = Path(os.path.realpath(path))
    etag = blob.name if blob.parent.name == "blobs" else _etag_from_hub(repo, filename, revision, repo_type)
    checks = []
    if expected_sha256:
        checks.append(("sha256 recorded in the zoo", "sha256", expected_sha256.lower()))
    if etag and _SHA256.match(etag):
        checks.append(("hub's sha256", "sha256", etag))
    elif etag and _GIT_SHA1.match(etag):
        checks.append(("hub's git blob sha1", "git-sha1", etag))
    if not checks:
        print(f"warning: {filename}: the hub sent no sha256 for this file (ETag {etag!r}); not verified",
              file=sys.stderr)
        return
    digests = {kind: _digest(blob, kind) for kind in {kind for _, kind, _ in checks}}
    for what, kind, expected in checks:
        if digests[kind] != expected:
            _remove_from_cache(Path(path), blob)
            raise YolactError(f"{filename}: {'downloaded' if fresh else 'cached'} file does not match the {what} "
                              f"({expected[:16]}..., got {digests[kind][:16]}...): corrupted "
                              f"{'in transfer' if fresh else 'on disk or by the tool that fetched it'}; removed it "
                              "from the cache, run again to download it again")


def _digest(path: Path, kind: str) -> str:
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1()
    if kind == "git-sha1":  # git's object id: sha1 of "blob <size>\0" + content
        h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _etag_from_hub(repo, filename, revision, repo_type) -> Optional[str]:
    """The hub's ETag of a file when the cache holds copies, not links to named blobs (Windows
    without symlinks). One HEAD request."""
    from huggingface_hub import get_hf_file_metadata

    try:
        return get_hf_file_metadata(download_url(repo, filename, revision, repo_type)).etag
    except Exception:
        return None


def _remove_from_cache(pointer: Path, blob: Path) -> None:
    for p in (pointer, blob):
        try:
            if p.is_symlink() or p.exists():
                p.unlink()
        except OSError:
            pass


def _hub_error(e: Exception, label: str, repo: str, filename: str, url: str, hint: str) -> YolactError:
    """One line for a failed hub download: what is missing, and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,  # all client versions
                                       LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    cause = e.__cause__ if isinstance(e, LocalEntryNotFoundError) else None
    status = getattr(getattr(cause if isinstance(cause, HfHubHTTPError) else e, "response", None), "status_code", None)
    if isinstance(e, LocalEntryNotFoundError) and not isinstance(cause, HfHubHTTPError):
        if constants.HF_HUB_OFFLINE:
            why = "HF_HUB_OFFLINE is set"
        elif cause is None or isinstance(cause, (ConnectionError, TimeoutError)) or "Connect" in type(cause).__name__ \
                or "Timeout" in type(cause).__name__:
            why = f"{constants.ENDPOINT} cannot be reached ({type(cause).__name__ if cause else 'no connection'})"
        else:  # e.g. a server that does not answer as a hub (no X-Repo-Commit / ETag)
            detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
            why = f"{constants.ENDPOINT} gave no usable answer ({type(cause).__name__}: {detail})"
        return YolactError(f"{label}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}; "
                           f"download {url} by hand and pass {hint}")
    if isinstance(e, GatedRepoError):
        return YolactError(f"{label}: {repo} is gated: accept its terms on the hub and log in (hf auth login or HF_TOKEN)")
    if isinstance(e, RepositoryNotFoundError):
        return YolactError(f"{label}: repository {repo} not found on {constants.ENDPOINT} (or private: "
                           "log in with hf auth login or set HF_TOKEN)")
    if isinstance(e, RevisionNotFoundError):
        return YolactError(f"{label}: {repo} has no such revision ({url})")
    if isinstance(e, EntryNotFoundError) or status == 404:
        return YolactError(f"{label}: {repo} has no file {filename} (HTTP 404 for {url})")
    if status is not None:
        return YolactError(f"{label}: the hub answered HTTP {status} for {url}; try again later, or download it "
                           f"by hand and pass {hint}")
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return YolactError(f"{label}: download of {filename} from {repo} failed ({type(e).__name__}: {first})")
