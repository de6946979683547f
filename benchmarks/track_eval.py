"""Tracking quality and tracker overhead on synthetic videos with the demo model.

    python benchmarks/track_eval.py [--videos 5 --frames 120 --weights W --threads 1]

Generates `yolact data synth-video` sequences (640x480: moving, crossing, occluding, entering
and leaving shapes; ground truth in MOTChallenge format), runs the model once per frame and
feeds the same detections to each tracker (naive IoU baseline, ByteTrack-style, mask mode),
then scores them with TrackEval (HOTA, MOTA, IDF1, ID switches). Overhead: the tracker's
update time per frame against the model's per-frame time (batch 1, the same run).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import yolact
from yolact.data.images import read_image
from yolact.data.synth_video import generate_videos
from yolact.tracking import build_tracker
from yolact.tracking.evaluate import evaluate_tracks, mot_lines

KINDS = ("iou", "bytetrack", "mask")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="default: the built-in demo model")
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", default=None, help="reuse (or keep) the generated videos here")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = yolact.load(args.weights or yolact.demo_weights_path())
    work = Path(args.data or tempfile.mkdtemp(prefix="yolact_track_"))
    if not any(work.glob("shapes-*/gt/gt.txt")):
        generate_videos(work, args.videos, args.frames, 480, 640, seed=args.seed)
    seqs = sorted(p.name for p in work.iterdir() if (p / "gt" / "gt.txt").exists())
    pred_root = work / "pred"
    infer_s, n_frames = 0.0, 0
    update_s = {k: 0.0 for k in KINDS}
    for seq in seqs:
        trackers = {k: build_tracker(k) for k in KINDS}
        for k in KINDS:
            (pred_root / k).mkdir(parents=True, exist_ok=True)
        files = {k: open(pred_root / k / f"{seq}.txt", "w") for k in KINDS}
        for i, img_path in enumerate(sorted((work / seq / "img1").glob("*.jpg")), 1):
            img = read_image(img_path)
            t0 = time.perf_counter()
            res = model.predict(img, score_threshold=0.1)
            infer_s += time.perf_counter() - t0
            n_frames += 1
            for k, trk in trackers.items():
                t0 = time.perf_counter()
                out = trk.update(res)
                update_s[k] += time.perf_counter() - t0
                files[k].write(mot_lines(i, out))
        for f in files.values():
            f.close()
    per_frame = infer_s / n_frames
    rows = []
    print(f"{len(seqs)} sequences, {n_frames} frames of 640x480; model {model.cfg.name}, "
          f"{1000 * per_frame:.1f} ms per frame ({torch.get_num_threads()} threads)")
    print(f"{'tracker':<10}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDsw':>6}{'FP':>6}{'FN':>6}{'ms/frame':>10}{'overhead':>10}")
    for k in KINDS:
        m = evaluate_tracks(work, pred_root / k)["COMBINED_SEQ"]
        upd = update_s[k] / n_frames
        rows.append({"tracker": k, **m, "update_ms": 1000 * upd, "overhead": upd / per_frame})
        print(f"{k:<10}{100 * m['hota']:7.1f}{100 * m['mota']:7.1f}{100 * m['idf1']:7.1f}{m['num_switches']:6d}"
              f"{m['num_false_positives']:6d}{m['num_misses']:6d}{1000 * upd:10.2f}{100 * upd / per_frame:9.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": n_frames, "infer_ms": 1000 * per_frame, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
