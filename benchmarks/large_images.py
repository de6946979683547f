"""Memory and latency of one predict as the image grows with the detections fixed.

    python benchmarks/large_images.py [--sizes 640x480,1920x1080,3840x2160] [--repeats 5]
                                      [--cases moderate,crowded]

yolact_resnet50 with random weights and the class bias set so that 100 detections survive
(``latency.busy_model``). Two cases (issue #32):

- ``moderate``: the box-size bias of the three anchor shapes raised by 0, 2 and 5 (x0.2 in log
  scale) so that their sizes vary (about 60 to 115 px wide at 640x480, scaling with the image);
- ``crowded``: raised by 6, 7 and 8, so that the 100 boxes are large and overlap (they add up
  to about 7.8 image areas, clipped to the image), and the Results is also written with
  ``to_coco`` (RLE of every mask) inside the measured phase.

Each size runs in a fresh subprocess, so its peak
resident size (``resource.getrusage(...).ru_maxrss``) is that predict's alone: the process
loads the model, records its resident size, then predicts ``repeats + 1`` times on one image
(a synthetic scene resized to the size). Mask bytes: what the Results holds for its masks
(the crops, or the full [N, H, W] array in a checkout without crops); latency: the median.

Run it with ``PYTHONPATH`` at another checkout to measure that one (the script only uses
``yolact.build``, ``predict`` and ``Results``).

A second table times the step that changed, in one process and interleaved (less noise than
whole predicts on a shared machine): ``PostProcess.to_image`` of the same 100 detections to a
full [N, H, W] array (the path before crops, then moved to numpy) against ``crops=True``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path


BOX_BIAS = {"moderate": (0.0, 2.0, 5.0), "crowded": (6.0, 7.0, 8.0)}


def measure(width: int, height: int, repeats: int, threads: int, case: str = "moderate") -> dict:
    """In this process: model, then predicts at width x height. -> the figures."""
    import resource
    import time

    import cv2
    import numpy as np
    import torch

    from yolact.data.synth import make_image

    torch.set_num_threads(threads)
    model = busy_varied_model(case)
    small, _ = make_image(np.random.default_rng(0), 480, 640)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    model_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        res = model.predict(img, score_threshold=0.0, top_k=100, keep_image=False)
        if case == "crowded":
            res.to_coco(image_id=1)
        times.append(time.perf_counter() - t0)
    crops = getattr(res, "mask_crops", None)
    mask_bytes = crops.nbytes if crops is not None else res.masks.nbytes
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    areas = crops.areas() if crops is not None else res.masks.reshape(len(res), -1).sum(1)
    boxes = res.boxes.astype(np.float64)
    box_area = float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()) / (width * height)
    return {"case": case, "size": f"{width}x{height}", "box_areas": box_area, "detections": len(res), "peak_rss": peak, "model_rss": model_rss,
            "mask_bytes": int(mask_bytes), "full_mask_bytes": len(res) * width * height,
            "median_s": float(np.median(times[1:])), "mask_px_min": int(areas.min()), "mask_px_max": int(areas.max())}


def busy_varied_model(case: str = "moderate"):
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from latency import busy_model

    model = busy_model("yolact_resnet50")
    with torch.no_grad():  # varied box sizes: each anchor shape's width and height scaled differently
        anchors = model.cfg.anchors_per_location
        model.prediction_layers[0].bbox_layer.bias.view(anchors, 4)[:, 2:] += torch.tensor(BOX_BIAS[case])[:anchors, None]
    return model


def to_image_times(sizes, repeats: int, threads: int) -> list:
    """Median ms of PostProcess.to_image, full array vs crops, interleaved, per size."""
    import statistics
    import time

    import numpy as np
    import torch

    from yolact.data.synth import make_image
    from yolact.model.postprocess import PostProcess

    torch.set_num_threads(threads)
    model = busy_varied_model()
    img, _ = make_image(np.random.default_rng(0), 480, 640)
    det = model._detect(model.transform().resize([img]), [model.options(score_threshold=0.0)])[0]
    rows = []
    for w, h in sizes:
        paths = {"full": lambda: PostProcess.to_image(det, h, w).masks.cpu().numpy(),
                 "crops": lambda: PostProcess.to_image(det, h, w, crops=True).masks}
        times = {k: [] for k in paths}
        for _ in range(repeats):
            for k, f in paths.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        rows.append((f"{w}x{h}", len(det.scores), *(1000 * statistics.median(times[k]) for k in ("full", "crops"))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="640x480,1920x1080,3840x2160")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default="moderate,crowded")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child's size
    ap.add_argument("--case", default="moderate", help=argparse.SUPPRESS)  # the child's case
    args = ap.parse_args()
    if args.one:
        w, h = (int(v) for v in args.one.split("x"))
        print(json.dumps(measure(w, h, args.repeats, args.threads, args.case)))
        return
    import torch
    import yolact

    gb = 1 / 1e9
    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"{args.threads} threads  yolact_resnet50 (random weights, busy class bias)  {yolact.__file__}")
    for case in args.cases.split(","):
        rows = []
        for size in args.sizes.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", size, "--case", case, "--repeats", str(args.repeats),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"\n{case}" + (" (predict + to_coco)" if case == "crowded" else " (predict)"))
        print("| image | detections | boxes (image areas) | peak RSS (GB) | above 640x480 (GB) | model loaded (GB) "
              "| mask bytes (MB) | full masks would be (MB) | mask pixels min..max | latency (ms, median) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        base = rows[0]["peak_rss"]
        for r in rows:
            print(f"| {r['size']} | {r['detections']} | {r['box_areas']:.1f} | {r['peak_rss'] * gb:.3f} "
                  f"| {(r['peak_rss'] - base) * gb:+.3f} | {r['model_rss'] * gb:.3f} | {r['mask_bytes'] / 1e6:.2f} "
                  f"| {r['full_mask_bytes'] / 1e6:.1f} | {r['mask_px_min']}..{r['mask_px_max']} | {1000 * r['median_s']:.0f} |")
    try:
        from yolact.results import MaskCrops
        del MaskCrops  # only asks: does this checkout have crops?
    except ImportError:
        return
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print()
    print("| image | detections | to_image, full array (ms) | to_image, crops (ms) |")
    print("|---|---|---|---|")
    for size, n, full_ms, crops_ms in to_image_times(sizes, 3 * args.repeats, args.threads):
        print(f"| {size} | {n} | {full_ms:.1f} | {crops_ms:.1f} |")


if __name__ == "__main__":
    main()
