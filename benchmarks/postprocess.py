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
from yolact.model.postprocess import PostProcess  # noqa: E402
from yolact.model.transform import YolactTransform  # noqa: E402
from yolact.ops.boxes import decode  # noqa: E402


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
    transform = YolactTransform.from_config(model.cfg)
    post = PostProcess(model.cfg, model.maskiou_net)

    def postprocess(out):  # everything after the network: what predict runs, minus the copy to the host
        boxes = decode(out.loc[0], out.priors)
        det = post(boxes, out.conf[0], out.coef[0], out.proto[0], 0.0, 100)
        return PostProcess.to_image(det, 480, 640)

    with torch.no_grad():
        x = transform([img], model.device)
        net_ms = median_ms(lambda: model(x), args.repeats)
        out = model(x)
        boxes = decode(out.loc[0], out.priors)
        nms_ms = median_ms(lambda: post.select(boxes, out.conf[0]), args.repeats)
        post_ms = median_ms(lambda: postprocess(out), args.repeats)
        pre_ms = median_ms(lambda: transform([img], model.device), args.repeats)
        dets = len(postprocess(out).scores)
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
