"""Typed configuration: one frozen dataclass per model, named presets, no global state.

Preset names follow the official checkpoint file stems (``yolact_base_54_800000.pth`` ->
``yolact_base``). ``YolactConfig.replace(...)`` returns a modified copy.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .backbones import normalization

# Inference precisions accepted by yolact.load / --precision (int8 runs through ONNX Runtime).
PRECISIONS = ("fp32", "fp32-fused", "bf16", "fp16", "int8")
# The original's backbones: a model built on one of them predicts, by default, with the
# original's fp32 arithmetic, bit for bit (see default_precision).
ORIGINAL_BACKBONES = ("resnet50", "resnet101", "darknet53")

COCO_CLASSES: Tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
# COCO category ids of the 80 classes, in order (the official label map).
COCO_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90,
)
PASCAL_CLASSES: Tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# ImageNet statistics in BGR order, as the original uses them.
# The built-in demo model (yolact_resnet18_slim trained on the synthetic shapes set).
DEMO_WEIGHTS = Path(__file__).parent / "assets" / "yolact_resnet18_slim_shapes.pt"
MEANS_BGR = (103.94, 116.78, 123.68)
STD_BGR = (57.38, 57.12, 58.40)

_BASE_SCALES = (24, 48, 96, 192, 384)


# Inference options of a model (YolactConfig.mask_score, .mask_interpolation); the first is the original's.
MASK_SCORES = ("class", "maskness")
MASK_INTERPOLATIONS = ("bilinear", "bicubic")


def check_mask_options(mask_score: str, mask_interpolation: str) -> None:
    """Raises ValueError for a mask score or interpolation the package does not know."""
    for name, value, known in (("mask_score", mask_score, MASK_SCORES),
                               ("mask_interpolation", mask_interpolation, MASK_INTERPOLATIONS)):
        if value not in known:
            raise ValueError(f"{name} '{value}': expected one of {', '.join(known)}")


@dataclass(frozen=True)
class YolactConfig:
    """Everything that defines one model: network layout, anchors, inference thresholds and the
    training schedule and loss weights (the original's ``data/config.py``, one frozen dataclass).
    Sizes are in pixels of the square network input (``max_size``); build variants with
    :meth:`replace` or :func:`get_config`."""
    name: str
    # --- network
    backbone: str = "resnet101"  # a row of yolact.backbones.BACKBONES: resnet18 | resnet50 | resnet101 | darknet53
    backbone_width: int = 64  # ResNet stem channels (stages: x1, x2, x4, x8); 64 is standard
    # Per ResNet stage: how many of the last blocks use DCNv2, and every how many blocks.
    dcn_layers: Tuple[int, int, int, int] = (0, 0, 0, 0)
    dcn_interval: int = 1
    max_size: int = 550
    class_names: Tuple[str, ...] = COCO_CLASSES
    # The data's category id of each class, in class order (a COCO file's ids, e.g. (3, 7, 12)),
    # stored at training time; None: not known (see label_category_ids for the fallback).
    category_ids: Optional[Tuple[int, ...]] = None
    fpn_channels: int = 256
    num_downsample: int = 2
    mask_dim: int = 32
    # Anchors: one list of scales (pixels at max_size) per FPN level, aspect ratios shared.
    pred_scales: Tuple[Tuple[float, ...], ...] = tuple((s,) for s in _BASE_SCALES)
    aspect_ratios: Tuple[float, ...] = (1.0, 0.5, 2.0)
    # The v1 configs carry a bug for backwards compatibility: every anchor is a square.
    use_square_anchors: bool = True
    use_maskiou: bool = False
    maskiou_channels: Tuple[int, ...] = (8, 16, 32, 64, 128)
    # --- inference
    nms_conf_thresh: float = 0.05
    nms_thresh: float = 0.5
    nms_top_k: int = 200
    max_num_detections: int = 100
    # Opt-in departures at inference, for models trained with ``--recipe fast`` (it sets them;
    # the official configs keep the original's 'class' and 'bilinear'). mask_score 'maskness':
    # each mask score is the class score x the mean soft value inside its binary mask (SOLOv2's
    # "maskness"), so sharp masks rank above vague ones; boxes keep the class score (with
    # YOLACT++'s mask-IoU net both factors apply: class score x maskness x predicted IoU).
    # mask_interpolation 'bicubic': the soft masks go to the image bicubically, not bilinearly.
    mask_score: str = "class"
    mask_interpolation: str = "bilinear"
    # --- training
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    gamma: float = 0.1
    lr_steps: Tuple[int, ...] = (280_000, 600_000, 700_000, 750_000)
    max_iter: int = 800_000
    warmup_init: float = 1e-4
    warmup_until: int = 500
    batch_size: int = 8
    bbox_alpha: float = 1.5
    conf_alpha: float = 1.0
    mask_alpha: float = 6.125
    semantic_alpha: float = 1.0
    maskiou_alpha: float = 25.0
    pos_iou_thresh: float = 0.5
    neg_iou_thresh: float = 0.4
    crowd_iou_thresh: float = 0.7
    ohem_negpos_ratio: int = 3
    masks_to_train: int = 100
    discard_mask_area: int = 5 * 5  # YOLACT++ only: GT masks under this proto area skip mask-IoU
    # Opt-in departure: the original trains the prototypes and coefficients through the
    # mask-IoU term too; True detaches the re-scoring net's input so that term trains only
    # the re-scoring net.
    maskiou_detach_input: bool = False
    # After the training resize, boxes whose width or height is not above min_box_size are
    # dropped. The original compares it with the size IN PIXELS (so 4/550 drops only boxes of
    # almost zero size); min_box_size_relative=True compares fractions of the image instead.
    min_box_size: float = 4 / 550
    min_box_size_relative: bool = False
    # The original's random crop never applies its minimum-IoU modes (its author found that
    # enforcing them halved mAP after 8k iterations); True enforces them.
    crop_enforce_min_iou: bool = False
    # How training masks are resized to the input size. 'bilinear' is the original's (each
    # object's 0/1 mask resized as uint8, so a pixel is kept at >= 0.5 coverage: thin structures
    # such as wires can lose every pixel); 'area' keeps every output pixel with any coverage
    # when shrinking (masks grow by up to one pixel at their border).
    mask_resize: str = "bilinear"
    augment_photometric: bool = True
    augment_expand: bool = True
    augment_crop: bool = True
    augment_mirror: bool = True

    # ------------------------------------------------------------------ derived
    @property
    def num_classes(self) -> int:
        """Foreground classes (the network predicts one more logit for background)."""
        return len(self.class_names)

    @property
    def normalize(self) -> str:
        """The input normalisation of the backbone's row (:mod:`yolact.backbones`): 'imagenet'
        (mean/std) for ResNets, 'unit' (divide by 255) for DarkNet."""
        return normalization(self.backbone)

    @property
    def anchors_per_location(self) -> int:
        """Anchors per feature-map cell: scales per level x aspect ratios (YOLACT 3, YOLACT++ 9)."""
        return len(self.pred_scales[0]) * len(self.aspect_ratios)

    def __post_init__(self):
        check_mask_options(self.mask_score, self.mask_interpolation)
        if self.category_ids is not None and len(self.category_ids) != len(self.class_names):
            raise ValueError(f"category_ids has {len(self.category_ids)} ids for {len(self.class_names)} classes")

    def label_category_ids(self) -> Tuple[int, ...]:
        """The category id written for each 0-based class index (``category_id`` in every JSON
        and COCO output): the data's ids stored at training time (:attr:`category_ids`); else,
        for the 80 COCO classes in COCO's order (official weights), COCO's ids (1..90 with
        gaps); else the class index + 1."""
        if self.category_ids is not None:
            return tuple(int(c) for c in self.category_ids)
        if tuple(self.class_names) == COCO_CLASSES:
            return COCO_CATEGORY_IDS
        return tuple(range(1, len(self.class_names) + 1))

    def replace(self, **changes) -> "YolactConfig":
        """A copy with the given fields changed (``class_names`` becomes a tuple); an unknown
        field name raises TypeError. New ``class_names`` without ``category_ids`` drop the old
        ids (they belonged to the old classes)."""
        if "class_names" in changes:
            changes["class_names"] = tuple(changes["class_names"])
            if "category_ids" not in changes and changes["class_names"] != self.class_names:
                changes["category_ids"] = None
        if changes.get("category_ids") is not None:
            changes["category_ids"] = tuple(int(c) for c in changes["category_ids"])
        return dataclasses.replace(self, **changes)

    def with_input_size(self, size: Optional[int]) -> "YolactConfig":
        """The same model at another input size; anchor scales follow it, as the original's
        im400/im700 presets."""
        if size is None or size == self.max_size:
            return self
        f = size / self.max_size
        return self.replace(max_size=size, pred_scales=tuple(tuple(s * f for s in lv) for lv in self.pred_scales))

    def to_dict(self) -> Dict:
        """JSON-friendly dict of every field (tuples become lists), as stored in checkpoints."""
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Dict) -> "YolactConfig":
        """Inverse of :meth:`to_dict` (lists become tuples); missing fields other than ``name``
        take their defaults. Raises ValueError naming unknown fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")

        def tup(v):
            return tuple(tup(x) for x in v) if isinstance(v, (list, tuple)) else v

        return cls(**{k: tup(v) for k, v in d.items()})


def _scaled(size: int) -> Tuple[Tuple[float, ...], ...]:
    # im400/im700 scale the anchors with the input size, truncating to int as the original.
    return tuple((int(s / 550 * size),) for s in _BASE_SCALES)


_PLUS_SCALES = tuple(tuple(s * 2 ** (j / 3.0) for j in range(3)) for s in _BASE_SCALES)

_yolact_base = YolactConfig(name="yolact_base")
_yolact_plus = _yolact_base.replace(
    name="yolact_plus_base",
    dcn_layers=(0, 4, 23, 3),
    dcn_interval=3,
    pred_scales=_PLUS_SCALES,
    use_square_anchors=False,
    use_maskiou=True,
)
_yolact_resnet50 = _yolact_base.replace(name="yolact_resnet50", backbone="resnet50")

# Light preset for CPU training: ResNet-18, narrow FPN, 320 px.
_yolact_resnet18 = _yolact_base.replace(
    name="yolact_resnet18",
    backbone="resnet18",
    max_size=320,
    fpn_channels=128,
    pred_scales=tuple((s,) for s in (16, 32, 64, 128, 256)),
    use_square_anchors=False,
    min_box_size=4 / 320,
    lr_steps=(),
    max_iter=10_000,
)

PRESETS: Dict[str, YolactConfig] = {
    "yolact_base": _yolact_base,
    "yolact_im400": _yolact_base.replace(name="yolact_im400", max_size=400, pred_scales=_scaled(400)),
    "yolact_im700": _yolact_base.replace(
        name="yolact_im700", max_size=700, pred_scales=_scaled(700), masks_to_train=300
    ),
    "yolact_resnet50": _yolact_resnet50,
    "yolact_darknet53": _yolact_base.replace(name="yolact_darknet53", backbone="darknet53"),
    "yolact_plus_base": _yolact_plus,
    "yolact_plus_resnet50": _yolact_plus.replace(
        name="yolact_plus_resnet50", backbone="resnet50", dcn_layers=(0, 4, 6, 3), dcn_interval=1
    ),
    "yolact_resnet50_pascal": _yolact_resnet50.replace(
        name="yolact_resnet50_pascal",
        class_names=PASCAL_CLASSES,
        pred_scales=((32,), (64,), (128,), (256,), (512,)),
        use_square_anchors=False,
        lr_steps=(60_000, 100_000),
        max_iter=120_000,
    ),
    "yolact_resnet18": _yolact_resnet18,
    # The built-in demo model: ResNet-18's layout at half width with a 64-channel FPN, so that
    # it trains from scratch on a 2-core CPU and ships as a ~6 MB fp16 file.
    "yolact_resnet18_slim": _yolact_resnet18.replace(
        name="yolact_resnet18_slim",
        backbone_width=32,
        max_size=192,
        fpn_channels=64,
        pred_scales=tuple((s,) for s in (12, 24, 48, 96, 192)),
        min_box_size=4 / 192,
    ),
}


def get_config(name: str, num_classes: Optional[int] = None,
               class_names: Optional[Sequence[str]] = None,
               category_ids: Optional[Sequence[int]] = None) -> YolactConfig:
    """A preset by name, optionally with another class list and the data's category id of each
    class (ValueError when the counts differ)."""
    if name not in PRESETS:
        raise KeyError(f"unknown config '{name}'; presets: {', '.join(sorted(PRESETS))}")
    cfg = PRESETS[name]
    if class_names is not None:
        cfg = cfg.replace(class_names=tuple(class_names))
    elif num_classes is not None and num_classes != cfg.num_classes:
        cfg = cfg.replace(class_names=tuple(f"class_{i}" for i in range(num_classes)))
    if category_ids is not None:
        cfg = cfg.replace(category_ids=category_ids)
    return cfg


def default_precision(cfg: "YolactConfig") -> str:
    """The inference precision ``yolact.load`` (and every CLI verb) uses when none is given.

    'fp32' (exact: the original's arithmetic, bit for bit) for the original's architectures
    (ResNet-50/101 and DarkNet-53 backbones: every official preset, and models fine-tuned from
    them); 'fp32-fused' (BatchNorm folded into the convolutions, channels-last: 0.84x the
    end-to-end time of the slim preset at 192 px on one thread, BENCHMARKS.md "Slim preset
    latency"; scores differ from fp32 in the 6th-7th digit) for this package's light ResNet-18
    presets, which the original does not have, so there is nothing to be bit-identical to.
    ``precision='fp32'`` still gives the exact arithmetic for any model."""
    return "fp32" if cfg.backbone in ORIGINAL_BACKBONES else "fp32-fused"


def list_presets() -> List[str]:
    """The preset names, sorted."""
    return sorted(PRESETS)
