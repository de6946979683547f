"""CLI verbs for deployment: ``export`` and ``benchmark``."""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from ..errors import YolactError
from .common import add_model_args, load_model, weights_path


def cmd_export(args) -> int:
    """Run ``yolact export`` (the --format's row of the formats table: ONNX, optionally int8;
    OpenVINO IR; fp16 checkpoint; ...); returns exit code 0."""
    from ..deploy import load_predictor
    from ..formats import export_formats, resolve

    from .. import checks

    fmt = check_export_args(args)  # before the model loads
    checks.extra(f"export --format {args.format}", fmt.extra)
    # exact fp32: each exporter converts (and, where it fuses, folds) the network itself
    model = load_predictor(weights_path(args.weights), config=args.config, device="cpu", backend="torch",
                           precision="fp32")
    resolve(export_formats()[args.format].export)(model, args, log=print)
    return 0


EDGE_BACKENDS = ("litert", "executorch", "coreml", "ncnn")


def check_export_args(args):
    """``yolact export``'s flags checked before the model loads (a one-line YolactError for
    one the --format cannot honour); -> the format's row. The exporter itself refuses the
    rest before any work (``yolact.deploy.graph.refuse_core_only_options``)."""
    from ..deploy.onnx import check_opset
    from ..formats import DEFAULT_FORMAT, a_title, export_formats, format_for

    fmt = export_formats()[args.format]
    source = format_for(args.weights) if args.weights else None
    if source is not None and source.name != DEFAULT_FORMAT:  # export converts the PyTorch model only
        raise YolactError(f"{args.weights}: {a_title(source)} file; export converts a PyTorch checkpoint "
                          "(.pth/.pt) or a zoo name")
    check_opset(args.opset, args.include_postprocess)
    if args.max_det is not None and args.max_det < 1:
        raise YolactError(f"--max-det {args.max_det}: expected at least 1")
    _check_export_args(args, fmt.name)
    return fmt


def _check_export_args(args, backend: str) -> None:
    """Refuse export options that the chosen format would ignore (YolactError, one line)."""
    from .. import checks

    onnx_only = {"--quantize": args.quantize is not None, "--dynamic-batch": args.dynamic_batch,
                 # OpenVINO and the edge exporters take it (the edge ones refuse it themselves where they cannot)
                 "--include-postprocess": args.include_postprocess is not None and backend != "openvino"
                 and backend not in EDGE_BACKENDS}
    if backend != "onnxruntime":
        for flag, given in onnx_only.items():
            if given:
                hint = " (OpenVINO int8: --int8)" if flag == "--quantize" and backend == "openvino" else ""
                raise YolactError(f"{flag} applies to --format onnx only, not --format {args.format}{hint}")
    if backend not in ("openvino", "litert", "ncnn") and args.int8 is not None:
        hint = " (ONNX int8: --quantize int8)" if backend == "onnxruntime" else ""
        raise YolactError(f"--int8 applies to --format openvino, litert and ncnn only, not --format {args.format}{hint}")
    quantizing = args.int8 is not None or args.quantize is not None
    checks.needs("--calib", args.calib is not None, "--int8 or --quantize int8", quantizing)
    checks.needs("--calib-images", args.calib_images is not None, "--calib", args.calib is not None)
    checks.at_least("--calib-count", args.calib_count, 1)
    checks.img_size("--img-size", args.img_size)
    _check_export_suffix(args)


def _check_export_suffix(args) -> None:
    """An --out named like another format's file (``--format litert --out m.pte``), or like
    none (``m.litert``: read back as a PyTorch checkpoint), would be written and then never
    load: refused in one line (the table's suffix rule, ``format_for``)."""
    from ..formats import DEFAULT_FORMAT, a_title, export_formats, format_for

    if not args.out:
        return
    fmt, named = export_formats()[args.format], format_for(args.out)
    if named.name == fmt.name:
        return
    if named.name == DEFAULT_FORMAT:  # any other name is read back as a PyTorch checkpoint
        raise YolactError(f"--out {args.out}: --format {args.format} writes a {fmt.output_suffix} file, and a file "
                          f"named so would be read back as a PyTorch checkpoint (name it NAME{fmt.output_suffix})")
    raise YolactError(f"--out {args.out}: {a_title(named)} name, but --format {args.format} writes "
                      f"a {fmt.output_suffix} file (name it NAME{fmt.output_suffix})")


