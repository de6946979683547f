"""Short GPU check of the fixes made after the 2026-12-04 H200 run of benchmarks/gpu.py (<= 200 s).

    PYTHONPATH=$PWD:$PYTHONPATH python3 benchmarks/gpu_verify.py --device cuda --json gpu-verify.json
    PYTHONPATH=$PWD python3 benchmarks/gpu_verify.py --device cpu --quick --json cpu-verify.json   # smoke run

Rows, most important first; each is guarded (``failed: <one line>``) and none starts after
``--budget`` seconds:

1. ``device``: ``--device cuda`` (no index) parsed to ``cuda:N`` and ``torch.cuda.set_device``
   accepting it (torch 2.11 refuses a device without an index).
2. ``train amp fp16`` / ``train amp bf16``: yolact_base training steps, batch 8, under autocast
   (the mask loss's binary_cross_entropy crashed CUDA autocast); step time after two warm-up
   steps, loss finite.
3. ``yolact_plus_base bf16``: inference at batch 1 in bf16 (torchvision's deform_conv2d has no
   bf16 kernel: the DCN layers run in float32 inside).
4. ``batch 32 fp32 to device``: yolact_base 550, 640x480 images, 100 detections per image,
   "to device" as in gpu.py, for this package (Fast NMS in one pass on the GPU: after), this
   package with the CPU's chunked Fast NMS patched back in (before), and the original
   (dbolya/yolact, ``--original``, default ``.orig/yolact`` when present) on the same weights;
   with the operations post-processing dispatches per image (about one kernel launch each).
5. ``compiled``: yolact_resnet50 batch 1, ``torch.compile`` mode ``--compile-mode`` (default
   'default': max-autotune does not fit the lease) on the fp16 network, when time is left.

GPU MiB: the peak after each row's first call (cuDNN's autotuning apart), weights included.
Prints a markdown table; ``--json`` gets the rows (rewritten after each).
"""
from __future__ import annotations

import time

_T0 = time.monotonic()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List, Optional  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent


def _load_gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", HERE / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_gpu_bench()


def elapsed() -> float:
    return time.monotonic() - _T0


# ---------------------------------------------------------------------------------------------
# Before/after switch for Fast NMS: the CPU's chunked IoU (what the GPU ran before) patched in.
# ---------------------------------------------------------------------------------------------


