"""Several processes (torchrun): the process group, the model's DDP wrapper, rank 0's decisions."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..checks import resolve_device
from ..model.yolact import Yolact
from .weights import freeze_batchnorm


def dist_info():
    """(rank, world size) of this process: (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed(device: str) -> torch.device:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1). -> this process's
    device, CUDA with an index (``cuda:<LOCAL_RANK>`` under torchrun; a bare 'cuda' alone is the
    current device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = device.startswith("cuda") and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
    return resolve_device(device)


def rank0_decides(flag: bool, world: int, device: torch.device) -> bool:
    """Rank 0's decision for every rank (it alone holds the val AP), or DDP would hang."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def rank0_number(value: int, world: int, device: torch.device) -> int:
    """Rank 0's ``value`` for every rank (a length decided from rank 0's clock: ranks that
    disagreed on it would leave DDP waiting)."""
    if world == 1:
        return value
    t = torch.tensor([float(value)], device=device, dtype=torch.float64)
    dist.broadcast(t, 0)
    return int(t.item())


def place_model(model: Yolact, device: torch.device, world: int, freeze_bn: bool, sync_bn: bool):
    """Freeze BatchNorm (optional), move to the device, SyncBatchNorm and DDP with several
    processes. -> (model, DDP wrapper or None)."""
    if freeze_bn:
        freeze_batchnorm(model)
    model.to(device)
    if sync_bn and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else None
    return model, ddp
