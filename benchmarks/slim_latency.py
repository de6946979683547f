"""Per-stage latency of ``yolact_resnet18_slim`` at 192 px on one thread, before and after, and
YOLO26n-seg beside it (issue #33, item 5).

    python benchmarks/slim_latency.py [--compare main] [--repeats 60] [--ultralytics /work/venvs/ultralytics/bin/python]
    python benchmarks/slim_latency.py --compare main --parity     # same fp32 outputs, bit for bit
    # trained models, each with its own calibration, on a real val image; YOLO made to return
    # as many masks as ours (its untrained weights cost the same time as trained ones):
    python benchmarks/slim_latency.py --weights best.pt --busy 0 --source val_00002.jpg --yolo-dets 6

Each contender runs in its own single-threaded worker process; the workers take turns, one
prediction each per round, so that a busy machine slows them alike (side by side, interleaved):

* ``after``: this checkout's package;
* ``before`` (with ``--compare REV``): the package of git revision REV (``git archive``);
* ``yolo26n-seg`` (when the given Python has Ultralytics): YOLO26n-seg built from its YAML (no
  download), ``predict(imgsz=192)`` on the same image, its recommended fused model.

The model is the built-in demo model (``yolact_resnet18_slim`` trained on synthetic shapes)
(or ``--weights``) with its background logit lowered (``--busy``, default 3.0) so that about 100 detections pass the
default score threshold on the 192 x 192 test image: a badly calibrated trained model, the case
of the issue (73 detections per image above 0.05). Timing does not depend on the weight values
otherwise.

``after`` is the exact fp32 path (``precision="fp32"``); ``after fp32-fused`` is what
``yolact.load`` gives the light presets by default (:func:`yolact.config.default_precision`).

Stages are read inside ``model.predict(image)`` itself (hooks on the network's modules and
wrappers around the post-processing functions), so what is timed is what users run:
pre-processing, backbone, FPN, protonet, prediction heads and priors, decode (softmax and
boxes), NMS, mask assembly (coefficients x prototypes, crop), upsampling to the image, and the
Results. Times are the process's CPU time (``time.process_time``: on a shared machine the wall
time also counts the other jobs) and the wall time; medians over ``--repeats`` rounds. The
compute floor is the network's forward pass alone (``forward_heads``), timed in the same rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

STAGES = ("preprocess", "backbone", "fpn", "protonet", "heads+priors", "decode", "nms", "mask assembly",
          "crop/upsample", "to Results")
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------- workers
def _image(size: int) -> np.ndarray:
    """The test image: a synthetic 'shapes' scene, BGR uint8 [size, size, 3]."""
    from yolact.data.synth import make_image

    img, _ = make_image(np.random.default_rng(3), size, size)
    return img


def _read_image(path: str, size: int) -> np.ndarray:
    """A test image from a file, BGR uint8 [size, size, 3]."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"{path}: not an image OpenCV can read")
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)


class _Clock:
    """Both clocks at once: (CPU seconds of this process, wall seconds)."""

    @staticmethod
    def now():
        return time.process_time(), time.perf_counter()


