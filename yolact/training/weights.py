"""The model a run starts from: seeded and initialised as the original, then ImageNet backbone
and/or fine-tuning weights; BatchNorm freezing."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..backbones import BACKBONES, imagenet_key as backbone_key  # noqa: F401 - the old name
from ..checkpoint import KeyReport, apply_legacy_rules, compare_keys, read_checkpoint, split_checkpoint
from ..config import YolactConfig
from ..errors import YolactError
from ..loss import YolactCriterion
from ..model.yolact import Yolact
from ..prediction.predictor import TorchPredictor

# Parameters whose shape depends on the number of classes (re-initialised when fine-tuning).
CLASS_DEPENDENT = ("prediction_layers.0.conf_layer.", "semantic_seg_conv.", "maskiou_net.maskiou_net.10.")


def init_weights(model: Yolact) -> None:
    """Xavier-uniform for every conv outside the backbone, zero biases (as the original)."""
    backbone = set(model.backbone.modules())
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m not in backbone:
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def freeze_batchnorm(model: nn.Module) -> None:
    """Every BatchNorm layer to eval mode (running statistics used, not updated), its weight and
    bias no longer trained (the original's ``Yolact.freeze_bn``). ``model.train()`` undoes the
    mode, so the trainer calls this after each ``train()``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def load_finetune_weights(model: Yolact, path: str) -> Dict[str, List[str]]:
    """Load a (possibly official COCO) checkpoint into a model with maybe other classes, with the
    rules of ``predict``: only class-dependent tensors (``CLASS_DEPENDENT``) may be missing or
    differ in shape; they are re-initialised and named in the report. Any other missing,
    unexpected or mismatched key (another backbone, YOLACT++ weights for YOLACT...) raises
    ``YolactError`` naming the first few.

    Returns {'loaded': keys, 'reinitialised': keys, 'ignored': []}.
    """
    sd, meta = split_checkpoint(read_checkpoint(path), path)
    sd = apply_legacy_rules(sd, model.cfg)
    old_names = list((meta or {}).get("config", {}).get("class_names") or [])
    remapped = remap_class_rows(sd, old_names, list(model.cfg.class_names))
    rep = compare_keys(model, sd)
    own = model.state_dict()
    reshaped = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    absent = [k for k in rep["missing"] if k.startswith(CLASS_DEPENDENT)]
    blocking = KeyReport(missing=[k for k in rep["missing"] if not k.startswith(CLASS_DEPENDENT)],
                         unexpected=rep["unexpected"],
                         mismatched=[m for m in rep["mismatched"] if not m.startswith(CLASS_DEPENDENT)])
    if not blocking.ok():
        raise YolactError(f"{path}: does not fit config '{model.cfg.name}' (another backbone or model?): "
                          f"{blocking.summary(limit=4)}")
    model.load_state_dict({k: v for k, v in sd.items() if k not in reshaped}, strict=False)
    return {"loaded": [k for k in sd if k not in reshaped], "reinitialised": reshaped + absent, "ignored": [],
            "remapped": remapped}


def class_order(old_names: List[str], new_names: List[str]) -> Optional[List[int]]:
    """For each new class, the index of the same-named class in the checkpoint, when both hold
    the same names in another order; None when the order already matches or the names differ
    (then the head is loaded by position or re-initialised as before)."""
    if old_names == new_names or sorted(old_names) != sorted(new_names) or len(set(new_names)) != len(new_names):
        return None
    return [old_names.index(n) for n in new_names]


def remap_class_rows(sd: Dict[str, torch.Tensor], old_names: List[str], new_names: List[str]) -> List[str]:
    """Reorder, in place, the class-dependent rows of a state dict so that a checkpoint whose
    class names match ``new_names`` in another order predicts each class under its own name
    (fine-tuning used to load the head by position: permuted labels).

    Row layouts: ``conf_layer`` has ``num_priors * (C + 1)`` output rows, per prior the background
    then the C classes; ``semantic_seg_conv`` and the last MaskIoU conv have C rows. Returns the
    keys reordered (empty when nothing was)."""
    order = class_order(old_names, new_names)
    if order is None:
        return []
    c = len(new_names)
    done = []
    for k, v in list(sd.items()):
        if not k.startswith(CLASS_DEPENDENT) or v.dim() == 0:
            continue
        n = v.shape[0]
        if k.startswith(CLASS_DEPENDENT[0]) and n % (c + 1) == 0:
            idx = torch.tensor([0] + [o + 1 for o in order])
            rows = torch.cat([idx + a * (c + 1) for a in range(n // (c + 1))])
        elif n == c:
            rows = torch.tensor(order)
        else:
            continue
        sd[k] = v[rows].clone()
        done.append(k)
    return done


def load_backbone_weights(model: Yolact, path: str) -> Dict[str, List[str]]:
    """ImageNet weights (torchvision or the original's names) into the backbone; the report
    lists loaded, missing and ignored keys. No matching tensor at all raises ``YolactError``."""
    sd = read_checkpoint(path)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    key_rule = BACKBONES[model.cfg.backbone].key_rule  # the table's rule: ImageNet names -> ours
    sd = {key_rule(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    own = model.backbone.state_dict()
    loaded = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
    if not loaded:
        raise YolactError(f"{path}: no tensor matches the {model.cfg.backbone} backbone (wrong file?)")
    model.backbone.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "missing": sorted(k for k in own if k not in loaded),
            "ignored": sorted(k for k in sd if k not in loaded)}


def build_model(cfg: YolactConfig, seed: int, weights: Optional[str] = None,
                backbone_weights: Optional[str] = None) -> Tuple[TorchPredictor, Dict[str, Dict]]:
    """A seeded, initialised model with its criterion, then ImageNet and/or fine-tuning weights.
    -> (model, {'backbone': report, 'weights': report} for what was loaded)."""
    torch.manual_seed(seed)
    # The network with predict() (validation runs it) and its loss; the state dict is the network's.
    model = TorchPredictor(cfg, criterion=YolactCriterion(cfg))
    init_weights(model)
    reports = {}
    if backbone_weights:
        reports["backbone"] = load_backbone_weights(model, backbone_weights)
    if weights:
        reports["weights"] = load_finetune_weights(model, weights)
    return model, reports
