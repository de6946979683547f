"""Validation during training (box and mask AP) and early stopping on the val mask AP."""
from __future__ import annotations

from typing import Dict, Optional

from ..evaluation.coco import evaluate
from ..model.yolact import Yolact


def validate(model: Yolact, val_ann: Optional[str], val_images: Optional[str]) -> Optional[Dict[str, float]]:
    """COCO box and mask AP (0..1) on the val split: {'box_ap', 'mask_ap'} on rank 0, None on
    the other ranks or without a val split. The model is left in eval mode."""
    if not val_ann:
        return None
    model.eval()
    metrics = evaluate(model, val_ann, val_images, progress=False)
    if not metrics:  # not rank 0
        return None
    return {"box_ap": metrics["bbox"]["AP"], "mask_ap": metrics["segm"]["AP"], "coco": metrics}


class EarlyStopping:
    """The best val mask AP so far and the evaluations since it improved (``patience``: None
    never stops)."""

    def __init__(self, patience: Optional[int] = None):
        self.patience = patience
        self.best_ap = -1.0  # -1: no evaluation yet
        self.bad_evals = 0

    def update(self, ap: float) -> bool:
        """Record one evaluation; True when it is the best so far."""
        if ap > self.best_ap:
            self.best_ap, self.bad_evals = ap, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def exhausted(self) -> bool:
        """True once ``patience`` evaluations in a row brought no better AP (never without one)."""
        return self.patience is not None and self.bad_evals >= self.patience
