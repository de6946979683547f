"""Training recipes: one frozen object each, chosen by ``yolact train --recipe NAME``.

``original`` is the original's recipe (SSD augmentation, SGD with warm-up and steps, OHEM,
IoU 0.5/0.4 matching): the default, bit for bit what the trainer did before recipes existed.
``fast`` is an opt-in recipe for small data and short budgets, after what Ultralytics' and
RTMDet's recipes teach: AdamW with warm-up and linear decay, an EMA of the weights (evaluated
and saved as best.pt), mosaic (turned off for the last epochs), copy-paste, scale and HSV
jitter, a centre prior in the matching, a heavier mask loss against soft targets (each
prototype cell's covered fraction of the object, not the original's binarised resize) and
validation every few epochs to pick best.pt (a softmax focal loss instead of OHEM is a field,
``conf_loss``, off: measured no better and worse calibrated; a Dice term, ``mask_dice``, is a
field too, off).

A checkpoint's recipe is the one its run resumes under, even after the package's recipe of that
name changes (a field added since takes its default, which is the old behaviour).

A recipe is written into every checkpoint (``"recipe"``: its fields as JSON) and restored on
``--resume``. Flags given on the command line win over the recipe's values where they overlap:
``--optimizer``, ``--lr``, ``--schedule``, ``--ema``, ``--warmup-iters``, ``--val-interval`` and
``--no-augment`` (which turns the recipe's augmentation off too).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, Optional, Tuple, Union

from ..config import YolactConfig, check_mask_options
from ..errors import YolactError
from .options import TrainOptions

# Recipe.amp's values: float32 unless asked, or mixed precision where the hardware runs it natively.
AMP_MODES = ("off", "auto")


@dataclass(frozen=True)
class Recipe:
    """How to train (not what: the preset is the model). Lengths in epochs; probabilities in 0..1.

    - ``optimizer``/``lr``/``schedule``/``warmup_epochs``: None takes the trainer's defaults
      (SGD, the preset's lr, its steps and warm-up iterations); ``lr`` is for a global batch of 8,
      scaled like the preset's (the original's autoscale) by the batch each step really takes
      (``yolact.training.schedule.build_schedule``); ``schedule`` is
      ``step`` (the original's), ``cosine`` or ``linear`` (to ``lr x final_lr_fraction``).
    - ``ema_decay``/``ema_tau``: EMA of the weights with decay ``ema_decay x (1 - exp(-n / tau))``
      after n updates (Ultralytics' ramp); None: no EMA.
    - ``augment``: ``ssd`` (the original's photometric, expand, crop, mirror) or ``modern``
      (:mod:`yolact.data.mosaic`: ``mosaic`` probability, off for the last ``close_mosaic``
      fraction of the epochs; ``copy_paste`` probability per donor object; ``scale`` jitter
      +-fraction; ``translate`` +-fraction of the side; ``hsv`` gains (h, s, v); ``flip`` p).
    - ``conf_loss``: ``ohem`` (softmax CE, 3:1 hard negatives) or ``focal`` (softmax focal loss
      over every prior, ``focal_gamma``); ``pos_iou``/``neg_iou``: matching thresholds (None: the
      preset's 0.5/0.4); ``center_topk``: each object also takes its k best-overlapping priors
      whose centres lie in its box; ``mask_weight``: multiplies the mask term; ``mask_target``:
      ``binary`` (the original's GT masks on the prototype grid) or ``soft`` (covered fractions);
      ``mask_dice``: weight of a Dice term added to each mask's BCE (0: none).
    - ``val_every_epochs``: evaluate (and keep best.pt) this often (None: 4 times a run).
    - ``mask_score``/``mask_interpolation``: how the trained model scores and upsamples its
      masks at inference, written into its config (:class:`yolact.config.YolactConfig`, so the
      checkpoint predicts that way everywhere): the original's ``class`` and ``bilinear``, or
      ``maskness`` and ``bicubic``.
    - ``amp``: ``off`` (float32 unless ``--amp``) or ``auto``: mixed precision where the
      hardware runs it natively (:func:`amp_for`: CPUs with AMX, where bf16 autocast was measured
      faster, and CUDA GPUs), float32 elsewhere. ``--amp``/``--no-amp`` decide instead; the
      decision is stored with the run's arguments, so a resume on another machine keeps it.

    A field added later must default to the behaviour from before it existed: a checkpoint's
    recipe (its fields as JSON, without the new one) is what its run resumes under.
    """
    name: str
    description: str = ""
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    schedule: Optional[str] = None
    final_lr_fraction: float = 0.01
    warmup_epochs: Optional[float] = None
    ema_decay: Optional[float] = None
    ema_tau: Optional[float] = None
    augment: str = "ssd"
    mosaic: float = 0.0
    close_mosaic: float = 0.0
    copy_paste: float = 0.0
    scale: float = 0.0
    translate: float = 0.0
    hsv: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    flip: float = 0.5
    conf_loss: str = "ohem"
    focal_gamma: float = 2.0
    pos_iou: Optional[float] = None
    neg_iou: Optional[float] = None
    center_topk: int = 0
    mask_weight: float = 1.0
    mask_target: str = "binary"
    mask_dice: float = 0.0
    val_every_epochs: Optional[float] = None
    mask_score: str = "class"
    mask_interpolation: str = "bilinear"
    amp: str = "off"

    def __post_init__(self):
        if self.amp not in AMP_MODES:
            raise YolactError(f"recipe {self.name}: amp '{self.amp}': expected {' or '.join(AMP_MODES)}")
        try:
            check_mask_options(self.mask_score, self.mask_interpolation)
        except ValueError as e:
            raise YolactError(f"recipe {self.name}: {e}") from None

    def model_config(self, cfg: YolactConfig) -> YolactConfig:
        """``cfg`` with this recipe's inference options (``mask_score``, ``mask_interpolation``):
        the config the trained model is built, saved and evaluated with."""
        return cfg.replace(mask_score=self.mask_score, mask_interpolation=self.mask_interpolation)

    def to_dict(self) -> Dict:
        """The fields as JSON-ready values (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Dict) -> "Recipe":
        """Inverse of :meth:`to_dict`; unknown keys raise YolactError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise YolactError(f"recipe: unknown field(s) {', '.join(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def loss_options(self) -> Dict:
        """Keyword arguments of :class:`yolact.loss.LossOptions`."""
        return dict(conf_loss=self.conf_loss, focal_gamma=self.focal_gamma, pos_iou_thresh=self.pos_iou,
                    neg_iou_thresh=self.neg_iou, center_topk=self.center_topk, mask_weight=self.mask_weight,
                    mask_target=self.mask_target, mask_dice=self.mask_dice)


ORIGINAL = Recipe("original", "the original's (default; SSD augmentation, SGD, warm-up and steps, OHEM): "
                              "reproduces the paper, calibrated scores")
FAST = Recipe(
    "fast", "opt-in for small data and short budgets, from scratch or fine-tuning: AdamW, warm-up and linear decay, "
            "EMA, mosaic, copy-paste, scale/HSV jitter, centre prior, mask loss x1.5 on soft targets, validation every "
            "2 epochs; masks scored by their maskness and upsampled bicubically; mixed precision on CPUs with AMX "
            "and on GPUs",
    optimizer="adamw", lr=2e-3, schedule="linear", warmup_epochs=3.0, ema_decay=0.9999, ema_tau=2000.0,
    augment="modern", mosaic=1.0, close_mosaic=0.15, copy_paste=0.5, scale=0.5, translate=0.1,
    # OHEM, not the focal loss: fine-tuning measured both (BENCHMARKS.md, "Training recipes"): the
    # same AP, and the focal loss leaves 4x more detections above 0.05.
    hsv=(0.015, 0.7, 0.4), flip=0.5, conf_loss="ohem", focal_gamma=2.0, center_topk=4, mask_weight=1.5,
    mask_target="soft", val_every_epochs=2.0,
    # inference options: +0.015 to +0.019 mask AP on every fast model re-scored, box AP unchanged
    # (BENCHMARKS.md, "Masks ranked by their maskness")
    mask_score="maskness", mask_interpolation="bicubic",
    # bf16 autocast on an AMX Xeon: an epoch 16.5-18 CPU s against 23-26 in fp32, so more epochs
    # in the same time, and masks as good or better (BENCHMARKS.md, "Mixed precision in fast")
    amp="auto")

# The recipes by name (``yolact train --recipe NAME``): adding one is a row.
RECIPES: Dict[str, Recipe] = {r.name: r for r in (ORIGINAL, FAST)}


def get_recipe(value: Union[None, str, Dict, Recipe]) -> Recipe:
    """A recipe by name, from its dict (a checkpoint's), or as given; None is ``original``.
    Raises YolactError for an unknown name."""
    if value is None:
        return ORIGINAL
    if isinstance(value, Recipe):
        return value
    if isinstance(value, dict):
        return Recipe.from_dict(value)
    if value not in RECIPES:
        raise YolactError(f"unknown recipe '{value}' ({' or '.join(RECIPES)})")
    return RECIPES[value]


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon 4th generation and newer), where oneDNN's bf16
    kernels make autocast training faster than float32. CPUs with AVX-512 bf16 alone were not
    measured, so they count as without."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.13; absent: no
    try:
        return bool(probe and probe())
    except Exception:  # a torch without the probe, or one that cannot ask: train in float32
        return False


def amp_for(recipe: Recipe, device: str, small_p7: bool = False) -> Tuple[bool, str]:
    """(mixed precision on, why) for ``recipe`` on ``device`` ('cpu', 'cuda', 'cuda:1', ...) when
    the user said neither ``--amp`` nor ``--no-amp``. ``recipe.amp == 'auto'``: on for CUDA (fp16
    with loss scaling, Ultralytics' default) and for CPUs with AMX (bf16), off elsewhere;
    ``small_p7``: the image size puts a stride-2 convolution on a 1x1 map, whose bf16 gradient
    oneDNN gets wrong on the CPU (the trainer refuses ``--amp`` there), so off."""
    if recipe.amp != "auto":
        return False, ""
    if str(device).startswith("cuda"):
        return True, f"recipe {recipe.name}: mixed precision on the GPU (--no-amp: float32)"
    if not str(device).startswith("cpu"):  # another accelerator: not measured
        return False, ""
    if not cpu_has_amx():
        return False, f"recipe {recipe.name}: float32 (bf16 autocast only on CPUs with AMX, where it is faster)"
    if small_p7:
        return False, f"recipe {recipe.name}: float32 at this --img-size (bf16 needs --img-size 96 or more on the CPU)"
    return True, f"recipe {recipe.name}: bf16 autocast, this CPU has AMX (--no-amp: float32)"


def field_differences(trained, other, skip: Tuple[str, ...] = (), limit: int = 60) -> list:
    """The dataclass fields (but ``skip``) in which ``other`` differs from ``trained``, as
    ``"name value (this run: value)"`` strings, each value cut to ``limit`` characters (a class
    list can be long); empty when they are alike. For resume's refusals (recipes, configs)."""
    def short(value) -> str:
        text = str(value)
        return text if len(text) <= limit else text[:limit - 3] + "..."

    return [f"{f.name} {short(getattr(trained, f.name))} (this run: {short(getattr(other, f.name))})"
            for f in fields(trained) if f.name not in skip and getattr(trained, f.name) != getattr(other, f.name)]


def recipe_differences(trained: Recipe, other: Recipe) -> list:
    """The fields (the description aside) in which ``other`` differs from ``trained``
    (:func:`field_differences`); empty when they train alike."""
    return field_differences(trained, other, skip=("description",))


def apply_recipe(opts: TrainOptions, recipe: Recipe, given: Dict[str, bool]) -> TrainOptions:
    """``opts`` with the recipe's optimizer, schedule and EMA decay where the user gave none
    (``given``: option name -> True when set on the command line / by the caller). The recipe's
    lr is not set here: it is for a batch of 8, and the trainer scales it once it knows the batch
    each step takes (cut to a small data set, times the processes)."""
    changes = {}
    for opt_name, value in (("optimizer", recipe.optimizer), ("schedule", recipe.schedule),
                            ("ema_decay", recipe.ema_decay)):
        if value is not None and not given.get(opt_name, False):
            changes[opt_name] = value
    return replace(opts, **changes)


def epochs_to_iters(epochs: Optional[float], batches_per_epoch: int) -> Optional[int]:
    """A length in epochs -> iterations (None stays None)."""
    return None if epochs is None else max(1, int(math.ceil(epochs * batches_per_epoch)))
