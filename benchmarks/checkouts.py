"""Latency of two checkouts of this package side by side, interleaved in one run: PyTorch fp32,
ONNX Runtime and OpenVINO fp32 on the demo model and on yolact_base (random weights, class
bias set so that 100 detections reach post-processing: the worst case).

    git worktree add /tmp/before <commit>
    python benchmarks/checkouts.py --before /tmp/before [--after .] [--rounds 3] [--repeats 5]

Each round runs one worker process per checkout (PYTHONPATH=<checkout>), alternating which goes
first; a worker times ``model.predict(image)`` (640x480 synthetic image, score threshold 0.15)
``--repeats`` times per path after a warm-up and prints the medians. The table gives the median
over rounds and the ratio after / before. Both checkouts must have ``yolact.export`` and
``yolact.openvino_backend`` (the names kept since the deploy package).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r'''
import json, statistics, sys, time, tempfile, warnings
from pathlib import Path
import numpy as np, torch
warnings.simplefilter("ignore")
torch.set_num_threads(int(sys.argv[3]))
import yolact
from yolact.data.synth import make_image
try:  # this script also runs older checkouts, which have the pre-#25 module names
    from yolact.deploy.onnx import OnnxPredictor as OnnxModel, export_onnx
    from yolact.deploy.openvino import OpenVinoPredictor as OpenVinoModel, export_openvino
except ImportError:
    from yolact.export import OnnxModel, export_onnx
    from yolact.openvino_backend import OpenVinoModel, export_openvino
weights = {"demo": str(yolact.demo_weights_path()), "yolact_base": sys.argv[1]}
repeats = int(sys.argv[2])
img = make_image(np.random.default_rng(0), 480, 640)[0]
out = {}
tmp = Path(tempfile.mkdtemp())
for name, w in weights.items():
    model = yolact.load(w)
    paths = {"torch fp32": model, "onnxruntime fp32": OnnxModel(export_onnx(model, tmp / f"{name}.onnx"))}
    try:
        paths["openvino fp32"] = OpenVinoModel(export_openvino(model, tmp / f"{name}.xml"))
    except Exception as e:
        print("openvino skipped:", e, file=sys.stderr)
    for path, m in paths.items():
        for _ in range(2):
            m.predict(img, score_threshold=0.15)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            m.predict(img, score_threshold=0.15, keep_image=False)
            ts.append(time.perf_counter() - t0)
        out[f"{name} | {path}"] = statistics.median(ts)
print(json.dumps(out))
'''


def make_base_weights(path: Path, after: Path) -> None:
    """yolact_base with random weights and the class bias of the worst case, as a project file."""
    code = (f"import sys; sys.path.insert(0, {str(after)!r}); import torch, yolact;"
            "from yolact.checkpoint import save_checkpoint;"
            "torch.manual_seed(0); m = yolact.build('yolact_base').eval();"
            "h = m.prediction_layers[0];"
            "b = h.conf_layer.bias.data.view(m.cfg.anchors_per_location, -1); b[:, 0] = -2.0;"
            f"save_checkpoint({str(path)!r}, m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def run_worker(checkout: Path, weights: Path, repeats: int, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    r = subprocess.run([sys.executable, "-c", WORKER, str(weights), str(repeats), str(threads)], env=env,
                       capture_output=True, text=True, cwd=str(checkout))
    if r.returncode != 0:
        raise SystemExit(f"{checkout}: the worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, type=Path, help="checkout of the earlier version")
    ap.add_argument("--after", default=Path(__file__).resolve().parents[1], type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "yolact_base_random.pt"
        make_base_weights(weights, args.after.resolve())
        runs = {"before": [], "after": []}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for which in order:
                runs[which].append(run_worker(getattr(args, which).resolve(), weights, args.repeats, args.threads))
                print(f"round {r + 1} {which} done", file=sys.stderr, flush=True)
    keys = list(runs["before"][0])
    print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"640x480, median of {args.repeats} x {args.rounds} interleaved rounds")
    print("| model | path | before ms | after ms | after / before |")
    print("|---|---|---|---|---|")
    for k in keys:
        b = statistics.median(x[k] for x in runs["before"]) * 1000
        a = statistics.median(x[k] for x in runs["after"]) * 1000
        model, path = k.split(" | ")
        print(f"| {model} | {path} | {b:.1f} | {a:.1f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
