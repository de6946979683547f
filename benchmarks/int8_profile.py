"""Where an int8 predict spends its time, end to end (issue #32 item 2), one 640x480 image.

    python benchmarks/int8_profile.py [--preset yolact_base] [--repeats 9] [--onnxruntime]

Random weights with the class bias of the worst case (100 detections reach post-processing; the
same model as ``benchmarks/vs_original.py``), quantised with NNCF on 32 synthetic calibration
images. Each phase of ``predict`` is timed on its own, median of the repeats:

- pre-processing: BGR uint8 -> the network's float input (resize, normalise; ``YolactTransform``);
- the graph: the OpenVINO IR (or ONNX Runtime session) itself;
- host post-processing: decoding, Fast NMS and the mask coefficients (``PostProcess``), or with
  the post-processing graph only reading its fixed-size outputs;
- masks: assembly, upsampling in the boxes and thresholding (``PostProcess.to_image``);
- the rest: ``predict`` end to end minus the phases (Results, copies, Python).

Then OpenVINO's own per-layer counters (``PERF_COUNT``) by kernel kind and the slowest layers,
and the int8 GEMM floor of the network (``torch._int_mm`` rate; ``yolact.deploy.timing``).
"""
from __future__ import annotations

import argparse
import collections
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from latency import busy_model, median_latency  # noqa: E402

import yolact  # noqa: E402
from yolact.checkpoint import save_checkpoint  # noqa: E402
from yolact.data.synth import make_image  # noqa: E402
from yolact.model.postprocess import PostProcess  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    return 1000 * median_latency(fn, repeats, warmup=2)


def phases(predictor, img: np.ndarray, repeats: int) -> dict:
    """Milliseconds of each phase of ``predictor.predict(img, score_threshold=0)``."""
    opts = predictor.options(score_threshold=0.0, keep_image=False)
    h, w = img.shape[:2]
    transform = predictor.transform()
    x = transform.resize([img], predictor.device)
    outs = predictor.run_each(x.cpu().numpy())
    graph = predictor.run_each
    predictor.run_each = lambda images: outs  # the host's share of _detect without the graph
    try:
        post_ms = median_ms(lambda: predictor._detect(x, [opts]), repeats)
        det = predictor._detect(x, [opts])[0]
    finally:
        predictor.run_each = graph
    times = {
        "pre-processing": median_ms(lambda: transform.resize([img], predictor.device), repeats),
        "the graph": median_ms(lambda: predictor.run_each(x.cpu().numpy()), repeats),
        "host post-processing": post_ms,
        "masks (upsample in boxes, threshold)": median_ms(
            lambda: PostProcess.to_image(det, h, w, True, predictor.cfg.mask_interpolation), repeats),
    }
    total = median_ms(lambda: predictor.predict(img, score_threshold=0, keep_image=False), repeats)
    times["the rest (Results, copies)"] = max(0.0, total - sum(times.values()))
    times["predict, end to end"] = total
    times["detections"] = len(det.scores)
    return times


def openvino_layers(xml: Path, size: int, repeats: int, top: int = 8):
    """(by kernel kind [(ms, count, kind)], slowest layers [(ms, name, kind)]) of one inference."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, size, size)).astype(np.float32)
    for _ in range(max(3, repeats // 3)):
        request.infer({0: x})
    kinds, counts = collections.Counter(), collections.Counter()
    layers = []
    for info in request.get_profiling_info():
        ms = info.real_time.total_seconds() * 1000
        if ms <= 0:
            continue
        key = f"{info.node_type} ({info.exec_type})"
        kinds[key] += ms
        counts[key] += 1
        layers.append((ms, info.node_name, info.exec_type))
    return ([(ms, counts[k], k) for k, ms in kinds.most_common()], sorted(layers, reverse=True)[:top])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="yolact_base")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--onnxruntime", action="store_true", help="also ONNX Runtime int8 (static QDQ)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from yolact.deploy.calibration import calibration_images
    from yolact.deploy.openvino import OpenVinoPredictor, export_openvino
    from yolact.deploy.timing import gemm_rate
    from yolact.model.flops import count_flops

    img, _ = make_image(np.random.default_rng(0), 480, 640)
    with tempfile.TemporaryDirectory() as d:
        weights = Path(d) / f"{args.preset}.pt"
        save_checkpoint(weights, busy_model(args.preset))
        model = yolact.load(weights)
        calib = calibration_images(None, None, 32, model.cfg.max_size, progress=False)
        xml = export_openvino(model, Path(d) / "int8.xml", int8="full", calibration=calib)
        paths = {
            "OpenVINO int8": OpenVinoPredictor(xml),
            "OpenVINO int8, post-processing in the IR": OpenVinoPredictor(export_openvino(
                model, Path(d) / "int8_post.xml", int8="full", calibration=calib, include_postprocess=True)),
        }
        if args.onnxruntime:
            from yolact.deploy.onnx import OnnxPredictor, export_onnx, quantize_onnx

            fp32 = export_onnx(model, Path(d) / "fp32.onnx")
            paths["ONNX Runtime int8 (static QDQ)"] = OnnxPredictor(quantize_onnx(fp32, Path(d) / "int8.onnx", calib))
        rows = {name: phases(p, img, args.repeats) for name, p in paths.items()}
        kinds, layers = openvino_layers(xml, model.cfg.max_size, args.repeats)
        flops = count_flops(model)
    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"{torch.get_num_threads()} threads  {args.preset}  640x480  median of {args.repeats}")
    print()
    names = list(rows)
    print("| phase, ms | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for phase in next(iter(rows.values())):
        cells = [f"{rows[n][phase]:.0f}" if phase == "detections" else
                 f"{rows[n][phase]:.1f} ({100 * rows[n][phase] / rows[n]['predict, end to end']:.0f}%)"
                 for n in names]
        print(f"| {phase} | " + " | ".join(cells) + " |")
    print()
    rate = gemm_rate(torch.int8)
    print(f"int8 GEMM floor of the network: {flops / 1e9:.0f} GFLOP at {rate / 1e9:.0f} GFLOP/s "
          f"(torch._int_mm) = {1000 * flops / rate:.0f} ms")
    print()
    print("| OpenVINO int8 kernels | ms | layers |")
    print("|---|---|---|")
    for ms, count, kind in kinds[:10]:
        print(f"| {kind} | {ms:.1f} | {count} |")
    print()
    print("| slowest OpenVINO int8 layers | ms | kernel |")
    print("|---|---|---|")
    for ms, name, kind in layers:
        print(f"| {name} | {ms:.1f} | {kind} |")


if __name__ == "__main__":
    main()
