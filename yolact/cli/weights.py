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
    if args.action == "verify":
        return _verify(args.names)
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
    print(f"\nmask AP: COCO test-dev; fps: Titan Xp (the original's README). Sizes: ~ estimated from the "
          f"tensor shapes, ? unknown until cached.\ncache: {constants.HF_HUB_CACHE} (HF_HOME / HF_HUB_CACHE); "
          "use a name with --weights (fetched on first use) or `yolact weights download NAME`.")
    return 0


def _verify(names) -> int:
    """Hash cached zoo files against the hub's sha256 (e.g. files fetched by other tools, which
    the hub client does not hash); a bad copy is removed so the next use downloads it again."""
    from ..hub import IMAGENET, ZOO, cached_file, verify_download

    entries = [e for e in [*ZOO.values(), *IMAGENET.values()] if e.repo and (not names or e.name in names)]
    unknown = set(names or ()) - {e.name for e in entries}
    if unknown:
        raise YolactError(f"yolact weights verify: not in the zoo: {', '.join(sorted(unknown))}")
    bad = checked = 0
    for e in entries:
        path = cached_file(e)
        if path is None:
            continue
        checked += 1
        try:
            verify_download(path, e.repo, e.filename, expected_sha256=e.sha256, fresh=False)
            print(f"{e.name}: ok ({path})")
        except YolactError as err:
            bad += 1
            print(f"{e.name}: {err}")
    print(f"{checked} cached file(s) checked, {bad} bad")
    return 1 if bad else 0


def add_commands(sub) -> None:
    p = sub.add_parser("weights", help="list the model zoo (official weights on the Hugging Face Hub), download "
                                       "by name, or verify cached files")
    p.add_argument("action", nargs="?", choices=["list", "download", "verify"], default="list",
                   help="list (default); download NAME...; verify [NAME...]: hash cached files against the hub's sha256")
    p.add_argument("names", nargs="*", help="zoo names (yolact_base, ...; resnet101, resnet50, darknet53 for "
                                            "the ImageNet backbones)")
    p.add_argument("--all", action="store_true", help="download every zoo model")
    p.set_defaults(func=cmd_weights)