def yolact_worker(args) -> None:
    """Serve timing rounds of the demo model's predict over stdin/stdout (one JSON line each)."""
    import torch

    torch.set_num_threads(1)
    import yolact
    import yolact.prediction.predictor as predictor_mod
    from yolact.config import DEMO_WEIGHTS
    from yolact.model.postprocess import PostProcess

    model = yolact.load(args.weights or str(DEMO_WEIGHTS), precision="fp32")  # exact; then --precision
    if args.precision != "fp32":
        model.set_precision(args.precision)
    with torch.no_grad():  # a badly calibrated model: many priors above the threshold
        model.prediction_layers[0].conf_layer.bias.view(model.cfg.anchors_per_location, -1)[:, 0] -= args.busy
    img = np.load(args.image)
    stamps = {}
    clock = _Clock.now

    def stamp(name):
        def hook(*_):
            stamps.setdefault(name, clock())
        return hook

    for name, module in (("backbone", model.backbone), ("fpn", model.fpn), ("protonet", model.proto_net)):
        module.register_forward_hook(stamp(name))
    model.backbone.register_forward_pre_hook(stamp("start"))

    def timed(name, fn):
        def run(*a, **k):
            t0 = clock()
            out = fn(*a, **k)
            t1 = clock()
            stamps[name + ".0"], stamps[name + ".1"] = t0, t1
            return out
        return run

    # decode_heads as the predictor module calls it; select, forward and to_image of PostProcess
    predictor_mod.decode_heads = timed("decode", predictor_mod.decode_heads)
    PostProcess.select = timed("nms", PostProcess.select)
    PostProcess.forward = timed("post", PostProcess.forward)
    PostProcess.to_image = staticmethod(timed("upsample", PostProcess.to_image))
    results_fn = type(model)._results
    model._results = timed("results", lambda *a: results_fn(model, *a))

    x = model.transform(args.size)([img]).to(model.input_dtype)

    def one_round():
        stamps.clear()
        t0 = clock()
        res = model.predict(img, keep_image=False, img_size=args.size)
        t1 = clock()
        s = dict(stamps)
        out = {}
        for k in (0, 1):  # cpu, wall
            tag = ("cpu", "wall")[k]
            d = lambda a, b: s[b][k] - s[a][k]  # noqa: E731
            post_total = d("post.0", "post.1")
            nms = d("nms.0", "nms.1")
            out[tag] = {
                "preprocess": s["start"][k] - t0[k],
                "backbone": d("start", "backbone"),
                "fpn": d("backbone", "fpn"),
                "protonet": d("fpn", "protonet"),
                "heads+priors": d("protonet", "decode.0"),
                "decode": d("decode.0", "decode.1"),
                "nms": nms,
                "mask assembly": post_total - nms,
                "crop/upsample": d("upsample.0", "upsample.1"),
                "to Results": d("results.0", "results.1"),
                "end to end": t1[k] - t0[k],
            }
        # the compute floor: the network's forward alone, same input
        f0 = clock()
        with torch.no_grad():
            model.forward_heads(x)
        f1 = clock()
        for k, tag in enumerate(("cpu", "wall")):
            out[tag]["network forward (floor)"] = f1[k] - f0[k]
        out["detections"] = len(res)
        return out

    for _ in range(3):
        one_round()
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(json.dumps(one_round()), flush=True)


