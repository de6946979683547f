"""Side by side with the original implementation (github.com/dbolya/yolact): same weights, same image.

    git clone https://github.com/dbolya/yolact /path/to/original
    python benchmarks/vs_original.py --original /path/to/original [--config yolact_base] [--repeats 5]

Nothing of the original is imported by the package or shipped with it; this script only runs a
checkout the user points it at. To run it on a CPU-only machine it applies three shims, inside
this process only: torchvision is replaced by a stub when it does not import (the YOLACT v1
configs never build its Bottleneck), ``torch.cuda.current_device()`` (called at import of the
original's yolact.py) becomes a no-op, and ``Tensor.cuda()`` returns the tensor (FastBaseTransform
moves its mean/std to the GPU).

Weights are random (no official checkpoint can be downloaded here): the original builds its net,
the class bias is set so that the full 100 detections reach post-processing (the worst case), and
the original's own ``save_weights`` writes ``<config>_54_800000.pth``, which both sides then load.

End to end means BGR uint8 image -> classes, scores, boxes, full-size binary masks. The original
path is eval.py's: FastBaseTransform, ``Yolact.forward`` with Fast NMS, ``postprocess`` with
score_threshold 0. Ours is ``model.predict(image, score_threshold=0)``. Prints a markdown table of
median latencies and a comparison of the detections.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

import yolact
from yolact.data.synth import make_image


def shim_original_for_cpu() -> list:
    """Make the original importable without CUDA or a working torchvision; returns what was shimmed."""
    shims = []
    try:
        import torchvision  # noqa: F401
        from torchvision.models.resnet import Bottleneck  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

        class Bottleneck(torch.nn.Module):  # only built when cfg.use_prediction_module (no official config)
            def __init__(self, *args, **kwargs):
                raise RuntimeError("torchvision stub: the prediction-module Bottleneck is unavailable")

        tv, models, resnet, transforms = (types.ModuleType(n) for n in (
            "torchvision", "torchvision.models", "torchvision.models.resnet", "torchvision.transforms"))
        resnet.Bottleneck = Bottleneck
        tv.models, models.resnet, tv.transforms = models, resnet, transforms  # transforms: imported, never used
        sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet,
                            "torchvision.transforms": transforms})
        shims.append("torchvision stub")
    if not torch.cuda.is_available():
        torch.cuda.current_device = lambda: 0
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
        shims.append("cuda no-ops")
    return shims


def import_original(root: Path):
    """The original's modules. Its yolact.py is loaded under another name: ours is `yolact`."""
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("yolact_original", root / "yolact.py")
    net_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net_module)
    from data.config import cfg, set_cfg
    from layers.output_utils import postprocess
    from utils.augmentations import FastBaseTransform
    return types.SimpleNamespace(Yolact=net_module.Yolact, cfg=cfg, set_cfg=set_cfg,
                                 postprocess=postprocess, FastBaseTransform=FastBaseTransform)


def build_original(orig, config: str, weights: Path):
    orig.set_cfg(config + "_config")
    torch.manual_seed(0)
    net = orig.Yolact()
    with torch.no_grad():  # many priors score above the threshold in the first ten classes
        bias = net.prediction_layers[0].conf_layer.bias.view(-1, orig.cfg.num_classes)
        bias[:, 0] = -4.0
        bias[:, 1:11] = 4.0 * torch.rand(bias.shape[0], 10)
    net.save_weights(str(weights))
    net = orig.Yolact()
    net.load_weights(str(weights))
    net.eval()
    net.detect.use_fast_nms = True  # eval.py's defaults
    net.detect.use_cross_class_nms = False
    orig.cfg.mask_proto_debug = False
    return net


def original_predict(orig, net, img: np.ndarray):
    """eval.py's evalimage/prep_metrics path, on the CPU."""
    h, w = img.shape[:2]
    with torch.no_grad():
        frame = torch.from_numpy(img).float()
        batch = orig.FastBaseTransform()(frame.unsqueeze(0))
        preds = net(batch)
        return orig.postprocess(preds, w, h, crop_masks=True, score_threshold=0)