def fast_nms_keep_chunked(cand: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The earlier ``fast_nms_keep`` on every device: [G, D, D] IoU in chunks of
    (1 << 18) // D^2 groups (6 for 200 boxes: 14 chunks for 80 classes)."""
    from yolact.ops.boxes import box_iou

    groups, num_dets = cand.shape[:2]
    if groups == 0 or num_dets == 0:
        return torch.zeros((groups, num_dets), dtype=torch.bool, device=cand.device)
    step = max(1, (1 << 18) // (num_dets * num_dets))
    return torch.cat([box_iou(c, c).triu_(diagonal=1).amax(dim=1) for c in cand.split(step)]) <= iou_threshold


class chunked_nms:
    """Context: PostProcess uses :func:`fast_nms_keep_chunked` (the 'before' of the fix)."""

    def __enter__(self):
        import yolact.model.postprocess as post

        self.saved = post.fast_nms_keep
        post.fast_nms_keep = fast_nms_keep_chunked

    def __exit__(self, *exc):
        import yolact.model.postprocess as post

        post.fast_nms_keep = self.saved


def ops_per_image_or_none(chunked: bool = False) -> Optional[int]:
    """:func:`ops_per_image`, with the chunked Fast NMS when ``chunked``; None if it fails."""
    try:
        if chunked:
            with chunked_nms():
                return ops_per_image()
        return ops_per_image()
    except Exception as exc:  # noqa: BLE001 - a count is a nicety, never a reason to stop
        print(f"operation count failed: {bench._one_line(exc)}", file=sys.stderr)
        return None


def ops_per_image(classes: int = 80, priors: int = 19248, proto: int = 138, k: int = 32, size=(480, 640)) -> int:
    """Operations (views left out) that PostProcess.forward_static + to_image dispatch for one
    image, counted on the meta device (no data; the non-CPU path): about its kernel launches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from yolact.config import get_config
    from yolact.model.postprocess import PostProcess

    views = {"view", "_unsafe_view", "select", "slice", "unbind", "as_strided", "expand", "permute", "t",
             "unsqueeze", "squeeze", "alias", "transpose", "detach", "split", "split_with_sizes", "lift_fresh"}

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in views:
                Count.n += 1
            return func(*args, **(kwargs or {}))

    post = PostProcess(get_config("yolact_base"))
    args = (torch.rand(priors, 4, device="meta"), torch.rand(priors, classes + 1, device="meta"),
            torch.rand(priors, k, device="meta"), torch.rand(proto, proto, k, device="meta"))
    with Count():
        PostProcess.to_image(post.forward_static(*args, 0.0, 100), *size)
    return Count.n


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


class Verify:
    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.rows: List[Dict] = []
        self.env: Dict = {}
        self.lock = threading.RLock()

    def save(self) -> None:
        if not self.args.json:
            return
        with self.lock:
            doc = {"environment": self.env, "settings": {k: str(v) for k, v in vars(self.args).items()},
                   "elapsed_s": round(elapsed(), 1), "rows": self.rows}
            path = Path(self.args.json)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(doc, indent=1, default=str))
            os.replace(tmp, path)

    def row(self, name: str, need_s: float, body: Callable[[Dict], None], **fields) -> Dict:
        row = dict(check=name, status="pending", note="", **fields)
        self.rows.append(row)
        left = self.args.budget - elapsed()
        if left < need_s:
            row.update(status="skipped", note=f"time budget: {left:.0f} s left, the row needs ~{need_s:.0f} s")
            self.save()
            print(f"[{elapsed():5.0f} s] {name}: {row['note']}", file=sys.stderr, flush=True)
            return row
        t0 = time.monotonic()
        try:
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            body(row)
            row["status"] = "ok" if row["status"] == "pending" else row["status"]
            if self.device.type == "cuda":
                row["gpu_mem_mib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20)
        except Exception as exc:  # noqa: BLE001 - one failing check must not end the run
            row.update(status="failed", note=bench._one_line(exc))
        finally:
            row["seconds"] = round(time.monotonic() - t0, 1)
            bench._free_device_memory(self.device)
        print(f"[{elapsed():5.0f} s] {name}: {row['status']} {row['note']} {_time_text(row)}", file=sys.stderr,
              flush=True)
        self.save()
        return row


def _time_text(row: Dict) -> str:
    t = row.get("timing")
    return f"{t['p50_ms']:.1f} / {t['p90_ms']:.1f} ms" if t else ""


def check_device(v: Verify, row: Dict) -> None:
    dev = bench.parse_device(v.args.device)
    row["parsed"] = str(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # raised "Expected a torch.device with a specified index" for 'cuda'
        row["note"] = f"--device {v.args.device} -> {dev}; torch.cuda.set_device accepted it"
    else:
        row["note"] = f"--device {v.args.device} -> {dev}"
    from yolact.cli.common import device as cli_device

    assert cli_device(v.args.device) == dev, (cli_device(v.args.device), dev)


def train_step(v: Verify, row: Dict, preset: str, batch: int, amp_dtype: str) -> None:
    """Two warm-up steps (cuDNN autotuning, the loss scale settling) then timed steps."""
    from yolact.config import get_config
    from yolact.data.coco import CocoDataset
    from yolact.data.synth import generate
    from yolact.training import Trainer, TrainOptions

    name, _, size = preset.partition("@")
    with tempfile.TemporaryDirectory() as d:
        generate(Path(d), batch, 0, size=256, seed=0, max_objects=4)
        data = CocoDataset(Path(d) / "train.json", Path(d) / "train", train=True, verbose=False)
        cfg = get_config(name, class_names=data.class_names)
        if size:
            cfg = cfg.replace(max_size=int(size))
        data.cfg = cfg
        opts = TrainOptions(out=str(Path(d) / "run"), iters=10, batch_size=batch, device=str(v.device), amp=True,
                            amp_dtype=amp_dtype, progress=False)
        trainer = Trainer(cfg, data, opts)
        images, targets = next(iter(trainer._loader(0, 0)))
        results = []

        def step():
            results.append(trainer._step(images, targets))

        step()
        bench._steady_memory_from_here(row, v.device)
        if v.device.type == "cuda":
            step()  # the loss scale settles
        row["timing"] = bench._with_rate(bench._measure(step, v.device, 0, v.args.train_iters, 3.0), batch)
        done = [r for r in results if r is not None]
        row["skipped_steps"] = len(results) - len(done)
        if not done:
            raise RuntimeError("every step was skipped (non-finite loss or gradients)")
        row["loss_total"] = round(done[-1]["total"], 4)
        row["scaler"] = trainer.scaler.is_enabled()
        if not np.isfinite(done[-1]["total"]):
            raise RuntimeError(f"non-finite loss {done[-1]['total']}")


def infer_row(v: Verify, row: Dict, model, images: List[np.ndarray], iters: int) -> None:
    first = bench._infer_to_device(model, images)
    row["detections_per_image"] = float(np.mean([len(d["scores"]) if d["valid"] is None else int(d["valid"].sum())
                                                 for d in first]))
    del first
    bench._steady_memory_from_here(row, v.device)
    with torch.no_grad():
        x = bench._network_input(model, images)

    def network_only():
        with torch.no_grad():
            bench._network(model, x)

    row["network"] = bench._with_rate(bench._measure(network_only, v.device, 1, iters, 3.0), len(images))
    row["timing"] = bench._with_rate(bench._measure(lambda: bench._infer_to_device(model, images), v.device,
                                                    v.args.warmup, iters, 5.0), len(images))


def batch_rows(v: Verify, images: List[np.ndarray]) -> None:
    """Ours after / ours before (chunked Fast NMS) / the original, same weights and images."""
    args, device = v.args, v.device
    state: Dict = {}
    cfg_name = args.batch_preset

    def setup():
        if state:
            return
        import yolact

        if args.original and "@" not in cfg_name:
            from vs_original import build_original, import_original, shim_original_for_cpu

            v.env.setdefault("shims", []).extend(f"original: {s}" for s in shim_original_for_cpu())
            orig = import_original(Path(args.original).resolve())
            with tempfile.TemporaryDirectory() as tmp:
                weights = Path(tmp) / f"{cfg_name}_54_800000.pth"
                net = build_original(orig, cfg_name, weights)
                ours = yolact.load(weights, device=device)
            with torch.no_grad():  # its priors: built in one CPU forward (see gpu.py)
                net(orig.FastBaseTransform()(torch.from_numpy(images[0][None]).float()))
            state.update(orig=orig, net=net.to(device).eval(), ours=ours.eval())
        else:
            state.update(ours=bench.prepare(bench.build_model(cfg_name), device, "fp32", None))

    def ours(row, chunked: bool):
        setup()
        if chunked:
            with chunked_nms():
                infer_row(v, row, state["ours"], images, args.batch_iters)
        else:
            infer_row(v, row, state["ours"], images, args.batch_iters)

    def original(row):
        setup()
        orig, net = state["orig"], state["net"]
        h, w = images[0].shape[:2]

        def run():
            with torch.no_grad():
                frames = torch.from_numpy(np.stack(images)).to(device).float()
                preds = net(orig.FastBaseTransform()(frames))
                return [orig.postprocess(preds, w, h, batch_idx=i, crop_masks=True, score_threshold=0)
                        for i in range(len(images))]

        first = run()
        row["detections_per_image"] = float(np.mean([len(o[1]) for o in first]))
        del first
        bench._steady_memory_from_here(row, device)
        row["timing"] = bench._with_rate(bench._measure(run, device, args.warmup, args.batch_iters, 5.0), len(images))

    b = len(images)
    common = dict(model=cfg_name, batch=b, mode="fp32")
    v.row(f"batch {b} fp32 to device: this package (after)", 25,
          lambda row: ours(row, False), ops_per_image=ops_per_image_or_none(), **common)
    before_ops = ops_per_image_or_none(chunked=True)
    v.row(f"batch {b} fp32 to device: this package, chunked Fast NMS (before)", 15,
          lambda row: ours(row, True), ops_per_image=before_ops, **common)
    if args.original and "@" not in cfg_name:
        v.row(f"batch {b} fp32 to device: dbolya/yolact", 25, original, **common)
    else:
        v.rows.append(dict(check=f"batch {b} fp32 to device: dbolya/yolact", status="skipped",
                           note="no --original checkout", **common))


def compiled_row(v: Verify, row: Dict, images: List[np.ndarray]) -> None:
    precision = "fp16" if v.device.type == "cuda" else "fp32"
    row["precision"] = precision
    model = bench.prepare(bench.build_model(v.args.compile_preset), v.device, precision, v.args.compile_mode)
    infer_row(v, row, model, images, v.args.iters)


# ---------------------------------------------------------------------------------------------
# Report and main
# ---------------------------------------------------------------------------------------------


def print_report(v: Verify) -> None:
    env = v.env
    print(f"# {env.get('date_utc')} UTC  {env.get('device_name')} ({env.get('device')})  torch {env.get('torch')}  "
          f"torchvision {env.get('torchvision')} (deform_conv2d: {env.get('torchvision_deform_conv2d')})")
    print()
    print("| check | model | batch | mode | network p50 ms | p50 / p90 ms | images/s | ops / image | GPU MiB "
          "| status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in v.rows:
        t, net = r.get("timing"), r.get("network")
        times = f"{t['p50_ms']:.1f} / {t['p90_ms']:.1f}" if t else ""
        rate = f"{t['images_per_s']:.1f}" if t else ""
        status = f"{r['status']}: {r['note']}" if r.get("note") else r["status"]
        if r.get("loss_total") is not None:
            status += f" (loss {r['loss_total']}, scaler {'on' if r.get('scaler') else 'off'})"
        mem = r.get("gpu_mem_mib", "n/a")
        net_text = f"{net['p50_ms']:.1f}" if net else ""
        print(f"| {r['check']} | {r.get('model', '')} | {r.get('batch', '')} | {r.get('mode', '')} | {net_text} | "
              f"{times} | {rate} | {r.get('ops_per_image', '')} | {mem} | {status} |")
    print(f"\n{elapsed():.0f} s in all")
    sys.stdout.flush()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (no index: the point of check 1), cuda:N or cpu")
    ap.add_argument("--quick", action="store_true", help="CPU smoke run: small presets, batches and images")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--original", type=Path, default=None,
                    help="dbolya/yolact checkout (default .orig/yolact when present; 'none' to skip)")
    ap.add_argument("--budget", type=float, default=None, help="start no row after this (default 160 s GPU, 900 CPU)")
    ap.add_argument("--hard-limit", type=float, default=None, help="end here, writing what there is "
                                                                   "(default budget + 40 s)")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode of the compiled row")
    ap.add_argument("--compile-cpu", action="store_true", help="run the compiled row on the CPU too")
    args = ap.parse_args(argv)
    quick_cpu = args.quick or args.device == "cpu"
    if args.original is None:
        default = Path(".orig/yolact")
        args.original = default if (default / "yolact.py").is_file() and not quick_cpu else None
    elif str(args.original).lower() == "none":
        args.original = None
    elif not (args.original / "yolact.py").is_file():
        sys.exit(f"error: --original {args.original}: not a checkout of dbolya/yolact (no yolact.py)")
    if quick_cpu:
        args.train_preset, args.train_batch, args.train_iters = "yolact_resnet18@64", 2, 1
        args.plus_preset, args.batch_preset, args.batch = "yolact_plus_resnet50@256", "yolact_base@160", 4
        args.compile_preset, args.image = "demo", (160, 120)
        args.iters, args.batch_iters, args.warmup = 2, 2, 1
        args.budget = args.budget or 900.0  # a loaded 2-core machine without bf16 instructions
    else:
        args.train_preset, args.train_batch, args.train_iters = "yolact_base", 8, 5
        args.plus_preset, args.batch_preset, args.batch = "yolact_plus_base", "yolact_base", 32
        args.compile_preset, args.image = "yolact_resnet50", (640, 480)
        args.iters, args.batch_iters, args.warmup = 10, 5, 2
        args.budget = args.budget or 160.0  # + the 40 s of --hard-limit: done within 200 s
    if args.hard_limit is None:
        args.hard_limit = args.budget + 40.0
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))  # vs_original
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    device = bench.parse_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32, as gpu.py
        torch.backends.cuda.matmul.allow_tf32 = False
    v = Verify(args, device)
    v.env = bench.environment(device, [args.batch_preset])

    def hard_stop():  # a compile or a hang past the lease: write what there is, then end
        with v.lock:
            for r in v.rows:
                if r["status"] == "pending":
                    r.update(status="failed", note=f"stopped at the hard limit ({args.hard_limit:.0f} s)")
            try:
                v.save()
                print_report(v)
            finally:
                sys.stdout.flush()
                os._exit(0)

    watchdog = threading.Timer(max(0.0, args.hard_limit - elapsed()), hard_stop)
    watchdog.daemon = True
    watchdog.start()
    w, h = args.image
    rng = np.random.default_rng(0)
    images = [bench.make_image(rng, h, w)[0] for _ in range(args.batch)]
    amp_modes = ("fp16", "bf16") if device.type == "cuda" else ("bf16",)

    v.row("device", 0, lambda row: check_device(v, row))
    for dtype in amp_modes:
        v.row(f"train amp {dtype}", 15, lambda row, dtype=dtype: train_step(v, row, args.train_preset, args.train_batch,
                                                                           dtype),
              model=args.train_preset, batch=args.train_batch, mode=f"amp {dtype}")
    v.row("inference bf16", 12, lambda row: infer_row(v, row, bench.prepare(bench.build_model(args.plus_preset),
                                                                             device, "bf16", None), images[:1],
                                                       args.iters),
          model=args.plus_preset, batch=1, mode="bf16")
    batch_rows(v, images)
    compiled = dict(model=args.compile_preset, batch=1, mode=f"compiled ({args.compile_mode})")
    if device.type == "cuda" or args.compile_cpu:
        v.row("compiled", 60, lambda row: compiled_row(v, row, images[:1]), **compiled)
    else:
        v.rows.append(dict(check="compiled", status="skipped", note="CPU: only with --compile-cpu (minutes)",
                           **compiled))
    watchdog.cancel()
    v.save()
    print_report(v)


if __name__ == "__main__":
    main()
