"""The trainer's opt-in extras (EMA, cosine schedule, gradient clipping, early stopping) at a
fixed budget, several seeds each, on a synthetic set.

    yolact data synth --out /tmp/demo2 --train 2000 --val 100 --size 256 --seed 0 --style simple --max-objects 4
    python benchmarks/train_options.py --data /tmp/demo2 --iters 1200 --seeds 0 1 2 --jobs 2

``--collect`` prints the table from run folders already under ``--out`` without training.
Early stopping only cuts a run short, and runs are deterministic for a seed, so
``--patience-from-baseline N`` also reports what ``--patience N`` would have stopped at,
read off the baseline runs' evaluations (the trainer's rule: stop after N evaluations
without a better val mask AP; best.pt is the best so far).

Each run is ``yolact train`` (yolact_resnet18_slim, batch 8, AdamW lr 2e-3 with steps at 75% and
92%: the demo recipe) as a subprocess on one thread, ``--jobs`` at a time. Prints a markdown
table of the final and best val mask AP per variant (mean and spread over the seeds) and, with
``--curves``, the val mask AP at each evaluation of every run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS = {
    "baseline": [],
    "ema 0.998": ["--ema", "0.998"],
    "cosine": ["--schedule", "cosine"],
    "clip-grad 10": ["--clip-grad", "10"],
    "patience 2": ["--patience", "2"],
}


def read_run(out: Path, started: float = 0.0) -> dict:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["iteration"], 100 * r["val_mask_ap"]) for r in rows if "val_mask_ap" in r]
    return {"curve": curve, "final": curve[-1][1], "best": max(ap for _, ap in curve),
            "iterations": curve[-1][0], "seconds": time.time() - started if started else 0.0}


def with_patience(result: dict, patience: int) -> dict:
    """A run as ``--patience`` would have ended it: cut after ``patience`` evaluations without a
    better AP (not at the last one); the weights kept are the best so far."""
    best, bad, kept = -1.0, 0, []
    for it, ap in result["curve"]:
        kept.append((it, ap))
        if ap > best:
            best, bad = ap, 0
        else:
            bad += 1
        if bad >= patience and it < result["curve"][-1][0]:
            break
    return {"curve": kept, "final": best, "best": best, "iterations": kept[-1][0], "seconds": 0.0}


def run(data: Path, out: Path, iters: int, seed: int, extra, val_every: int, optimizer: str, lr: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "yolact", "train", "--config", "yolact_resnet18_slim",
           "--train-ann", str(data / "train.json"), "--train-images", str(data / "train"),
           "--val-ann", str(data / "val.json"), "--val-images", str(data / "val"),
           "--batch-size", "8", "--iters", str(iters), "--lr", str(lr), "--optimizer", optimizer,
           "--lr-steps", "0.75,0.92", "--val-interval", str(val_every), "--no-expand", "--workers", "0",
           "--threads", "1", "--seed", str(seed), "--out", str(out), "--quiet", *extra]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{out}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return read_run(out, t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a `yolact data synth` folder")
    ap.add_argument("--out", type=Path, default=Path("/tmp/train_options"))
    ap.add_argument("--iters", type=int, default=1200)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--optimizer", default="adamw")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--curves", action="store_true")
    ap.add_argument("--collect", action="store_true", help="read finished runs under --out; train nothing")
    ap.add_argument("--patience-from-baseline", type=int, default=None, metavar="N")
    args = ap.parse_args()
    jobs = [(v, s) for v in args.variants for s in args.seeds]

    def folder(job):
        return args.out / f"{job[0].replace(' ', '_')}_s{job[1]}"

    if args.collect:
        results = {j: read_run(folder(j)) for j in jobs}
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = dict(zip(jobs, pool.map(
                lambda j: run(args.data, folder(j), args.iters, j[1], VARIANTS[j[0]], args.val_every,
                              args.optimizer, args.lr), jobs)))
    if args.patience_from_baseline and "baseline" in args.variants:
        name = f"patience {args.patience_from_baseline} (from baseline)"
        args.variants.append(name)
        for s in args.seeds:
            results[(name, s)] = with_patience(results[("baseline", s)], args.patience_from_baseline)
    print(f"{args.optimizer} lr {args.lr}, {args.iters} iterations of batch 8, seeds {args.seeds}\n")
    print("| variant | final mask AP | best mask AP | iterations run | per-seed final |\n|---|---|---|---|---|")
    for v in args.variants:
        rs = [results[(v, s)] for s in args.seeds]
        fin, best = [r["final"] for r in rs], [r["best"] for r in rs]
        sd = statistics.stdev(fin) if len(fin) > 1 else 0.0
        print(f"| {v} | {statistics.mean(fin):.1f} ± {sd:.1f} | {statistics.mean(best):.1f} | "
              f"{statistics.mean(r['iterations'] for r in rs):.0f} | {', '.join(f'{x:.1f}' for x in fin)} |")
    if args.curves:
        print("\n| run | " + " | ".join(str(it) for it, _ in results[jobs[0]]["curve"]) + " |")
        for (v, s), r in results.items():
            print(f"| {v} s{s} | " + " | ".join(f"{a:.1f}" for _, a in r["curve"]) + " |")


if __name__ == "__main__":
    main()
