"""Helpers shared by the verbs: model arguments and loading, devices, sources, class lists."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from ..config import PRECISIONS
from ..errors import YolactError
from ..runs import run_dir  # noqa: F401 - the verbs' run folders (yolact.runs)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that never guesses a long option from its prefix (``allow_abbrev=False``):
    ``--conf 0.5`` must not be read as ``--config 0.5``. Subparsers inherit the class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


# Help of flags that many verbs share, by their dest, for a flag added without a help text.
SHARED_HELP = {
    "quiet": "print nothing but errors and the final summary",
    "score_threshold": "class score threshold, 0..1",
    "top_k": "at most this many detections per image",
    "new_track_score": "lowest score that starts a new track",
    "max_frames": "stop after this many video frames (default: all)",
    "out": "output folder",
    "train": "training images to make",
    "val": "validation images to make",
    "seed": "random seed (the same seed gives the same output)",
    "videos": "sequences to make",
    "frames": "frames per sequence",
    "width": "frame width in pixels",
    "height": "frame height in pixels",
    "max_objects": "objects per frame at most",
    "to": "output format",
    "format": "input format (auto: recognised from the files)",
    "samples": "images to draw",
    "train_ann": "COCO annotation file of the training images",
    "train_images": "folder of the training images",
    "val_ann": "COCO annotation file of the validation images",
    "val_images": "folder of the validation images",
    "epochs": "passes over the training images (instead of --iters)",
    "workers": "data-loading processes",
    "device": "cpu, cuda, cuda:N or mps (default: CUDA when available)",
    "val_interval": "validate every this many iterations (default: the preset's)",
    "ann": "COCO annotation file",
    "images": "folder of the images",
    "precision": "numeric precision of inference (fp32 is the original's)",
    "config": "preset name (default: read from the weights)",
    "img_size": "network input side in pixels, a multiple of 32 (default: the model's)",
    "dynamic_batch": "ONNX: a graph with a dynamic batch dimension",
    "calib_images": "image folder of a COCO --calib file",
    "calib_count": "calibration images to use",
    "batch_size": "images per forward pass",
    "warmup": "untimed runs before timing",
    "repeats": "timed runs (the median is reported)",
    "threads": "torch CPU threads (default: torch's)",
    "port": "TCP port to listen on",
    "max_upload_mb": "largest accepted upload, in MB",
    "log_level": "server log level",
}


def fill_help(parser: argparse.ArgumentParser) -> None:
    """Give every flag of ``parser`` and its verbs without a help text its SHARED_HELP line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                fill_help(child)
        elif action.help is None and action.option_strings:
            action.help = SHARED_HELP.get(action.dest, action.dest.replace("_", " "))


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, "(default: X)", unless its text already names one
    or it has none worth showing (None, False, an empty list)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, [], (), argparse.SUPPRESS) \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def add_out_args(p: argparse.ArgumentParser, default: str, what: str = "output folder") -> None:
    """--out (default: a fresh ``default``, ``default2``, ...) and --exist-ok."""
    p.add_argument("--out", "-o", default=None,
                   help=f"{what} (default: {default}, or {default}2, {default}3, ... if it exists)")
    p.add_argument("--exist-ok", action="store_true", help=f"write into {default} even if it exists")


SCORE_HELP = ("drop detections whose class score (the box score) is below this; the mask score shown can be "
              "lower: YOLACT++ and --recipe fast models multiply it in")


def add_postprocess_args(p: argparse.ArgumentParser, score_threshold: Optional[float], top_k: Optional[int] = 100,
                         score_help: str = SCORE_HELP, per_request: bool = False) -> None:
    """The prediction controls shared by predict, eval, serve and track (Ultralytics' names).
    ``per_request`` (serve): no --score-threshold/--top-k, each request sets its own. ``top_k``
    None: the model's cap (``cfg.max_num_detections``) unless given; eval keeps COCO's 100."""
    count = p
    if not per_request:
        p.add_argument("--score-threshold", "--conf", type=float, default=score_threshold, help=score_help)
        count = p.add_mutually_exclusive_group()
        count.add_argument("--top-k", type=int, default=top_k,
                           help="keep at most this many detections per image" if top_k is not None else
                           "keep at most this many detections per image (default: the model's cap, 100 for the "
                           "presets; an exported graph's K)")
    count.add_argument("--max-det", type=int, default=None,
                       help="every request: at most this many detections per image, in place of the request's "
                            "top_k" if per_request else "alias of --top-k (Ultralytics' name)")
    p.add_argument("--classes", default=None, metavar="NAMES_OR_IDS",
                   help="keep only these classes: comma-separated names or 0-based ids, e.g. ball,tri or 0,2")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the original's 0.5)")
    p.add_argument("--agnostic-nms", action="store_true",
                   help="one NMS across classes, so an object is not reported twice under two classes")
    p.add_argument("--img-size", type=int, default=None,
                   help="network input size, a multiple of 32 (default: the model's trained size)")
    p.add_argument("--slice", type=int, default=None, metavar="TILE",
                   help="sliced inference for small objects in large images: overlapping TILE x TILE pixel tiles, "
                        "each run at the model's size, duplicates merged by mask (default: off)")
    p.add_argument("--slice-overlap", type=float, default=None,
                   help="--slice: overlap of neighbouring tiles, a fraction in [0, 1) (default: 0.2)")
    p.add_argument("--slice-full", action=argparse.BooleanOptionalAction, default=True,
                   help="--slice: also run the whole image, for the large objects (default: on)")


