"""``yolact info``: what a weights file holds (preset, classes, size, cost) and where it came from."""
from __future__ import annotations

import json

from .common import device, weights_path


def cmd_info(args) -> int:
    """Run ``yolact info`` (preset, classes, size, cost of a file of any row of the formats table);
    returns exit code 0."""
    import yolact
    from ..config import default_precision
    from ..errors import YolactError
    from ..formats import format_for, resolve
    from ..prediction.info import format_info, model_info

    from .. import checks

    if args.file is not None and args.weights is not None and args.file != args.weights:
        raise YolactError(f"info: {args.file} and --weights {args.weights}: give the file once (either is fine)")
    checks.img_size("--img-size", args.img_size)
    checks.device("--device", args.device)
    path = weights_path(args.file if args.file is not None else args.weights)
    fmt = format_for(path)
    if fmt.describe is not None:  # read from the file, not run (Core ML: macOS only)
        if args.img_size or args.config:
            raise YolactError(f"{path}: a {fmt.title} file is described as it was exported: drop "
                              f"{'--img-size' if args.img_size else '--config'}")
        info = resolve(fmt.describe)(path)
    else:
        # the file's own architecture (BatchNorm kept): its parameters, not a fused copy's
        model = yolact.load(path, config=args.config, device=device(args.device), precision="fp32")
        info = model_info(model, path, img_size=args.img_size)
        info["predicts_at"] = default_precision(model.cfg)  # loaded exact to count; what predict uses
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    return 0


def add_commands(sub) -> None:
    """Add the ``info`` verb to ``sub``."""
    from ..formats import FORMATS

    files = ", ".join(f"{'/'.join(f.suffixes)} ({f.title})" for f in FORMATS.values())
    p = sub.add_parser("info", help="a model's preset, classes, parameters, GFLOPs and the file's origin")
    p.add_argument("file", nargs="?", default=None, metavar="FILE",
                   help="the weights file to describe (as --weights: yolact info model.onnx)")
    p.add_argument("--weights", "-w", default=None,
                   help=f"a weights file: {files}; or a zoo name (default: the built-in demo model)")
    p.add_argument("--config", "-c", default=None, help="preset name (default: inferred from the checkpoint)")
    p.add_argument("--device", default="cpu", help="where to count the FLOPs (default: cpu)")
    p.add_argument("--img-size", type=int, default=None, help="count GFLOPs at this input size (default: the model's)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)
