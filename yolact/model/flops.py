"""FLOP count of one forward pass (``yolact info``, the compute floor in benchmarks)."""
from __future__ import annotations

from typing import Optional

import torch


def count_flops(model, size: Optional[int] = None) -> float:
    """FLOPs (2 x multiply-adds) of one forward pass at the model's input size."""
    from torch.utils.flop_counter import FlopCounterMode  # imported lazily: it is slow to import

    s = size or model.cfg.max_size
    p = next(model.parameters())
    x = torch.zeros(1, 3, s, s, device=p.device, dtype=p.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())
