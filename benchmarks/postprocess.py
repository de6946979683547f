"""Post-processing cost against the network's, yolact_base on one 640x480 image.

    python benchmarks/postprocess.py [--repeats 7] [--threads N]

Random weights with the class bias set so that 100 detections survive (the worst case; see
latency.py). Times, median of the repeats: the network (backbone to heads), candidate selection
+ Fast NMS, and mask assembly + upsampling + thresholding, then their share of the network time.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from latency import busy_model, median_latency  # noqa: E402

from yolact.data.synth import make_image  # noqa: E402
from yolact.engine.predict import detect, postprocess, preprocess  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    return 1000 * median_latency(fn, repeats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="yolact_base")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = busy_model(args.preset)
    img, _ = make_image(np.random.default_rng(0), 480, 640)
    with torch.no_grad():
        x = preprocess([img], model.cfg, model.device)
        net_ms = median_ms(lambda: model(x), args.repeats)
        out = model(x)
        loc, conf, priors = out.loc[0], out.conf[0], out.priors
        nms_ms = median_ms(lambda: detect(loc, conf, priors, model.cfg), args.repeats)
        post_ms = median_ms(lambda: postprocess(model, out, 0, 480, 640, 0.0, 100), args.repeats)
        pre_ms = median_ms(lambda: preprocess([img], model.cfg, model.device), args.repeats)
        dets = len(postprocess(model, out, 0, 480, 640, 0.0, 100).scores)
    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"{torch.get_num_threads()} threads  {args.preset}, 640x480, {dets} detections, median of {args.repeats}")
    print("| stage | ms | share of network |")
    print("|---|---|---|")
    for name, ms in (("network (backbone..heads)", net_ms), ("pre-process", pre_ms),
                     ("select + Fast NMS", nms_ms), ("masks (assemble, upsample, threshold)", post_ms - nms_ms),
                     ("all post-processing", post_ms)):
        print(f"| {name} | {ms:.1f} | {100 * ms / net_ms:.1f}% |")


if __name__ == "__main__":
    main()
