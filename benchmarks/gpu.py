"""GPU benchmark in one command: inference modes, batch sizes, training step, the original.

    PYTHONPATH=$PWD python3 benchmarks/gpu.py --device cuda --json gpu.json [--original /path/to/yolact]
    PYTHONPATH=$PWD python3 benchmarks/gpu.py --device cpu --quick --json cpu.json   # under a minute

Written for one GPU and a short lease: at most 8 minutes, no network, nothing beyond torch,
numpy, OpenCV and pycocotools (torchvision and Triton are used when present). It prints a
markdown table and writes a JSON file, rewritten after every row so that a run cut short still
leaves its figures.

Per model, batch size and mode, two end-to-end timings, both starting from BGR uint8 images in
host memory:

- **to device**: upload (pinned staging buffer, non-blocking copy), resize and normalise on the
  device, network, Fast NMS, masks assembled and upsampled to the image size on the device;
  the clock stops when the masks are ready there.
- **to host**: the same, then boxes, scores, labels and boolean masks copied to host memory.
- **network**: the network alone, its input already on the device; to device minus network is
  what upload, pre- and post-processing cost (what bounds the end-to-end figure).

Modes: eager ``fp32`` (TF32 off: true fp32), ``fp16`` and ``bf16`` (BN folded, channels-last;
``yolact.deploy.timing.set_precision``), ``compiled`` (``torch.compile`` max-autotune) and
``cuda-graphs`` (``torch.compile`` reduce-overhead), both on the ``--compile-precision``
network. Latency p50/p90 over the timed iterations; images/s = batch / p50. GPU MiB is
``torch.cuda.max_memory_allocated`` over the row after its first call (weights included): the
first call's peak, which holds cuDNN's autotuning workspaces (GiBs in true fp32), is kept apart
in the JSON as ``gpu_mem_warmup_mib``.

Weights: random initialisation (``yolact.build``, seed 0), since no official checkpoint is on
the GPU machine; speed does not depend on the values, except through the number of
detections, so the class-score bias is raised so that the full 100 detections per image reach
post-processing (the worst case, as in ``benchmarks/vs_original.py``). ``--quick`` on the CPU
uses the built-in demo model instead.

Every row is guarded: a failure prints ``failed: <one line>`` in its row and the run goes on.
No row starts after ``--budget`` seconds (default 400); a watchdog ends the run at
``--hard-limit`` seconds (default 470), writing what it has.
"""
from __future__ import annotations

import time

_T0 = time.monotonic()  # the budget counts from here: imports included

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List, Optional  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import yolact  # noqa: E402
from yolact.config import get_config  # noqa: E402
from yolact.data.synth import make_image  # noqa: E402
from yolact.compat import compile_model, set_precision  # noqa: E402

SCHEMA = 1
ALL_MODES = ("fp32", "fp16", "bf16", "compiled", "cuda-graphs")
COMPILE_MODES = {"compiled": "max-autotune", "cuda-graphs": "reduce-overhead"}
TOP_K = 100
WEIGHTS_NOTE = ("random initialisation (yolact.build, seed 0): no official checkpoint on this machine; "
                "class-score bias raised so that 100 detections per image reach post-processing (worst case)")
DEMO_NOTE = ("demo: the built-in demo model (yolact_resnet18_slim trained on synthetic shapes), its class-score "
             "bias raised so that 100 detections per image reach post-processing")


# ---------------------------------------------------------------------------------------------
# The inference path being timed, in ONE place: the package's own pipeline (YolactTransform,
# the network, PostProcess; on CUDA its fixed-size path with no host synchronisation), fed by a
# pinned, reused staging buffer.
# ---------------------------------------------------------------------------------------------

_STAGING: Dict[tuple, tuple] = {}  # (shape, device) -> (pinned uint8 buffer, event of its last copy)


