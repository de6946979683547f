"""The training images and one epoch's batches: the order is a function of (seed, epoch), so a
resumed run replays the same batches as an uninterrupted one."""
from __future__ import annotations

from typing import List, Optional, Sequence

from torch.utils.data import DataLoader, DistributedSampler

from ..data.coco import CocoDataset, collate


def training_indices(dataset: CocoDataset, skip_empty: bool) -> List[int]:
    """The dataset items trained on: all, or only those with objects when ``skip_empty``."""
    if not skip_empty:
        return list(range(len(dataset)))
    return [i for i in range(len(dataset)) if dataset.has_objects(i)]


def build_loader(dataset: CocoDataset, indices: Sequence[int], epoch: int, skip_batches: int, batch_size: int,
                 rank: int, world: int, seed: int, workers: int, pin_memory: bool) -> DataLoader:
    """One epoch's batches for this process, from batch ``skip_batches`` on: the order is a
    function of (seed, epoch) (DistributedSampler over ``indices``), the last partial batch dropped."""
    sampler = DistributedSampler(indices, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    order = [indices[j] for j in sampler]
    usable = len(order) // batch_size * batch_size
    order = order[skip_batches * batch_size:usable]
    return DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate, num_workers=workers,
                      drop_last=True, persistent_workers=False, pin_memory=pin_memory,
                      worker_init_fn=leave_stop_signals_to_the_trainer if workers else None)


def leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """In each loader worker: ignore SIGINT and SIGTERM. ``timeout``, Slurm's ``scancel`` and a
    terminal's Ctrl-C signal the whole process group; a worker killed by SIGTERM made the next
    batch raise "DataLoader worker ... is killed by signal" before the trainer could save
    last.pt. The trainer stops at the next step and shuts its workers down itself (a worker
    still leaves when its parent dies: PyTorch's watchdog)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def background_note(dataset: CocoDataset, skip_empty: bool) -> Optional[str]:
    """'4 of 10 training images have no objects: ...' or None when every image has objects."""
    kept = sum(not dataset.has_objects(i) for i in range(len(dataset)))
    dropped = getattr(dataset, "skipped_background", 0)
    empty = kept + dropped
    if not empty:
        return None
    total = len(dataset) + dropped
    if skip_empty or not kept:
        return f"{empty} of {total} training images have no objects: left out (--no-background)"
    return (f"{empty} of {total} training images have no objects: trained on as background "
            "(--no-background leaves them out)")
