"""BatchNorm folding for inference (``TorchPredictor.set_precision``, export)."""
from __future__ import annotations

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a Conv2d into that conv.

    Handles attribute pairs (conv1/bn1 ...) and Sequential(conv, bn, ...) as used by the
    backbones. Returns the number of folded layers. Inference only.
    """
    folded = 0
    for module in list(model.modules()):
        for i in (1, 2, 3):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{i}", nn.Identity())
                folded += 1
        if isinstance(module, nn.Sequential):
            children = list(module)
            for j in range(len(children) - 1):
                if isinstance(children[j], nn.Conv2d) and isinstance(children[j + 1], nn.BatchNorm2d):
                    module[j] = fuse_conv_bn_eval(children[j], children[j + 1])
                    module[j + 1] = nn.Identity()
                    folded += 1
    return folded