def match_detections(scores_a, labels_a, boxes_a, scores_b, labels_b, boxes_b) -> list:
    """Pairs (i, j) of the same detection in two result lists: same label, box within 1 px and
    score within 1e-4, taken greedily in list a's order. Pairing instead of comparing position
    by position keeps two nearly tied detections that swap places from counting as differences."""
    pairs, used = [], np.zeros(len(scores_b), dtype=bool)
    for i in range(len(scores_a)):
        ok = (~used & (labels_b == labels_a[i]) & (np.abs(boxes_b - boxes_a[i]).max(1) <= 1)
              & (np.abs(scores_b - scores_a[i]) < 1e-4))
        if ok.any():
            j = int(np.argmin(np.where(ok, np.abs(scores_b - scores_a[i]), np.inf)))
            used[j] = True
            pairs.append((i, j))
    return pairs


def compare(orig_out, ours) -> dict:
    classes, scores, boxes, masks = (t.cpu().numpy() for t in orig_out)
    boxes = boxes.astype(np.int64)
    ours_boxes = np.asarray(ours.boxes).astype(np.int64)
    pairs = match_detections(scores, classes, boxes, ours.scores, ours.labels, ours_boxes)
    same_place = sum(i == j for i, j in pairs)
    o = np.array([i for i, _ in pairs], dtype=np.int64)
    u = np.array([j for _, j in pairs], dtype=np.int64)
    n = len(pairs)
    m_o = masks[o].reshape(n, -1) > 0.5
    m_n = np.asarray(ours.masks)[u].reshape(n, -1).astype(bool)
    inter, union = (m_o & m_n).sum(1), (m_o | m_n).sum(1)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return {
        "count": (len(scores), len(ours.scores)),
        "matched": n,
        "same_place": same_place,
        "max_score_diff": float(np.abs(scores[o] - ours.scores[u]).max()) if n else 0.0,
        "boxes_equal": bool(np.array_equal(boxes[o], ours_boxes[u])),
        "masks_identical": int((m_o == m_n).all(1).sum()),
        "mask_pixels_differing": int((m_o != m_n).sum()),
        "mask_iou_min": float(iou.min()) if n else 1.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--original", required=True, type=Path, help="checkout of github.com/dbolya/yolact")
    ap.add_argument("--config", default="yolact_base", help="yolact_base, yolact_resnet50, ... (YOLACT v1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--size", default="640x480", help="image WxH")
    ap.add_argument("--openvino", action="store_true",
                    help="also time OpenVINO fp32, bf16 and int8 (NNCF, 32 synthetic calibration images)")
    ap.add_argument("--int8-candidates", action="store_true",
                    help="with --openvino: also the int8 candidates of issue #32 (post-processing in the IR, "
                         "NNCF's mixed preset, OpenVINO CPU settings, ONNX Runtime int8)")
    args = ap.parse_args()
    if not (args.original / "yolact.py").is_file():
        sys.exit(f"error: {args.original}: not a checkout of dbolya/yolact (no yolact.py)")
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    shims = shim_original_for_cpu()
    orig = import_original(args.original.resolve())
    img, _ = make_image(np.random.default_rng(0), h, w)

    with tempfile.TemporaryDirectory() as d:
        weights = Path(d) / f"{args.config}_54_800000.pth"
        net = build_original(orig, args.config, weights)
        ours = {"fp32": yolact.load(weights),
                "fp32-fused": yolact.load(weights, precision="fp32-fused"),
                "bf16": yolact.load(weights, precision="bf16")}
        if args.openvino:
            from yolact.deploy.calibration import calibration_images
            from yolact.deploy.openvino import OpenVinoPredictor as OpenVinoModel, export_openvino
            calib = calibration_images(None, None, 32, ours["fp32"].cfg.max_size, progress=False)
            xml = export_openvino(ours["fp32"], Path(d) / "ov.xml")
            xml8 = export_openvino(ours["fp32"], Path(d) / "ov_int8.xml", int8="full", calibration=calib)
            ours.update({"openvino fp32": OpenVinoModel(xml), "openvino bf16": OpenVinoModel(xml, precision="bf16"),
                         "openvino int8": OpenVinoModel(xml8)})
            if args.int8_candidates:
                ours.update(int8_candidates(ours["fp32"], Path(d), calib))

    ref = original_predict(orig, net, img)
    runs = {"original (dbolya/yolact), fp32": lambda: original_predict(orig, net, img)}
    for name, model in ours.items():
        runs[f"yolact (this package), {name}"] = (
            lambda m=model: m.predict(img, score_threshold=0, keep_image=False))
    times = interleaved_latency(runs, args.repeats)
    t_orig = times["original (dbolya/yolact), fp32"]
    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"{torch.get_num_threads()} threads  {args.config}  image {w}x{h}  median of {args.repeats} "
          f"interleaved rounds  shims: {', '.join(shims) or 'none'}")
    print()
    print("| implementation | latency ms | vs original |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {1000 * t:.0f} | {t / t_orig:.2f} |")
    from yolact.deploy.timing import gemm_rate
    from yolact.model.flops import count_flops
    flops = count_flops(ours["fp32"])
    print()
    print("| arithmetic | measured GEMM rate | compute floor ms | floor vs original |")
    print("|---|---|---|---|")
    for label, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8 (torch._int_mm)", torch.int8)):
        rate = gemm_rate(dt)
        print(f"| {label} | {rate / 1e9:.0f} G/s | {1000 * flops / rate:.0f} | {flops / rate / t_orig:.2f} |")
    print()
    print("| ours vs original | detections (ours / original) | same detection found | in the same place | "
          "boxes equal | max score diff | identical masks | differing mask pixels | min mask IoU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, model in ours.items():
        if "bf16" in name or "int8" in name:
            continue  # random weights amplify low-precision rounding; accuracy is measured by accuracy.py
        c = compare(ref, model.predict(img, score_threshold=0))
        print(f"| {name} | {c['count'][1]} / {c['count'][0]} | {c['matched']} | {c['same_place']} | "
              f"{c['boxes_equal']} | {c['max_score_diff']:.1e} | {c['masks_identical']} / {c['matched']} | "
              f"{c['mask_pixels_differing']} | {c['mask_iou_min']:.4f} |")

def int8_candidates(model, folder: Path, calib) -> dict:
    """The int8 paths issue #32 asks to measure rather than assume, each a predictor."""
    from yolact.deploy.onnx import OnnxPredictor, export_onnx, quantize_onnx
    from yolact.deploy.openvino import OpenVinoPredictor, export_openvino

    out = {}
    post = export_openvino(model, folder / "ov_int8_post.xml", int8="full", calibration=calib, include_postprocess=True)
    out["openvino int8, post-processing in the IR"] = OpenVinoPredictor(post)
    mixed = export_openvino(model, folder / "ov_int8_mixed.xml", int8="mixed", calibration=calib)
    out["openvino int8, NNCF mixed preset"] = OpenVinoPredictor(mixed)
    for label, settings in (("2 threads, 1 stream, pinned", {"INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1,
                                                              "ENABLE_CPU_PINNING": True}),
                            ("1 thread", {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})):
        p = OpenVinoPredictor(folder / "ov_int8.xml")
        p._latency = p.core.compile_model(p._model, "CPU", {"PERFORMANCE_HINT": "LATENCY", **settings})
        out[f"openvino int8, {label}"] = p
    fp32 = export_onnx(model, folder / "ort.onnx")
    out["onnxruntime int8 (static QDQ)"] = OnnxPredictor(quantize_onnx(fp32, folder / "ort_int8.onnx", calib))
    return out


def interleaved_latency(runs: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds per run, the runs taken in turn each round so that drift in the
    machine's speed (other tenants, clocks) falls on all of them alike."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}

if __name__ == "__main__":
    main()