def cmd_benchmark(args) -> int:
    """Run ``yolact benchmark`` (latency, stages and compute floor; ``--backend all`` compares backends);
    returns exit code 0."""
    import torch

    from ..deploy.timing import benchmark, gemm_rate
    from ..model.flops import count_flops

    from .. import checks

    checks.at_least("--batch-size", args.batch_size, 1)
    checks.at_least("--warmup", args.warmup, 0)
    checks.at_least("--repeats", args.repeats, 1)
    checks.at_least("--threads", args.threads, 1)
    checks.at_least("--calib-count", args.calib_count, 1)
    checks.in_range("--score-threshold", args.score_threshold, 0.0, 1.0)
    checks.existing_file("--image", args.image)
    checks.existing_file("--ann", args.ann)
    checks.existing_folder("--images", args.images)
    checks.needs("--images", args.images is not None, "--ann", args.ann is not None)
    checks.needs("--ann", args.ann is not None, "--images", args.images is not None)
    for flag in ("ann", "calib"):
        checks.needs(f"--{flag}", getattr(args, flag) is not None, "--backend all", args.backend == "all")
    checks.output_file("--json", args.json)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.backend == "all":
        return _benchmark_all(args)
    model = load_model(args)
    img = _benchmark_image(args)
    r = benchmark(model, img, warmup=args.warmup, repeats=args.repeats, batch_size=args.batch_size,
                  score_threshold=args.score_threshold)
    device = str(getattr(model, "device", "cpu"))
    name = torch.cuda.get_device_name() if device.startswith("cuda") else (platform.processor() or platform.machine())
    print(f"model {model.cfg.name}  backend {model.backend}  precision {model.precision}  batch {args.batch_size}  "
          f"device {device} ({name}, {torch.get_num_threads()} threads)  image {img.shape[1]}x{img.shape[0]}")
    print(f"end-to-end median {1000 * r['latency_s']:.1f} ms  ({r['fps']:.2f} images/s)")
    if "stages" in r:
        total = sum(r["stages"].values())
        for k, v in r["stages"].items():
            print(f"  {k:11}{1000 * v:9.1f} ms {100 * v / total:6.1f}%")
    if model.backend == "torch":
        flops = count_flops(model)
        dtype = next(model.parameters()).dtype
        rate = gemm_rate(dtype, device="cuda" if device.startswith("cuda") else "cpu")
        floor = flops * args.batch_size / rate
        print(f"compute: {flops / 1e9:.1f} GFLOP/image, measured GEMM {rate / 1e9:.0f} GFLOP/s ({str(dtype)[6:]}) "
              f"-> floor {1000 * floor:.0f} ms; latency / floor = {r['latency_s'] / floor:.2f}")
        r.update(gflop=flops / 1e9, gemm_gflops=rate / 1e9, floor_s=floor)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


def _benchmark_image(args):
    """--image, or a synthetic 640x480 image (the same one every run)."""
    if args.image:
        from ..data.images import read_image
        return read_image(args.image)
    import numpy as np

    from ..data.synth import make_image
    return make_image(np.random.default_rng(0), 480, 640)[0]


