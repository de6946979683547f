"""Checkpoint files: the official ``<config>_<epoch>_<iter>.pth`` state dicts and the project's
own self-describing files (config + class names + weights). Always ``weights_only=True``.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from .backbones import preset_from_shapes
from .config import PRESETS, YolactConfig, get_config
from .errors import YolactError

FORMAT_TAG = "yolact-py/1"
_OFFICIAL_NAME = re.compile(r"^(?P<config>.+?)_(?P<epoch>\d+)_(?P<iter>\d+)(?:_interrupt)?$")


_IMAGE_MAGIC = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image", b"GIF8": "a GIF image",
                b"BM": "a BMP image", b"RIFF": "a RIFF file (WebP image, WAV, AVI)"}


def _not_a_checkpoint(p: Path) -> Optional[str]:
    """What a file plainly is when it cannot be a checkpoint (a zip archive, or a pickle starting
    0x80): 'a text file', 'a JPEG image', ...; None when it may be one."""
    with open(p, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK", b"\x80")):
        return None
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.strip() and all(c.isprintable() or c in "\r\n\t" for c in text[:200]):
        return "a text file: " + repr(text.strip().splitlines()[0][:40])
    return None


def read_checkpoint(path: Union[str, os.PathLike]) -> Dict:
    """torch.load with weights_only=True and one-line errors naming the file."""
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such checkpoint file")
    if p.is_dir():
        raise YolactError(f"{p}: is a directory, expected a checkpoint file")
    if p.stat().st_size == 0:
        raise YolactError(f"{p}: empty file, not a checkpoint")
    kind = _not_a_checkpoint(p)
    if kind:  # a text file or an image passed as --weights: say so rather than a pickle error
        raise YolactError(f"{p}: not a PyTorch checkpoint ({kind})")
    try:
        with warnings.catch_warnings():
            # Random bytes read as a pickle "protocol"; the error below says what is wrong.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", str(e))
        if m:
            raise YolactError(f"{p}: refused to load: the file holds pickled code ({m.group(1)}), "
                              "not only tensors (loaded with weights_only=True)") from e
        raise YolactError(f"{p}: not a PyTorch checkpoint (unreadable pickle data)") from e
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise YolactError(f"{p}: not a PyTorch checkpoint ({type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else 'unreadable'})") from e
    except MemoryError:
        raise
    except Exception as e:
        # Corrupt pickle data makes the weights-only unpickler fail in arbitrary ways
        # (IndexError, KeyError, ...): every one of them means the same thing to the user.
        raise YolactError(f"{p}: not a PyTorch checkpoint (corrupt data: {type(e).__name__})") from e
    if not isinstance(obj, dict):
        raise YolactError(f"{p}: expected a state dict, found {type(obj).__name__}")
    return obj


def split_checkpoint(obj: Dict, path: str) -> Tuple[Dict[str, torch.Tensor], Optional[Dict]]:
    """-> (state_dict, project metadata or None for an official file)."""
    if obj.get("format") == FORMAT_TAG:
        return obj["model"], obj
    if "model" in obj and isinstance(obj["model"], dict) and "config" in obj:
        return obj["model"], obj
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise YolactError(f"{path}: not a state dict (non-tensor entries: {', '.join(map(str, bad[:3]))})")
    return obj, None


def infer_config_from_name(path: Union[str, os.PathLike]) -> Optional[str]:
    """The preset name in an official file name (``yolact_base_54_800000.pth`` -> ``yolact_base``,
    also ``..._interrupt`` and a bare ``yolact_base.pth``), or None when the stem names no preset."""
    m = _OFFICIAL_NAME.match(Path(path).stem)
    if m and m.group("config") in PRESETS:
        return m.group("config")
    return Path(path).stem if Path(path).stem in PRESETS else None


def infer_config_from_shapes(sd: Dict[str, torch.Tensor]) -> YolactConfig:
    """Guess the preset from tensor shapes: the backbone by the shape signatures of the backbones
    table (:func:`yolact.backbones.preset_from_shapes`: depth, block kind, DCN), then anchors
    and classes."""
    name = preset_from_shapes(sd, PRESETS)
    conf = sd.get("prediction_layers.0.conf_layer.weight")
    bbox = sd.get("prediction_layers.0.bbox_layer.weight")
    cfg = PRESETS[name]
    if conf is not None and bbox is not None:
        anchors = bbox.shape[0] // 4
        classes = conf.shape[0] // anchors - 1
        if classes == 20 and name == "yolact_resnet50":
            cfg = PRESETS["yolact_resnet50_pascal"]
        elif classes != cfg.num_classes:
            cfg = get_config(name, num_classes=classes)
    return cfg


def apply_legacy_rules(sd: Dict[str, torch.Tensor], cfg: YolactConfig) -> Dict[str, torch.Tensor]:
    """The original loader's clean-up: old ``backbone.layerN`` names and extra FPN
    downsample layers of v1.0 weights are dropped."""
    out = {}
    for k, v in sd.items():
        if k.startswith("backbone.layer") and not k.startswith("backbone.layers"):
            continue
        if k.startswith("fpn.downsample_layers.") and int(k.split(".")[2]) >= cfg.num_downsample:
            continue
        out[k] = v
    return out


class KeyReport(dict):
    """missing / unexpected / mismatched key lists from comparing a state dict to a model."""

    def ok(self) -> bool:
        """True when no key is missing, unexpected or of another shape."""
        return not (self["missing"] or self["unexpected"] or self["mismatched"])

    def summary(self, limit: int = 6) -> str:
        """One line such as ``2 missing: a, b; 1 mismatched: c (81,)->(3,)``, at most ``limit``
        keys per kind; an empty string when :meth:`ok`."""
        parts = []
        for kind in ("missing", "unexpected", "mismatched"):
            keys = self[kind]
            if keys:
                shown = ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
                parts.append(f"{len(keys)} {kind}: {shown}")
        if (any(k.endswith(".running_mean") for k in self["missing"]) and self["unexpected"]
                and all(k.endswith(".bias") for k in self["unexpected"])):
            # BatchNorm statistics gone and convolution biases come: TorchPredictor.set_precision's folding
            parts.append("these weights look converted for inference (BatchNorm folded into the convolutions: "
                         "a model at precision fp32-fused, bf16 or fp16): save the model loaded with precision='fp32'")
        return "; ".join(parts)


def compare_keys(model: torch.nn.Module, sd: Dict[str, torch.Tensor]) -> KeyReport:
    """Compare ``sd`` with ``model.state_dict()`` by name and shape; raises nothing. Mismatched
    entries read ``"<key> <checkpoint shape>-><model shape>"``."""
    own = model.state_dict()
    return KeyReport(
        missing=[k for k in own if k not in sd],
        unexpected=[k for k in sd if k not in own],
        mismatched=[f"{k} {tuple(sd[k].shape)}->{tuple(own[k].shape)}" for k in own
                    if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)],
    )


def save_checkpoint(path: Union[str, os.PathLike], model, extra: Optional[Dict] = None) -> None:
    """Write a self-describing checkpoint atomically (temp file in the same folder + rename).
    Raises YolactError for a model converted for inference (:meth:`TorchPredictor.set_precision`:
    BatchNorm folded away, so its weights fit no preset)."""
    _check_unconverted(model)
    state = {"format": FORMAT_TAG, "config": model.cfg.to_dict(), "model": model.state_dict()}
    if extra:
        state.update(extra)
    atomic_save(state, path)


def save_compact(path: Union[str, os.PathLike], model) -> None:
    """Inference-only checkpoint: config + weights stored as fp16 (halves the size; loading
    casts back to the model's dtype). Integer buffers stay as they are. Raises YolactError for a
    model converted for inference (BatchNorm folded)."""
    _check_unconverted(model)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    atomic_save({"format": FORMAT_TAG, "config": model.cfg.to_dict(), "model": sd}, path)


def _check_unconverted(model) -> None:
    precision = getattr(model, "precision", "fp32")
    if precision != "fp32":
        raise YolactError(f"this model runs at precision '{precision}' (BatchNorm folded into the convolutions), "
                          "so its weights would fit no preset: save the model loaded with precision='fp32'")


def atomic_save(obj, path: Union[str, os.PathLike]) -> None:
    """torch.save to a temp file in the target folder, fsync, then rename over ``path``, so a
    crash never leaves a half-written file; creates parent folders. OSError propagates."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=str(p.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def stored_config(path: Union[str, os.PathLike], d: Dict) -> YolactConfig:
    """The config a file stores (its ``"config"`` dict, :meth:`YolactConfig.to_dict`). Raises
    YolactError naming the file for a config the package refuses (an unknown field, a value
    out of range, ids that do not match the classes), never a bare ValueError."""
    try:
        return YolactConfig.from_dict(d)
    except (ValueError, TypeError, KeyError) as e:
        raise YolactError(f"{path}: its stored config is not valid: {e}") from None


def resolve_config(path: Union[str, os.PathLike], sd: Dict[str, torch.Tensor], meta: Optional[Dict],
                   config: Union[None, str, YolactConfig]) -> YolactConfig:
    """The config for a checkpoint: ``config`` if given (for an official file, a preset name
    takes the class count from the weights' shapes), else the file's stored config, else the
    preset in its file name, else a guess from tensor shapes. Raises YolactError for an unknown
    preset name."""
    if isinstance(config, YolactConfig):
        return config
    if isinstance(config, str):
        try:
            cfg = get_config(config)
        except KeyError as e:
            raise YolactError(f"{path}: {e.args[0]}") from None
        guessed = infer_config_from_shapes(sd) if meta is None else None
        if guessed is not None and guessed.num_classes != cfg.num_classes:
            cfg = cfg.replace(class_names=guessed.class_names)
        return cfg
    if meta is not None:
        return stored_config(path, meta["config"])
    name = infer_config_from_name(path)
    return get_config(name) if name else infer_config_from_shapes(sd)


def load_model(path: Union[str, os.PathLike], config: Union[None, str, YolactConfig] = None,
               device: Union[None, str, torch.device] = None, strict: bool = True, build=None):
    """Build the model for a checkpoint and load it, in eval mode; any key problem is an error
    naming keys. ``path``: a file, or a zoo name / ``hf://`` URL fetched by
    :func:`yolact.hub.resolve_weights`. ``build``: the class to build from the config (default
    the network, :class:`~yolact.model.yolact.Yolact`). Returns (model, KeyReport)."""
    from .hub import resolve_weights
    from .model.yolact import Yolact

    path = resolve_weights(path)
    obj = read_checkpoint(path)
    sd, meta = split_checkpoint(obj, str(path))
    cfg = resolve_config(path, sd, meta, config)
    sd = apply_legacy_rules(sd, cfg)
    model = (build or Yolact)(cfg)
    report = compare_keys(model, sd)
    if strict and not report.ok():
        raise YolactError(f"{path}: checkpoint does not fit config '{cfg.name}': {report.summary()}")
    model.load_state_dict(sd, strict=strict)
    model.eval()
    if device is not None:
        model.to(device)
    return model, report
