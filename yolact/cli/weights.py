"""``yolact weights``: the model zoo (official weights on the Hugging Face Hub) and downloads by name."""
from __future__ import annotations

from ..errors import YolactError


def _size(entry, cached) -> str:
    if cached is not None:
        return f"{cached.stat().st_size / 1e6:.1f} MB"
    return f"~{entry.approx_mb:.0f} MB" if entry.approx_mb else "?"


def cmd_weights(args) -> int:
    from huggingface_hub import constants

    from ..hub import IMAGENET, ZOO, cached_file, fetch_entry, resolve_weights

    if args.action == "download":
        names = args.names or ([n for n, e in ZOO.items() if e.repo] if args.all else [])
        if not names:
            raise YolactError("yolact weights download: give zoo names (see `yolact weights`) or --all")
        for name in names:
            entry = IMAGENET.get(name)
            path = fetch_entry(entry, label=entry.filename) if entry else resolve_weights(name)
            print(f"{name}: {path}")
        return 0
    rows = [("preset", "hub file", "size", "cached", "mask AP", "fps")]
    for e in ZOO.values():
        cached = cached_file(e)
        rows.append((e.name, f"{e.repo}/{e.filename}" if e.repo else f"- ({e.note.split(':')[0]})",
                     _size(e, cached) if e.repo else "-", "yes" if cached else "no" if e.repo else "-",
                     f"{e.mask_ap:.1f}" if e.mask_ap else "-", f"{e.fps:.1f}" if e.fps else "-"))
    rows.append(("", "", "", "", "", ""))
    rows.append(("ImageNet (train)", "", "", "", "", ""))
    for e in IMAGENET.values():
        cached = cached_file(e)
        rows.append((e.name, f"{e.repo}/{e.filename}", _size(e, cached), "yes" if cached else "no", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\nmask AP: COCO test-dev; fps: Titan Xp (the original's README). Sizes with ~ are estimated from "
          f"the tensor shapes.\ncache: {constants.HF_HUB_CACHE} (HF_HOME / HF_HUB_CACHE); "
          "use a name with --weights (fetched on first use) or `yolact weights download NAME`.")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("weights", help="list the model zoo (official weights on the Hugging Face Hub) or download by name")
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list")
    p.add_argument("names", nargs="*", help="zoo names to download (yolact_base, ...; resnet101 etc. for "
                                            "the ImageNet backbones)")
    p.add_argument("--all", action="store_true", help="download every zoo model")
    p.set_defaults(func=cmd_weights)