def _benchmark_all(args) -> int:
    from ..deploy import backend_for, load_predictor
    from ..deploy.benchmark import compare_backends, format_backends
    from ..deploy.calibration import calibration_images

    weights = weights_path(args.weights)
    if backend_for(weights) != "torch":
        raise YolactError(f"{weights}: --backend all starts from a PyTorch checkpoint")
    size = load_predictor(weights, device="cpu").cfg.max_size
    img = _benchmark_image(args)
    calib = calibration_images(args.calib, args.calib_images, args.calib_count, size)
    rows = compare_backends(weights, img, calib, warmup=args.warmup, repeats=args.repeats, ann=args.ann,
                            images=args.images, log=lambda m: print(m, flush=True))
    print(f"{Path(weights).name}, image {img.shape[1]}x{img.shape[0]}, batch 1, "
          f"{platform.processor() or platform.machine()}")
    print(format_backends(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _either(items, last: str = " or ") -> str:
    """'a, b or c' (``last`` joins the final pair)."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + last + items[-1]


def add_commands(sub) -> None:
    """Add the ``export`` and ``benchmark`` verbs to ``sub``."""
    from ..formats import DEFAULT_EXPORT, export_formats

    formats = export_formats()  # the rows of the formats table that export
    p = sub.add_parser("export", help=f"export to {_either(list(formats))} (--format; onnx optionally with "
                                      "Fast NMS and masks inside)")
    p.add_argument("--weights", "-w", default=None, help="checkpoint, or a zoo name (see `yolact weights`)")
    p.add_argument("--config", "-c", default=None)
    p.add_argument("--format", default=DEFAULT_EXPORT, choices=list(formats),
                   help=_either([f.description for f in formats.values()], ", or "))
    p.add_argument("--out", "-o", default=None,
                   help=f"output path ({_either(list(dict.fromkeys(f.output_suffix for f in formats.values())))})")
    p.add_argument("--int8", nargs="?", const="full", choices=["full", "mixed"], default=None,
                   help="OpenVINO: quantise with NNCF (mixed: NNCF's mixed preset, mask layers kept in float); "
                        "LiteRT: static int8 network with ai-edge-quantizer (full only); "
                        "NCNN: ncnn2table (KL) + ncnn2int8, built by third_party/ncnn_quantize/build.sh (full only)")
    p.add_argument("--calib", "--calibration-images", dest="calib", default=None,
                   help="int8 calibration images (--int8 and --quantize int8): a folder, or a COCO .json with "
                        "--calib-images (default: synthetic shapes)")
    p.add_argument("--calib-images", default=None, help="image folder of a COCO --calib file")
    p.add_argument("--calib-count", type=int, default=300, help="calibration images to use")
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--dynamic-batch", action="store_true")
    p.add_argument("--include-postprocess", action=argparse.BooleanOptionalAction, default=None,
                   help="put threshold, Fast NMS and mask assembly in the graph (batch 1); default: on for "
                        "litert, executorch and coreml (the whole pipeline at a fixed K = --max-det), off for onnx and "
                        "openvino")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="ONNX: also write a static int8 model (ONNX Runtime), calibrated on --calib")
    p.add_argument("--max-det", type=int, default=None,
                   help="with --include-postprocess: the graph's cap on detections (default: the preset's, 100)")
    p.add_argument("--opset", type=int, default=17,
                   help="ONNX opset (default 17): the core graph exports at 11..23, "
                        "--include-postprocess at 14..23")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("benchmark", help="latency, per-stage times, fps and the compute floor")
    add_model_args(p, backend=True, also=("all",), calib=False)  # all: every path side by side
    p.add_argument("--ann", default=None, help="with --backend all: COCO file for the mask AP of each path")
    p.add_argument("--images", default=None, help="its image folder")
    p.add_argument("--calib", default=None, help="int8 calibration images (folder or COCO .json) of --backend all or --precision int8")
    p.add_argument("--calib-images", default=None)
    p.add_argument("--calib-count", type=int, default=64)
    p.add_argument("--image", default=None, help="image to time (default: a synthetic 640x480)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--score-threshold", type=float, default=0.15)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the figures as JSON")
    p.set_defaults(func=cmd_benchmark)