def parse_classes(text: str):
    """'ball,tri' -> ['ball', 'tri']; '0,2' -> [0, 2] (names and ids may be mixed)."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or not all(items):
        raise YolactError(f"--classes {text!r}: expected comma-separated class names or ids, e.g. ball,tri or 0,2")
    return [int(t) if t.isdigit() else t for t in items]


def predict_options(args) -> dict:
    """Keyword arguments for ``model.predict`` from the controls the user set (those left at their
    defaults are not passed, so the default output stays the original's, bit for bit):
    ``classes``, ``iou``, ``agnostic_nms``, ``max_det``, ``img_size``, ``slice`` and ``slice_full``."""
    options = {}
    if getattr(args, "classes", None):
        options["classes"] = parse_classes(args.classes)
    if getattr(args, "iou", None) is not None:
        options["iou"] = args.iou
    if getattr(args, "agnostic_nms", False):
        options["agnostic_nms"] = True
    if getattr(args, "max_det", None) is not None:
        options["max_det"] = args.max_det
    if getattr(args, "img_size", None) is not None:
        options["img_size"] = args.img_size
    from .. import checks

    checks.needs("--slice-overlap", getattr(args, "slice_overlap", None) is not None,
                 "--slice", getattr(args, "slice", None) is not None)
    if getattr(args, "slice", None) is not None:
        overlap = 0.2 if args.slice_overlap is None else args.slice_overlap
        checks.at_least("--slice", args.slice, 32)
        if not 0 <= overlap < 1:
            raise YolactError(f"--slice-overlap {overlap}: must be in [0, 1)")
        options["slice"] = (args.slice, overlap)
        options["slice_full"] = args.slice_full
    return options


def device(name: Optional[str]):
    """--device as a torch.device: None, '' or 'auto' mean CUDA when available, else CPU; CUDA
    always with an index ('cuda' is the current device, see :func:`yolact.checks.resolve_device`).
    Raises YolactError for an unknown device name or for CUDA on a machine without it."""
    from .. import checks

    return checks.resolve_device(name, "--device")


def weights_path(weights: Optional[str]) -> str:
    """--weights as a local file: None or 'demo' mean the built-in demo model; zoo names and
    hf:// URLs are fetched into the Hugging Face cache (yolact.hub)."""
    import yolact
    from ..hub import resolve_weights

    if weights in (None, "demo"):
        weights = yolact.demo_weights_path()
        if not Path(weights).exists():
            raise YolactError(f"{weights}: the built-in demo model is missing from this install")
    return str(resolve_weights(weights))


def load_model(args):
    """The predictor named by the arguments of :func:`add_model_args` (the backend follows the
    file's suffix unless --backend says otherwise)."""
    from ..deploy import load_predictor

    return load_predictor(weights_path(args.weights), config=getattr(args, "config", None),
                          device=device(getattr(args, "device", None)), precision=getattr(args, "precision", None),
                          compile=getattr(args, "compile", None), backend=getattr(args, "backend", None),
                          calib=getattr(args, "calib", None))


def add_model_args(p: argparse.ArgumentParser, backend: bool = False, also: tuple = (), calib: bool = True) -> None:
    """--weights, --config, --device, --precision, --compile, --calib (unless the verb has its own);
    --backend (plus ``also``) when asked."""
    p.add_argument("--weights", "-w", default=None,
                   help="checkpoint (.pth official or .pt from `yolact train`), an exported file (.onnx, OpenVINO .xml, "
                        "LiteRT .tflite, ExecuTorch .pte, NCNN NAME_ncnn/; `yolact export`), "
                        "a zoo name fetched from the Hugging Face Hub (yolact_base, ...: see `yolact weights`) "
                        "or hf://owner/repo/file.pth; "
                        "default: the built-in demo model")
    p.add_argument("--config", "-c", default=None, help="preset name (default: inferred from the checkpoint)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--precision", default=None, choices=list(PRECISIONS),
                   help="inference precision (default: fp32 for the original's architectures, fp32-fused for the "
                        "light resnet18 presets; fp32 is exact; fp32-fused folds BN, ~20%% faster on CPU; "
                        "bf16/fp16/int8 are faster still; int8 of a .pt: quantised once with OpenVINO or ONNX "
                        "Runtime, cached)")
    if calib:
        p.add_argument("--calib", default=None,
                       help="with --precision int8 on a .pt: a folder of calibration images (default: "
                            "synthetic images)")
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   choices=["default", "max-autotune", "reduce-overhead"],
                   help="torch.compile the network (reduce-overhead: CUDA graphs); first call compiles")
    if backend:
        from ..formats import FORMATS

        rows = ", ".join(f"{'/'.join(f.suffixes)} {f.title}" for f in FORMATS.values())
        p.add_argument("--backend", default=None, choices=[*FORMATS, *also],
                       help=f"default: from the --weights suffix ({rows})")


def class_list(path: Optional[str]):
    """Class names read from a classes.txt file (one a line, # comments ignored), or None when no
    path is given. Raises YolactError for a missing file, an empty list or a repeated name."""
    from ..data.builder import read_class_list

    return read_class_list(path) if path else None
