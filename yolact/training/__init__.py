"""Training: ``train(...)`` (what ``yolact train`` does) and the pieces it wires.

- ``api``: :func:`train`, from data to a run folder (datasets, config, run folder, resume rules);
- ``trainer``: :class:`Trainer`, the loop (``train_one_step``, validation, checkpoints, signals),
  ``build_optimizer``, ``build_ema``;
- ``options``: :class:`TrainOptions`, the trainer's options;
- ``schedule``: ``lr_at``, :class:`Schedule`, ``build_schedule`` (the original's autoscale and warm-up);
- ``weights``: ``build_model``, ``init_weights``, ``freeze_batchnorm``, fine-tuning and ImageNet weights;
- ``loader``: the images trained on and one epoch's batches;
- ``validation``: ``validate`` (box and mask AP), :class:`EarlyStopping`;
- ``log``: :class:`TrainLog`, ``write_csv``, ``plot_history``, ``save_best_plots``;
- ``checkpoints``: :class:`Checkpointer`;
- ``distributed``: torchrun's process group, DDP, rank 0's decisions.
"""
from .api import train
from .checkpoints import Checkpointer
from .log import TrainLog
from .options import TrainOptions
from .schedule import Schedule, build_schedule, lr_at
from .trainer import Trainer, build_ema, build_optimizer
from .validation import EarlyStopping, validate
from .weights import build_model

__all__ = ["train", "Trainer", "TrainOptions", "Schedule", "build_schedule", "lr_at", "build_model",
           "build_optimizer", "build_ema", "TrainLog", "Checkpointer", "EarlyStopping", "validate"]
