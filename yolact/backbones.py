"""The backbones table: one row per backbone a config may name (timm's registry). Everything that
depends on the backbone reads its row: the network builder (:mod:`yolact.model.backbones`), the
input normalisation (:attr:`yolact.config.YolactConfig.normalize`), the config guessed from a
checkpoint's tensor shapes (:func:`yolact.checkpoint.infer_config_from_shapes`), the ImageNet
file training starts from (:mod:`yolact.hub`) and how that file's keys map onto the network
(``key_rule``, used by training's ``load_backbone_weights``).

The table is data in the lowest layer, because the config and the hub (layer 0) read it; the
builder is a ``"module:function"`` string resolved by ``yolact.model.backbones``. Adding a
backbone = its builder (any module) + one :func:`register_backbone` call (or row below).
Builder contract: ``builder(dcn_layers=..., dcn_interval=..., width=..., **row.options)`` -> an
``nn.Module`` whose ``forward`` returns the stages' feature maps and whose ``channels`` lists
their channel counts (the model uses the last three).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Union

INITIAL_WEIGHTS_REPO = "dbolya/yolact-initial-weights"

StateDict = Mapping[str, object]  # key -> tensor (only ``.shape`` is read)


def imagenet_key(k: str) -> str:
    """torchvision / original ImageNet names -> our backbone names (layer1.0 -> layers.0.0); a
    ``module.`` (DataParallel) and a ``backbone.`` prefix are dropped."""
    if k.startswith("module."):
        k = k[len("module."):]
    if k.startswith("backbone."):
        k = k[len("backbone."):]
    if k.startswith("layer") and not k.startswith("layers."):
        n, rest = k[len("layer"):].split(".", 1)
        k = f"layers.{int(n) - 1}.{rest}"
    return k


@dataclass(frozen=True)
class Backbone:
    """One backbone: how it is built, fed, initialised and recognised in a checkpoint."""
    name: str                        # YolactConfig.backbone
    builder: Union[str, Callable]    # "module:function" (see the module docstring), or the function
    normalize: str                   # input normalisation: 'imagenet' (mean/std) or 'unit' (/ 255)
    description: str = ""
    options: Mapping[str, object] = field(default_factory=dict)  # the builder's own arguments
    imagenet: Optional[str] = None   # ImageNet weights file in imagenet_repo (None: train from scratch)
    imagenet_repo: str = INITIAL_WEIGHTS_REPO
    key_rule: Callable[[str], str] = imagenet_key  # an ImageNet/original file's key -> our backbone's key
    # (state dict, presets) -> the preset of a checkpoint holding this backbone, None if it does not
    from_shapes: Optional[Callable[[StateDict, Mapping], Optional[str]]] = None


BACKBONES: Dict[str, Backbone] = {}


def register_backbone(row: Backbone, replace: bool = False) -> Backbone:
    """Add a row; returns it. Raises ValueError for a taken name (unless ``replace``) or an
    unknown normalisation."""
    if row.name in BACKBONES and not replace:
        raise ValueError(f"backbone '{row.name}' is already registered")
    if row.normalize not in NORMALIZATIONS:
        raise ValueError(f"backbone '{row.name}': unknown normalisation '{row.normalize}' "
                         f"({', '.join(NORMALIZATIONS)})")
    BACKBONES[row.name] = row
    return row


def unregister_backbone(name: str) -> None:
    """Remove a row added by :func:`register_backbone` (tests, plugins)."""
    BACKBONES.pop(name, None)


NORMALIZATIONS = ("imagenet", "unit")


def normalization(name: str) -> str:
    """The input normalisation of a backbone ('imagenet' for a name not in the table)."""
    row = BACKBONES.get(name)
    return row.normalize if row is not None else "imagenet"


# ---------------------------------------------------------------- checkpoint shape signatures
def _stage_blocks(sd: StateDict, stage: int) -> int:
    prefix = f"backbone.layers.{stage}."
    return len({int(k.split(".")[3]) for k in sd if k.startswith(prefix)})


def _has_dcn(sd: StateDict) -> bool:
    return any("conv_offset_mask" in k for k in sd)


def _basic_blocks(sd: StateDict) -> bool:
    first = sd.get("backbone.layers.0.0.conv1.weight")
    return first is not None and first.shape[-1] == 3  # BasicBlock: 3x3 conv1 (Bottleneck: 1x1)


def _darknet53(sd: StateDict, presets: Mapping) -> Optional[str]:
    return "yolact_darknet53" if any(k.startswith("backbone._preconv") for k in sd) else None


def _resnet18(sd: StateDict, presets: Mapping) -> Optional[str]:
    if not _basic_blocks(sd) or _stage_blocks(sd, 2) != 2:
        return None
    stem = sd.get("backbone.conv1.weight")
    slim = presets["yolact_resnet18_slim"]
    return slim.name if stem is not None and stem.shape[0] == slim.backbone_width else "yolact_resnet18"


def _resnet101(sd: StateDict, presets: Mapping) -> Optional[str]:
    if _basic_blocks(sd) or _stage_blocks(sd, 2) < 23:
        return None
    return "yolact_plus_base" if _has_dcn(sd) else "yolact_base"


def _resnet50(sd: StateDict, presets: Mapping) -> Optional[str]:
    # also what a state dict with no recognisable backbone is read as (see preset_from_shapes)
    return "yolact_plus_resnet50" if _has_dcn(sd) else "yolact_resnet50"


def preset_from_shapes(sd: StateDict, presets: Mapping) -> str:
    """The preset name of a state dict: the first row (in table order; ResNet-50, the fallback
    for a state dict no row recognises, last) whose ``from_shapes`` knows it."""
    fallback = BACKBONES.get("resnet50")
    for row in BACKBONES.values():
        if row.from_shapes is not None and row is not fallback:
            name = row.from_shapes(sd, presets)
            if name is not None:
                return name
    return _resnet50(sd, presets)


for _row in (
    Backbone("resnet101", "yolact.model.backbones:resnet", "imagenet", "ResNet-101 (torchvision names, optional DCNv2)",
             options={"block": "bottleneck", "depths": (3, 4, 23, 3)}, imagenet="resnet101_reducedfc.pth",
             from_shapes=_resnet101),
    Backbone("resnet50", "yolact.model.backbones:resnet", "imagenet", "ResNet-50 (torchvision names, optional DCNv2)",
             options={"block": "bottleneck", "depths": (3, 4, 6, 3)}, imagenet="resnet50-19c8e357.pth",
             from_shapes=_resnet50),
    Backbone("resnet18", "yolact.model.backbones:resnet", "imagenet",
             "ResNet-18 (basic blocks; this project's, for CPU training)",
             options={"block": "basic", "depths": (2, 2, 2, 2)}, from_shapes=_resnet18),
    Backbone("darknet53", "yolact.model.backbones:darknet", "unit", "DarkNet-53 (the original's, input / 255)",
             options={"blocks": (1, 2, 8, 8, 4)}, imagenet="darknet53.pth", from_shapes=_darknet53),
):
    register_backbone(_row)
del _row
