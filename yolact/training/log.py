"""What a run reports: the console (tqdm bar and lines), metrics.jsonl, TensorBoard, metrics.csv,
training.png and the best checkpoint's eval plots."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Dict, List, Optional

from tqdm import tqdm


class TrainLog:
    """Console (tqdm bar and lines), metrics.jsonl, TensorBoard, then metrics.csv and the plot.
    Only rank 0 writes. ``history`` (the caller's list) gets every record."""

    SHOWN = ("total", "box", "conf", "mask", "lr")

    def __init__(self, out: Path, rank: int, history: List[Dict], log_interval: int, progress: bool,
                 total: Optional[int], initial: int, verbose: bool = True):
        self.out, self.rank, self.history, self.log_interval = out, rank, history, log_interval
        self.main = rank == 0
        self.verbose = verbose  # False (--quiet): no validation lines; the files still get every record
        if self.main and initial == 0:  # a new run (--exist-ok over an old one): its own records only
            (out / "metrics.jsonl").unlink(missing_ok=True)
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="it", disable=not progress or not self.main,
                        dynamic_ncols=True)
        self.tb = self._tensorboard() if self.main else None
        self.running: Dict[str, float] = {}
        self.t0, self.seen = time.time(), 0

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
            return SummaryWriter(str(self.out / "tb"))
        except Exception:
            return None

    def write(self, line: str) -> None:
        """Print a line above the progress bar (rank 0 only)."""
        if self.main:
            self.bar.write(line)

    def _append(self, rec: Dict) -> None:
        self.history.append(rec)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def step(self, iteration: int, epoch: int, res: Optional[Dict[str, float]], images: int, skipped: int) -> None:
        """After each iteration: the bar, and every ``log_interval`` (and the first) a record."""
        self.seen += images
        self.bar.update(1)
        if res is None:
            return
        for k, v in res.items():
            self.running[k] = 0.9 * self.running.get(k, v) + 0.1 * v if k != "lr" else v
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.running.items() if k in self.SHOWN})
        if self.main and (iteration % self.log_interval == 0 or iteration == 1):
            self._append({"iteration": iteration, "epoch": epoch, **res, "images_per_s": self.images_per_s(),
                          "skipped_steps": skipped})
            if self.tb:
                for k, v in res.items():
                    self.tb.add_scalar(f"train/{k}", v, iteration)

    def set_total(self, total: int) -> None:
        """The run's length changed (``--time``): the bar's total follows."""
        self.bar.total = total
        self.bar.refresh()

    def validation(self, iteration: int, box_ap: float, mask_ap: float) -> None:
        """Record one evaluation (APs 0..1) in the history, metrics.jsonl and TensorBoard, and print
        it in the same unit, 3 decimals (rank 0 only)."""
        if not self.main:
            return
        self._append({"iteration": iteration, "val_box_ap": box_ap, "val_mask_ap": mask_ap})
        if self.tb:
            self.tb.add_scalar("val/box_AP", box_ap, iteration)
            self.tb.add_scalar("val/mask_AP", mask_ap, iteration)
        # pycocotools' -1: the val split has no objects to score against
        shown = ["n/a" if ap < 0 else f"{ap:.3f}" for ap in (box_ap, mask_ap)]
        note = " (the val split has no objects: best.pt is not chosen by AP)" if box_ap < 0 and mask_ap < 0 else ""
        if self.verbose:
            self.write(f"iteration {iteration}: val box AP {shown[0]}, mask AP {shown[1]}{note}")

    def images_per_s(self) -> float:
        """Images of all processes trained per second of wall time since the log was made."""
        return self.seen / max(time.time() - self.t0, 1e-9)

    def close(self) -> None:
        """Close the progress bar and the TensorBoard writer."""
        self.bar.close()
        if self.tb:
            self.tb.close()

    def finish(self) -> None:
        """metrics.csv (training and validation rows) and training.png."""
        if not self.main:
            return
        write_csv(self.history, self.out / "metrics.csv")
        try:
            plot_history(self.history, self.out / "training.png")
        except Exception as e:  # a plot must never lose a finished run
            print(f"yolact: could not draw the training plot: {e}")


def write_csv(history: List[Dict], path: Path) -> None:
    """One row per record (training losses or validation APs), the union of their columns."""
    if not history:
        return
    keys = sorted({k for r in history for k in r} - {"iteration"})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["iteration"] + keys)
        w.writeheader()
        w.writerows(history)


def plot_history(history: List[Dict], path: Path) -> None:
    """Draw training.png at ``path``: the loss terms per iteration (log scale) and, with
    validation records, box and mask AP 0..1 (the unit of every output). Matplotlib errors propagate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if "total" in h]
    val = [h for h in history if "val_mask_ap" in h]
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(11 if val else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for k in ("total", "box", "conf", "mask", "semantic", "maskiou"):
        pts = [(h["iteration"], h[k]) for h in train if k in h]
        if pts:
            ax.plot(*zip(*pts), label=k, lw=1.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    if ax.get_lines():  # a run whose every step was skipped has no loss to draw
        ax.legend()
    ax.set_title("training losses")
    if val:
        ax = axes[0, 1]
        for key, label in (("val_box_ap", "box AP"), ("val_mask_ap", "mask AP")):
            pts = [(h["iteration"], h[key]) for h in val if key in h]
            if pts:
                ax.plot(*zip(*pts), "o-", label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel("AP (0..1)")
        ax.legend()
        ax.set_title("validation AP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_best_plots(metrics: Dict, out: Path) -> List[Path]:
    """The eval pictures of the best checkpoint (confusion matrix, precision-recall curve) as
    ``best_confusion_matrix.png`` and ``best_pr_curve.png`` in the run folder (issue #18 item 9).
    A plot that fails never stops the run: one line says why."""
    from ..evaluation.metrics import save_eval_plots

    try:
        return save_eval_plots(metrics, out, prefix="best_")
    except Exception as e:  # a picture must never lose a run
        print(f"yolact: could not draw the best checkpoint's eval plots: {e}")
        return []