def _upload(images: List[np.ndarray], device: torch.device) -> torch.Tensor:
    """Same-size BGR uint8 HxWx3 images -> uint8 [N, H, W, 3] on ``device``. On CUDA through a
    reused pinned buffer and a non-blocking copy; the buffer is rewritten only after its last
    copy has finished (an event), so reuse never races the transfer."""
    if device.type != "cuda":
        return torch.from_numpy(np.stack(images))
    key = ((len(images),) + images[0].shape, str(device))
    if key in _STAGING:
        buf, done = _STAGING[key]
        done.synchronize()
    else:
        buf = torch.empty(key[0], dtype=torch.uint8, pin_memory=True)
    np.stack(images, out=buf.numpy())
    on_device = buf.to(device, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    _STAGING[key] = (buf, done)
    return on_device


def _network_input(model, images: List[np.ndarray]) -> torch.Tensor:
    """BGR uint8 images (one size) on the host -> the network's input on its device: uploaded,
    resized and normalised there (YolactTransform), in the model's dtype."""
    transform = model.transform()
    x = transform.normalize(transform.resize(_upload(images, model.device), model.device)).to(model.input_dtype)
    if model.precision != "fp32" and x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _network(model, x: torch.Tensor):
    """The network alone: normalised input -> HeadOutputs (softmax scores), compiled if set."""
    return model.heads(x)


def _infer_to_device(model, images: List[np.ndarray]) -> List[Dict[str, torch.Tensor]]:
    """BGR uint8 images (one size) on the host -> per image, on the model's device:
    ``boxes`` [n, 4] float pixels (x1, y1, x2, y2, truncated as ``Results``), ``scores`` [n]
    (mask scores), ``labels`` [n] int64, ``masks`` [n, H, W] bool at image size, ``valid``
    (CUDA: the fixed-size detections that count; None on the CPU). Score threshold 0, top-k 100:
    ``model.detect`` (what ``predict`` runs before its copy to the host)."""
    frames = _upload(images, model.device)
    dets = model.detect(frames, model.options(score_threshold=0, top_k=TOP_K))
    return [{"boxes": d.boxes, "scores": d.scores, "labels": d.classes, "masks": d.masks, "valid": d.valid}
            for d in dets]


def _infer_to_host(model, images: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
    """:func:`_infer_to_device`, then every tensor copied to host memory (numpy), keeping the
    valid detections."""
    out = []
    for d in _infer_to_device(model, images):
        valid = d.pop("valid")
        host = {k: v.cpu().numpy() for k, v in d.items()}
        if valid is not None:
            keep = valid.cpu().numpy()
            host = {k: v[keep] for k, v in host.items()}
        out.append(host)
    return out


# ---------------------------------------------------------------------------------------------
# Timing, rows and the budget
# ---------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(fn: Callable[[], object], device: torch.device, warmup: int, iters: int, max_s: float) -> Dict:
    """Latency percentiles of ``fn`` (device synchronised after each call); at least
    min(3, iters) timed calls, then more until ``iters`` or ``max_s`` seconds."""
    for _ in range(warmup):
        fn()
        _sync(device)
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < iters and (len(times) < min(3, iters) or time.perf_counter() - start < max_s):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    p50, p90 = (float(v) for v in np.percentile(times, [50, 90]))
    return {"p50_ms": 1000 * p50, "p90_ms": 1000 * p90, "iterations": len(times)}


def _with_rate(timing: Dict, images: int) -> Dict:
    timing["images_per_s"] = images / (timing["p50_ms"] / 1000)
    return timing


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}".strip()
    return line[:240]


class Run:
    """The planned rows, the JSON file, the budget and the watchdog."""

    def __init__(self, args, device: torch.device, env: Dict):
        self.args, self.device, self.env = args, device, env
        self.rows: List[Dict] = []
        self.lock = threading.RLock()
        self.current: Optional[Dict] = None
        self.finished = False
        self.hard_stopped = False
        self.watchdog: Optional[threading.Timer] = None

    def elapsed(self) -> float:
        return time.monotonic() - _T0

    def add(self, **row) -> Dict:
        row.setdefault("status", "pending")
        row.setdefault("note", "")
        self.rows.append(row)
        return row

    def document(self) -> Dict:
        return {"schema": SCHEMA, "environment": self.env, "weights": self.env["weights"],
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items()},
                "elapsed_s": round(self.elapsed(), 1), "finished": self.finished,
                "stopped_at_hard_limit": self.hard_stopped, "rows": self.rows}

    def save(self) -> None:
        if not self.args.json:
            return
        # The whole write under the lock: the watchdog thread and the main thread both save at the
        # hard limit, and two writers sharing one .tmp name raced (one os.replace found it gone).
        with self.lock:
            text = json.dumps(self.document(), indent=1, default=str)
            path = Path(self.args.json)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def execute(self, row: Dict, min_left_s: float, body: Callable[[Dict], None]) -> None:
        """Run ``body(row)`` unless the budget is spent; any exception fails only this row."""
        if row["status"] != "pending":
            return
        left = self.args.budget - self.elapsed()
        if left < min_left_s:
            row.update(status="skipped", note=f"time budget: {left:.0f} s left of {self.args.budget:.0f} s, "
                                               f"the row needs ~{min_left_s:.0f} s")
            self.save()
            return
        with self.lock:
            self.current = row
        t0 = time.monotonic()
        try:
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            body(row)
            row["status"] = "ok"
            row["gpu_mem_mib"] = (torch.cuda.max_memory_allocated(self.device) / 2**20
                                  if self.device.type == "cuda" else None)
        except Exception as exc:  # noqa: BLE001 - one failing configuration must not end the run
            row.update(status="failed", note=_one_line(exc))
        finally:
            row["seconds"] = round(time.monotonic() - t0, 2)
            with self.lock:
                self.current = None
            _free_device_memory(self.device)
        print(f"[{self.elapsed():5.0f} s] {_row_label(row)}: {_row_summary(row)}", file=sys.stderr, flush=True)
        self.save()

    def start_watchdog(self) -> None:
        delay = self.args.hard_limit - self.elapsed()
        self.watchdog = threading.Timer(max(0.0, delay), self._hard_stop)
        self.watchdog.daemon = True
        self.watchdog.start()

    def _hard_stop(self) -> None:
        with self.lock:
            if self.finished:
                return
            if self.current is not None:
                self.current.update(status="failed", note=f"stopped at the hard limit ({self.args.hard_limit:.0f} s)")
            for row in self.rows:
                if row["status"] == "pending":
                    row.update(status="skipped", note="hard time limit reached")
            self.finished = True
            self.hard_stopped = True
        print(f"\nhard time limit of {self.args.hard_limit:.0f} s reached; the table holds what was measured",
              file=sys.stderr, flush=True)
        try:  # the main thread is still running the row: write twice rather than not at all
            for attempt in (self.save, self.save, lambda: print_report(self)):
                try:
                    attempt()
                except Exception as exc:  # noqa: BLE001
                    print(f"while stopping: {_one_line(exc)}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            os._exit(0)


def _steady_memory_from_here(row: Dict, device: torch.device) -> None:
    """Call after a row's first (warm-up) call: the peak so far, cuDNN's autotuning workspaces
    included (cudnn.benchmark tries algorithms needing GiBs, above all in true fp32), goes to
    ``gpu_mem_warmup_mib``; the row's "GPU MiB" is then the peak of the calls that follow: what
    the model needs to run, weights included."""
    if device.type == "cuda":
        row["gpu_mem_warmup_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)


def _free_device_memory(device: torch.device) -> None:
    import gc
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def raise_class_scores(model, seed: int = 0) -> None:
    """Background logit -4 and up to ten classes at +0..4 on every prior, as vs_original.py:
    thousands of candidates per image, so Fast NMS and the masks see the full 100 detections."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bias = model.prediction_layers[0].conf_layer.bias.view(model.cfg.anchors_per_location, -1)
        n = min(10, bias.shape[1] - 1)
        bias[:, 0] = -4.0
        bias[:, 1:1 + n] = 4.0 * torch.rand(bias.shape[0], n, generator=g)


def build_model(spec: str):
    """``demo``, a preset name, or ``preset@size`` (another input size): fp32, eval, on the CPU."""
    if spec == "demo":
        model = yolact.load(yolact.demo_weights_path(), precision="fp32")
    else:
        name, _, size = spec.partition("@")
        cfg = get_config(name)
        if size:
            cfg = cfg.replace(max_size=int(size))
        torch.manual_seed(0)
        model = yolact.build(cfg)
    raise_class_scores(model)
    return model.eval()


def prepare(base, device: torch.device, precision: str, compile_mode: Optional[str]):
    """A copy of ``base`` on ``device`` at ``precision`` (fp32 = the exact path), optionally
    compiled: the steps ``yolact.load(..., precision=, compile=)`` applies."""
    model = copy.deepcopy(base).to(device).eval()
    if precision != "fp32":
        set_precision(model, precision)
    if compile_mode:
        torch._dynamo.reset()  # fresh caches: no recompile limit carried over from earlier rows
        compile_model(model, compile_mode)
    return model


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


def inference_row(run: Run, row: Dict, model_fn: Callable[[], object], images: List[np.ndarray]) -> None:
    args, device = run.args, run.device
    batch = images[:row["batch"]]
    compiling = row["mode"] in COMPILE_MODES
    warmup = args.warmup + (3 if compiling else 0)  # compile, then CUDA-graph warm-up and record
    iters = args.iters if row["batch"] == 1 else max(3, args.iters // 5)

    def body(row):
        model = model_fn()
        first = _infer_to_device(model, batch)
        row["detections_per_image"] = float(np.mean([len(d["scores"]) if d["valid"] is None else int(d["valid"].sum())
                                                     for d in first]))
        del first
        _steady_memory_from_here(row, device)
        with torch.no_grad():
            x = _network_input(model, batch)

        def network_only():
            with torch.no_grad():
                _network(model, x)

        row["network"] = _with_rate(_measure(network_only, device, 1, iters, args.max_seconds), len(batch))
        row["to_device"] = _with_rate(_measure(lambda: _infer_to_device(model, batch), device, warmup, iters,
                                               args.max_seconds), len(batch))
        row["to_host"] = _with_rate(_measure(lambda: _infer_to_host(model, batch), device, 1, iters,
                                             args.max_seconds), len(batch))

    run.execute(row, 150 if row["mode"] == "compiled" else 75 if compiling else args.min_row_seconds, body)


def train_row(run: Run, row: Dict) -> None:
    device, args = run.device, run.args

    def body(row):
        try:
            import tqdm  # noqa: F401 - the trainer imports it; the step never draws a bar
        except ImportError:  # a real module with a spec: torch._dynamo looks tqdm up by find_spec
            import importlib.machinery

            stub = types.ModuleType("tqdm")
            stub.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)
            stub.tqdm = None
            sys.modules["tqdm"] = stub
            run.env["shims"].append("tqdm stub (trainer import only)")
        from yolact.data.coco import CocoDataset
        from yolact.data.synth import generate
        from yolact.training import Trainer, TrainOptions

        name, _, size = row["model"].partition("@")
        with tempfile.TemporaryDirectory() as d:
            generate(Path(d), row["batch"], 0, size=256, seed=0, max_objects=4)
            data = CocoDataset(Path(d) / "train.json", Path(d) / "train", train=True, verbose=False)
            cfg = get_config(name, class_names=data.class_names)
            if size:
                cfg = cfg.replace(max_size=int(size))
            data.cfg = cfg
            opts = TrainOptions(out=str(Path(d) / "run"), iters=10, batch_size=row["batch"], device=str(device),
                                amp=True, progress=False)
            trainer = Trainer(cfg, data, opts)
            images, targets = next(iter(trainer._loader(0, 0)))
            skipped = [0]

            def step():
                if trainer._step(images, targets) is None:  # non-finite: no optimiser step
                    skipped[0] += 1

            step()
            _steady_memory_from_here(row, device)
            for _ in range(args.warmup + 1):  # cuDNN autotuning; AMP's loss scale settles
                step()
            _sync(device)
            skipped[0] = 0
            row["step"] = _with_rate(_measure(step, device, 0, max(3, args.iters // 5), args.max_seconds),
                                     row["batch"])
            row["skipped_steps"] = skipped[0]
            if skipped[0] == row["step"]["iterations"]:
                raise RuntimeError("every timed step was skipped (non-finite loss or gradients): no valid time")
            if skipped[0]:
                row["note"] = f"{skipped[0]} of {row['step']['iterations']} timed steps skipped (non-finite)"

    run.execute(row, 20 if device.type == "cuda" else 5, body)


def original_rows(run: Run, rows: List[Dict], images: List[np.ndarray]) -> None:
    """The original code (dbolya/yolact) and this package on its weights, same device and images."""
    device, args = run.device, run.args
    state: Dict = {}

    def setup():
        if "orig" in state:
            return
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from vs_original import build_original, import_original, shim_original_for_cpu

        run.env["shims"].extend(f"original: {s}" for s in shim_original_for_cpu())
        orig = import_original(Path(args.original).resolve())
        with tempfile.TemporaryDirectory() as tmp:  # the original writes the weights both sides load
            weights = Path(tmp) / f"{args.original_config}_54_800000.pth"
            net = build_original(orig, args.original_config, weights)
            ours = yolact.load(weights, device=device)
        # Its priors are built with torch.Tensor(list, device=...), which a CUDA device refuses on
        # a modern torch: build them in one CPU forward, then the original moves them itself.
        with torch.no_grad():
            net(orig.FastBaseTransform()(torch.from_numpy(images[0][None]).float()))
        state.update(orig=orig, net=net.to(device), ours=ours)

    def original_to_device(batch):
        orig, net = state["orig"], state["net"]
        h, w = batch[0].shape[:2]
        with torch.no_grad():
            frames = torch.from_numpy(np.stack(batch)).to(device).float()  # as eval.py: upload, then float
            preds = net(orig.FastBaseTransform()(frames))
            return [orig.postprocess(preds, w, h, batch_idx=i, crop_masks=True, score_threshold=0)
                    for i in range(len(batch))]

    def original_to_host(batch):
        return [[t.cpu().numpy() for t in out] for out in original_to_device(batch)]

    for row in rows:
        batch = images[:row["batch"]]
        iters = args.iters if row["batch"] == 1 else max(3, args.iters // 5)

        def body(row, batch=batch, iters=iters):
            setup()
            if row["implementation"] == "dbolya/yolact":
                to_device, to_host = (lambda: original_to_device(batch)), (lambda: original_to_host(batch))
                first = original_to_device(batch)
                row["detections_per_image"] = float(np.mean([len(o[1]) for o in first]))
                if row["batch"] == 1:
                    from vs_original import compare
                    ours = state["ours"].predict(batch[0], score_threshold=0)
                    agree = compare([t.cpu() for t in first[0]], ours)
                    row["agreement_with_this_package"] = {k: (list(v) if isinstance(v, tuple) else v)
                                                          for k, v in agree.items()}
                del first
            else:
                model = state["ours"]
                to_device, to_host = (lambda: _infer_to_device(model, batch)), (lambda: _infer_to_host(model, batch))
                row["detections_per_image"] = float(np.mean([len(d["scores"]) for d in to_device()]))
            _steady_memory_from_here(row, device)
            row["to_device"] = _with_rate(_measure(to_device, device, args.warmup, iters, args.max_seconds), len(batch))
            row["to_host"] = _with_rate(_measure(to_host, device, 1, iters, args.max_seconds), len(batch))

        run.execute(row, 30 if "orig" not in state else args.min_row_seconds, body)


# ---------------------------------------------------------------------------------------------
# Environment and report
# ---------------------------------------------------------------------------------------------


def environment(device: torch.device, presets: List[str]) -> Dict:
    def version(module):
        try:
            return __import__(module).__version__
        except Exception:  # noqa: BLE001 - absent or broken: reported as such
            return None

    from yolact.model.dcn import torchvision_available

    env = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
           "device": str(device), "python": platform.python_version(), "platform": platform.platform(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "torchvision": version("torchvision"),
           "torchvision_deform_conv2d": torchvision_available(), "triton": version("triton"),
           "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "yolact": yolact.__version__, "shims": [],
           "weights": "; ".join(([WEIGHTS_NOTE] if any(p != "demo" for p in presets) else [])
                                + ([DEMO_NOTE] if "demo" in presets else []))}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, device_memory_gib=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version(), tf32=False, cudnn_benchmark=True)
    else:
        env.update(device_name=env["cpu"])
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _row_label(row: Dict) -> str:
    if row["kind"] == "train":
        return f"train {row['model']} batch {row['batch']} {row['mode']}"
    if row["kind"] == "original":
        return f"{row['implementation']} {row['model']} batch {row['batch']} {row['mode']}"
    return f"{row['model']} batch {row['batch']} {row['mode']}"


def _fmt_timing(t: Optional[Dict]) -> tuple:
    if not t:
        return "", ""
    return f"{t['p50_ms']:.1f} / {t['p90_ms']:.1f}", f"{t['images_per_s']:.1f}"


def _row_summary(row: Dict) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row['note']}"
    t = row.get("to_device") or row.get("step")
    return f"{t['p50_ms']:.1f} ms p50, {t['images_per_s']:.1f} images/s"


def _mem(row: Dict) -> str:
    return f"{row['gpu_mem_mib']:.0f}" if row.get("gpu_mem_mib") is not None else "n/a"


def print_report(run: Run) -> None:
    env, rows = run.env, run.rows
    print(f"# {env['date_utc']} UTC  {env['device_name']} ({env['device']})  torch {env['torch']}  "
          f"CUDA {env['cuda']}  torchvision {env['torchvision']}  triton {env['triton']}  "
          f"{env['torch_threads']} CPU threads")
    print(f"# weights: {env['weights']}")
    if env["shims"]:
        print(f"# shims: {', '.join(env['shims'])}")
    print()
    print("| model | input | batch | mode | network p50 ms | to device p50 / p90 ms | images/s "
          "| to host p50 / p90 ms | images/s | GPU MiB | detections / image | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if row["kind"] == "train":
            continue
        model = row["model"] if row["kind"] == "inference" else f"{row['model']} ({row['implementation']})"
        dev, dev_rate = _fmt_timing(row.get("to_device"))
        host, host_rate = _fmt_timing(row.get("to_host"))
        net = f"{row['network']['p50_ms']:.1f}" if row.get("network") else ""
        dets = f"{row['detections_per_image']:.0f}" if row.get("detections_per_image") is not None else ""
        status = f"{row['status']}: {row['note']}" if row["note"] else row["status"]
        print(f"| {model} | {row['input']} | {row['batch']} | {row['mode']} | {net} | {dev} | {dev_rate} | {host} | "
              f"{host_rate} | {_mem(row)} | {dets} | {status} |")
    train = [r for r in rows if r["kind"] == "train"]
    if train:
        print()
        print("| training step | input | batch | mode | step p50 / p90 ms | images/s | GPU MiB | status |")
        print("|---|---|---|---|---|---|---|---|")
        for row in train:
            step, rate = _fmt_timing(row.get("step"))
            status = f"{row['status']}: {row['note']}" if row["note"] else row["status"]
            print(f"| {row['model']} | {row['input']} | {row['batch']} | {row['mode']} | {step} | {rate} | "
                  f"{_mem(row)} | {status} |")
    for row in rows:
        agree = row.get("agreement_with_this_package")
        if agree:
            print()
            print(f"this package vs the original, {row['model']} batch 1 (same weights): "
                  + ", ".join(f"{k} {v}" for k, v in agree.items()))
    print(f"\n{run.elapsed():.0f} s in all")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: fewer presets, small batches, few iterations (CPU: the demo model, < 1 min)")
    ap.add_argument("--json", type=Path, help="write the results here (rewritten after every row)")
    ap.add_argument("--original", type=Path, help="checkout of github.com/dbolya/yolact to time on the same device")
    ap.add_argument("--original-config", default="yolact_base", help="the original's config (no DCN: YOLACT v1)")
    ap.add_argument("--presets", help="comma-separated presets, 'demo', or 'preset@size' "
                                      "(default yolact_base,yolact_resnet50,yolact_plus_base)")
    ap.add_argument("--batches", help="comma-separated batch sizes (default 1,32)")
    ap.add_argument("--modes", help=f"comma-separated modes from {','.join(ALL_MODES)} (default all)")
    ap.add_argument("--compile-precision", default=None, help="network precision of the compiled modes "
                                                              "(default fp16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--train", default=None, help="training-step preset (default yolact_base; 'none' to skip)")
    ap.add_argument("--train-batch", type=int, default=None, help="training-step batch (default 8)")
    ap.add_argument("--image", default=None, help="image size WxH (default 640x480)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per measurement at batch 1 "
                                                           "(a fifth of it, at least 3, at larger batches)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls before each measurement")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop a measurement after this long (>= 3 calls)")
    ap.add_argument("--budget", type=float, default=None, help="start no row after this many seconds (default 400)")
    ap.add_argument("--hard-limit", type=float, default=None, help="end the run here, writing what it has "
                                                                   "(default 470)")
    args = ap.parse_args(argv)
    on_cpu = args.device == "cpu"
    quick_cpu = args.quick and on_cpu
    defaults = {
        "presets": ("demo" if quick_cpu else "yolact_base" if args.quick
                    else "yolact_base,yolact_resnet50,yolact_plus_base"),
        "batches": "1,2" if quick_cpu else "1,8" if args.quick else "1,32",
        "modes": ",".join(ALL_MODES),
        "compile_precision": "fp32" if on_cpu else "fp16",
        "train": "yolact_resnet18@96" if quick_cpu else "yolact_base",
        "train_batch": 2 if quick_cpu else 8,
        "image": "160x120" if quick_cpu else "640x480",
        "iters": 3 if quick_cpu else 10 if args.quick else 50,
        "warmup": 1 if quick_cpu else 3,
        "max_seconds": 2.0 if quick_cpu else 3.0,
        # on the CPU the original (yolact_base at 550) alone takes a minute or more
        "budget": (150.0 if args.original else 40.0) if quick_cpu else 150.0 if args.quick else 400.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.hard_limit is None:
        args.hard_limit = args.budget + (15.0 if quick_cpu else 70.0)
    args.min_row_seconds = 2.0 if quick_cpu else 10.0
    return args


def plan(run: Run, base_models: Dict[str, Callable], images) -> List[Callable[[], None]]:
    """Rows in display order; returns the work in priority order (what matters most runs first
    so that the budget cuts the least important rows)."""
    args, device = run.args, run.device
    presets = [p for p in args.presets.split(",") if p]
    batches = [int(b) for b in args.batches.split(",") if b]
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in ALL_MODES:
            raise SystemExit(f"error: unknown mode '{m}' ({', '.join(ALL_MODES)})")
    eager, graphs, autotuned = [], [], []
    for p in presets:
        for b in batches:
            for m in modes:
                compile_mode = COMPILE_MODES.get(m)
                precision = args.compile_precision if compile_mode else m
                row = run.add(kind="inference", model=p, input=_input_size(p), batch=b, mode=m,
                              precision=precision, compile=compile_mode)
                skip = _skip_reason(args, device, m, precision)
                if skip:
                    row.update(status="skipped", note=skip)
                    continue
                work = (lambda row=row, p=p, precision=precision, cm=compile_mode:
                        inference_row(run, row, lambda: prepare(base_models[p](), device, precision, cm), images))
                if not compile_mode:
                    eager.append((p, b, work))
                elif m == "cuda-graphs":
                    graphs.append((p, b, work))
                else:
                    autotuned.append((p, b, work))
    train, original = [], []
    if args.train.lower() != "none":
        row = run.add(kind="train", model=args.train, input=_input_size(args.train), batch=args.train_batch,
                      mode="amp fp16" if device.type == "cuda" else "amp bf16")
        train.append(lambda row=row: train_row(run, row))
    if args.original:
        orows = [run.add(kind="original", implementation=impl, model=args.original_config,
                         input=get_config(args.original_config).max_size, batch=b, mode="fp32")
                 for b in (batches[:1] if args.quick and device.type == "cpu" else batches)
                 for impl in ("dbolya/yolact", "this package")]
        original.append(lambda: original_rows(run, orows, images))

    def headline(p, b):  # the first preset at the first batch size: the target row
        return p == presets[0] and b == batches[0]

    # Priority: the headline's eager rows and CUDA graphs, the training step, the other eager
    # rows, the original, then the compiles that take longest (max-autotune last).
    order = [w for p, b, w in eager + graphs if headline(p, b)] + train
    order += [w for p, b, w in eager if not headline(p, b)] + original
    order += [w for p, b, w in autotuned if headline(p, b)]
    order += [w for p, b, w in graphs + autotuned if not headline(p, b)]
    return order


def _input_size(spec: str) -> int:
    if spec == "demo":
        from yolact.checkpoint import read_checkpoint
        return int(read_checkpoint(yolact.demo_weights_path())["config"]["max_size"])
    name, _, size = spec.partition("@")
    return int(size) if size else get_config(name).max_size


def _skip_reason(args, device: torch.device, mode: str, precision: str) -> str:
    if device.type == "cpu":
        if precision == "fp16":
            return "fp16 is for GPUs (set_precision refuses it on the CPU)"
        if mode == "cuda-graphs":
            return "CUDA graphs need a GPU"
        if mode == "compiled" and args.quick:
            return "compile modes are not run with --quick on the CPU"
    return ""


def parse_device(name: str) -> torch.device:
    """--device as a torch.device, CUDA with an index ('cuda' is the current device: torch 2.11's
    ``torch.cuda.set_device`` refuses a device without one). Exits with a one-line error for an
    unknown or absent device."""
    from yolact.checks import resolve_device
    from yolact.errors import YolactError

    try:
        return resolve_device(name)
    except YolactError as e:
        sys.exit(f"error: {e}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"error: --device {args.device}: no CUDA device is available to this torch "
                 f"({torch.__version__}); use --device cpu")
    device = parse_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # needs an index: parse_device gives one
        torch.backends.cudnn.benchmark = True  # fixed shapes per row: let cuDNN pick its kernels
        # fp32 means fp32 (cuDNN's default is TF32 convs). The legacy flags set conv and RNN
        # alike; mixing them with the new fp32_precision API makes later reads raise.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if args.original and not (args.original / "yolact.py").is_file():
        sys.exit(f"error: {args.original}: not a checkout of dbolya/yolact (no yolact.py)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.image.lower().split("x"))
    rng = np.random.default_rng(0)
    max_batch = max(int(b) for b in args.batches.split(",") if b)
    images = [make_image(rng, h, w)[0] for _ in range(max_batch)]

    presets = [p for p in args.presets.split(",") if p]
    run = Run(args, device, environment(device, presets))
    cache: Dict[str, object] = {}

    def base_model(spec):
        def get():
            if spec not in cache:  # fp32 on the host, copied for each row
                cache[spec] = build_model(spec)
            return cache[spec]
        return get

    work = plan(run, {p: base_model(p) for p in presets}, images)
    run.save()
    run.start_watchdog()
    for item in work:
        item()
    with run.lock:
        run.finished = True
    run.watchdog.cancel()
    run.save()
    print_report(run)


if __name__ == "__main__":
    main()
