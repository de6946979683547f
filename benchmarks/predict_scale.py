"""`yolact predict` on a folder of synthetic images, four ways (issue #29):

    python benchmarks/predict_scale.py [--images 500] [--size 128] [--modes local,workers2,torchrun2,ray2]
                                       [--json out.json]

- ``local``: today's loop (one reader thread, the model on the main process);
- ``workers2``: the same with ``--workers 2`` (two decoding threads ahead of the model);
- ``torchrun2``: ``torchrun --standalone --nproc-per-node 2`` (gloo), one torch thread per rank;
- ``ray2``: ``--engine ray --actors 2`` on a local Ray with ``RAY_NUM_CPUS=2`` (needs
  ``yolact[scale]``).

Every mode is one fresh ``python -m yolact predict DIR --save-json`` subprocess (the demo model,
``--conf 0.15``), so its wall time includes Python, model and (Ray) cluster start-up. Peak memory
is the largest sum of the resident sizes of the whole process tree (the command and every
descendant: torchrun's ranks, Ray's raylet, GCS and actors), sampled from /proc every 0.1 s.
Each mode's results.json is compared with the local one's (identical, or the same detections
with scores that differ in the last digits: another torch thread count per process).

The images are the demo's synthetic scenes at ``--size`` px, so decoding is cheap and the
figures show the start-up and the model, not JPEG decoding.

``--decode N``: a second table, the decoding stage alone (``read_frames`` with ``--workers`` 0
and 2, interleaved, ``--decode-repeats`` times each) on N JPEGs of ``--decode-size`` (default
1920x1080): the images/s a model could be fed at most, in this process.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODES = ("local", "workers2", "torchrun2", "ray2")


def tree_rss(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except OSError:
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def timed(cmd, env) -> dict:
    """Run ``cmd``; -> wall seconds, peak tree RSS (bytes), return code, stderr's tail."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    return {"wall_s": wall, "peak_rss": peak[0], "rc": proc.returncode, "stderr": err[-1500:], "stdout": out}


def command(mode: str, folder: Path, out: Path) -> list:
    base = ["-m", "yolact", "predict", str(folder), "-q", "--save-json", "--out", str(out)]
    if mode == "local":
        return [sys.executable, *base]
    if mode == "workers2":
        return [sys.executable, *base, "--workers", "2"]
    if mode == "torchrun2":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *base]
    if mode == "ray2":
        return [sys.executable, *base, "--engine", "ray", "--actors", "2"]
    raise SystemExit(f"unknown mode {mode}; choose from {', '.join(MODES)}")


def compare(records: list, reference: list) -> str:
    """'identical', or how the records differ from the local run's (torch's CPU kernels give
    last-bit differences with another thread count: one per rank under torchrun, Ray's actors)."""
    if records == reference:
        return "identical"
    key = [(r["file_name"], r["label"]) for r in records]
    if key != [(r["file_name"], r["label"]) for r in reference]:
        return f"{len(records)} vs {len(reference)} records"
    worst = max(abs(a["score"] - b["score"]) for a, b in zip(records, reference))
    return f"same detections, max |score diff| {worst:.0e}"


def make_folder(root: Path, n: int, size: int) -> Path:
    """``n`` synthetic JPEGs of ``size`` px in ``root/images``."""
    from yolact.data.synth import generate

    generate(root / "gen", n_train=n, n_val=0, size=size, seed=29, max_objects=4, style="simple")
    folder = root / "images"
    folder.mkdir()
    for p in sorted((root / "gen" / "train").glob("*.jpg")):
        shutil.move(str(p), folder / p.name)
    return folder


def decode_rates(root: Path, n: int, size: str, repeats: int) -> dict:
    """images/s of read_frames over ``n`` JPEGs of ``size`` (WxH), workers 0 and 2 interleaved."""
    import cv2
    import numpy as np

    from yolact.data.synth import make_image
    from yolact.prediction.sources import read_frames

    w, h = map(int, size.split("x"))
    folder = root / "decode"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img, _ = make_image(rng, 480, 640)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.resize(img, (w, h)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    import resource

    rates = {0: [], 2: []}
    for _ in range(repeats):
        for workers in (0, 2):
            u0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            count = sum(1 for _ in read_frames(str(folder), workers=workers))
            u1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
            cores = (u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime) / wall
            rates[workers].append((count / wall, cores))
    return rates


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=128, help="image side in pixels")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--decode", type=int, default=0, help="also time decoding alone on this many JPEGs")
    ap.add_argument("--decode-size", default="1920x1080")
    ap.add_argument("--decode-repeats", type=int, default=3)
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    root = Path(tempfile.mkdtemp(prefix="predict_scale_"))
    rows, decode = [], {}
    try:
        if args.decode:
            decode = decode_rates(root, args.decode, args.decode_size, args.decode_repeats)
        folder = make_folder(root, args.images, args.size) if modes != [""] else None
        n = len(list(folder.glob("*.jpg"))) if folder else 0
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), RAY_NUM_CPUS="2")
        reference = None
        for k, mode in enumerate(m for m in modes if m):  # a mode may be repeated (interleaved runs on a noisy machine)
            out = root / f"out_{k}_{mode}"
            env_mode = dict(env, OMP_NUM_THREADS="1") if mode == "torchrun2" else env
            r = timed(command(mode, folder, out), env_mode)
            if r["rc"] != 0:
                print(f"{mode}: failed (exit {r['rc']}): {r['stderr']}", file=sys.stderr)
                continue
            records = json.loads((out / "results.json").read_text())
            reference = records if reference is None else reference
            rows.append({"mode": mode, "images": n, "wall_s": round(r["wall_s"], 1),
                         "images_per_s": round(n / r["wall_s"], 2), "peak_rss_mb": round(r["peak_rss"] / 2**20),
                         "records": len(records), "vs_local": compare(records, reference)})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{n} synthetic {args.size}px JPEGs, demo model, --save-json; {platform.node()} "
          f"({os.cpu_count()} CPUs), {datetime.date.today()}; wall time includes start-up")
    print(f"{'mode':<10} {'wall s':>7} {'images/s':>9} {'peak RSS MB':>12} {'records':>8}  vs local")
    for row in rows:
        print(f"{row['mode']:<10} {row['wall_s']:>7} {row['images_per_s']:>9} {row['peak_rss_mb']:>12} "
              f"{row['records']:>8}  {row['vs_local']}")
    if decode:
        print(f"\ndecoding alone (read_frames), {args.decode} JPEGs of {args.decode_size}, "
              f"{args.decode_repeats} interleaved runs each: images/s")
        for workers, got in decode.items():
            print(f"--workers {workers}: " + ", ".join(f"{r:.1f} ({c:.2f} cores busy)" for r, c in got) +
                  f"; median {sorted(r for r, _ in got)[len(got) // 2]:.1f} images/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "decode": decode}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