def ultralytics_worker(args) -> None:
    """The same protocol for YOLO26n-seg (from its YAML: random weights, no download)."""
    import torch

    torch.set_num_threads(1)
    from ultralytics import YOLO
    import ultralytics

    torch.manual_seed(0)  # its untrained weights, hence its detection count at conf 0, fixed
    model = YOLO(args.yolo_weights or "yolo26n-seg.yaml", task="segment")
    img = np.load(args.image)

    # --yolo-dets N: conf 0 and max_det N, so that its untrained head returns detections and
    # their masks are made (with defaults it returns none); 0: Ultralytics' defaults
    extra = {"conf": 0.0, "max_det": args.yolo_dets} if args.yolo_dets else {}

    def one_round():
        t0 = _Clock.now()
        res = model.predict(img, imgsz=args.size, verbose=False, device="cpu", **extra)
        t1 = _Clock.now()
        return {"cpu": {"end to end": t1[0] - t0[0]}, "wall": {"end to end": t1[1] - t0[1]},
                "detections": len(res[0].boxes) if res[0].boxes is not None else 0}

    for _ in range(3):
        one_round()
    print(json.dumps({"ready": True, "ultralytics": ultralytics.__version__, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(json.dumps(one_round()), flush=True)


PARITY_PRESETS = (("yolact_base", 550), ("yolact_resnet50", 550), ("yolact_plus_resnet50", 550),
                  ("yolact_resnet18_slim", 192))


def parity_worker(args) -> None:
    """Every output of ``predict`` (boxes, scores, labels, box scores, full masks) of the
    official presets and the slim one, seeded random weights with non-trivial BatchNorm
    statistics and a busy class bias (100 detections: NMS and masks at full load), on a 640x480
    and a square image, at score threshold 0.05, saved to ``args.image`` (.npz)."""
    import torch

    torch.set_num_threads(1)
    import yolact
    from yolact.data.synth import make_image

    out = {}
    for name, size in PARITY_PRESETS:
        torch.manual_seed(0)
        m = yolact.build(name).eval()
        with torch.no_grad():
            bias = m.prediction_layers[0].conf_layer.bias.view(m.cfg.anchors_per_location, -1)
            bias[:, 0] = -4.0
            bias[:, 1:11] = 4.0 * torch.rand(bias.shape[0], 10)
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.1, 0.1)
                    mod.running_var.uniform_(0.5, 1.5)
        for seed, (h, w) in enumerate(((480, 640), (size, size))):
            img, _ = make_image(np.random.default_rng(seed), h, w)
            r = m.predict(img, conf=0.05)
            masks = r.masks.full() if hasattr(r.masks, "full") else np.asarray(r.masks)
            for k, v in (("boxes", r.boxes), ("scores", r.scores), ("labels", r.labels),
                         ("box_scores", r.box_scores), ("masks", masks)):
                out[f"{name}/{h}x{w}/{k}"] = np.asarray(v)
    np.savez_compressed(args.image, **out)


def parity(rev: str) -> None:
    """Run :func:`parity_worker` on revision ``rev``'s package and on this checkout's; print
    whether every array is identical (dtype, shape and bits)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for tag, tree in (("before", str(_checkout(rev, Path(tmp)))), ("after", str(ROOT))):
            files[tag] = Path(tmp) / f"{tag}.npz"
            env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "parity", "--image",
                            str(files[tag])], check=True, env=env, cwd=tmp)
        a, b = np.load(files["before"]), np.load(files["after"])
        differ = [k for k in a.files if k not in b.files or a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
                  or not np.array_equal(a[k], b[k])]
        dets = {k.split("/")[0] + " " + k.split("/")[1]: len(a[k]) for k in a.files if k.endswith("/scores")}
        print(f"# parity {rev} vs this checkout: {len(a.files)} arrays, "
              f"{'all identical' if not differ else 'DIFFERENT: ' + ', '.join(differ)}; detections {dets}")


# ---------------------------------------------------------------------------------------- driver
def _spawn(python: str, pythonpath: str, role: str, args, image: Path, yolo_dets: int = 0) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [python, str(Path(__file__).resolve()), "--worker", role, "--size", str(args.size),
           "--busy", str(args.busy), "--precision", args.precision, "--image", str(image),
           "--yolo-dets", str(yolo_dets)]
    cmd += ["--weights", args.weights] if args.weights else []
    cmd += ["--yolo-weights", args.yolo_weights] if args.yolo_weights else []
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            cwd=tempfile.gettempdir())


def _read(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"worker {proc.args[3:5]} ended early (exit {proc.wait()})")
    return json.loads(line)


def _checkout(rev: str, into: Path) -> Path:
    """The package of git revision ``rev`` extracted under ``into``."""
    archive = into / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "yolact"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / rev.replace("/", "_"))
    return into / rev.replace("/", "_")


def _table(results: dict, clock: str) -> str:
    names = list(results)
    med = {n: {k: statistics.median(r[clock][k] for r in rounds) for k in rounds[0][clock]}
           for n, rounds in results.items()}
    rows = [s for s in (*STAGES, "end to end", "network forward (floor)") if any(s in med[n] for n in names)]
    lines = ["| stage, ms (" + clock + ") | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for s in rows:
        lines.append(f"| {s} | " + " | ".join(f"{1000 * med[n][s]:.2f}" if s in med[n] else "-" for n in names) + " |")
    ends = {n: med[n]["end to end"] for n in names}
    for n in names:
        if "network forward (floor)" in med[n]:
            lines.append(f"| end to end / floor, {n} | {ends[n] / med[n]['network forward (floor)']:.2f} |")
    for ref in (n for n in names if n.startswith("yolo26n-seg")):
        for n in names:
            if not n.startswith("yolo26n-seg"):
                lines.append(f"| {n} / {ref}, end to end | {ends[n] / ends[ref]:.2f} |")
    for n in names:
        if n.startswith("after") and "before" + n[5:] in ends:
            lines.append(f"| {n} / {'before' + n[5:]}, end to end | {ends[n] / ends['before' + n[5:]]:.2f} |")
    if "after" in ends:
        for n in names:
            if n.startswith("after "):
                lines.append(f"| {n} / after, end to end | {ends[n] / ends['after']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", default=None, help="git revision to time as 'before' (e.g. main)")
    ap.add_argument("--parity", action="store_true",
                    help="instead of timing: check that --compare REV and this checkout predict the same bits "
                         "(official presets and the slim one, fp32)")
    ap.add_argument("--repeats", type=int, default=60, help="rounds (one prediction per contender each)")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--busy", type=float, default=3.0, help="lower the background logit by this much")
    ap.add_argument("--precision", default="fp32,fp32-fused",
                    help="comma-separated: fp32 (exact), fp32-fused (BN folded, channels-last)")
    ap.add_argument("--ultralytics", default="/work/venvs/ultralytics/bin/python",
                    help="a Python with Ultralytics for YOLO26n-seg ('' to skip)")
    ap.add_argument("--yolo-dets", type=int, default=87,
                    help="also time YOLO26n-seg at conf 0 and max_det N, so that it makes masks (0: skip)")
    ap.add_argument("--weights", default=None,
                    help="ours: a trained checkpoint instead of the demo model (with --busy 0: its own calibration)")
    ap.add_argument("--yolo-weights", default=None,
                    help="YOLO26n-seg: a trained best.pt instead of the untrained YAML model")
    ap.add_argument("--source", default=None,
                    help="the test image (a file read by OpenCV, resized to --size) instead of a generated scene")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--image", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "yolact":
        return yolact_worker(args)
    if args.worker == "ultralytics":
        return ultralytics_worker(args)
    if args.worker == "parity":
        return parity_worker(args)
    if args.parity:
        if not args.compare:
            ap.error("--parity needs --compare REV")
        return parity(args.compare)

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "image.npy"
        np.save(image, _image(args.size) if not args.source else _read_image(args.source, args.size))
        contenders = {}
        old_tree = str(_checkout(args.compare, Path(tmp))) if args.compare else None
        for prec in args.precision.split(","):
            one = argparse.Namespace(**{**vars(args), "precision": prec})
            tag = "" if prec == "fp32" else " " + prec
            if old_tree:
                contenders["before" + tag] = _spawn(sys.executable, old_tree, "yolact", one, image)
            contenders["after" + tag] = _spawn(sys.executable, str(ROOT), "yolact", one, image)
        if args.ultralytics and Path(args.ultralytics).exists():
            check = subprocess.run([args.ultralytics, "-c", "import ultralytics"], capture_output=True)
            if check.returncode == 0:
                contenders["yolo26n-seg"] = _spawn(args.ultralytics, "", "ultralytics", args, image)
                if args.yolo_dets:
                    contenders[f"yolo26n-seg conf=0"] = _spawn(args.ultralytics, "", "ultralytics",
                                                                              args, image, args.yolo_dets)
            else:
                print(f"# {args.ultralytics} has no ultralytics: YOLO26n-seg skipped", file=sys.stderr)
        heads = {n: _read(p) for n, p in contenders.items()}
        results = {n: [] for n in contenders}
        try:
            for _ in range(args.repeats):
                for n, p in contenders.items():  # one prediction each, in turn
                    p.stdin.write("run\n")
                    p.stdin.flush()
                    results[n].append(_read(p))
        finally:
            for p in contenders.values():
                if p.poll() is None:
                    p.stdin.write("quit\n")
                    p.stdin.close()
                    p.wait()
    try:
        cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    except (OSError, IndexError):
        cpu = platform.processor()
    print(f"# {time.strftime('%Y-%m-%d')}  {cpu}  {os.cpu_count()} cores  1 thread per contender  "
          f"image {args.size}x{args.size}  input {args.size}  precision {args.precision}  median of {args.repeats} "
          f"interleaved rounds")
    for n, h in heads.items():
        dets = statistics.median(r["detections"] for r in results[n])
        print(f"# {n}: {json.dumps({k: v for k, v in h.items() if k != 'ready'})}, detections {dets:.0f}")
    print()
    print(_table(results, "cpu"))
    print()
    print(_table(results, "wall"))


if __name__ == "__main__":
    main()
