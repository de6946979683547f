"""Mask-PNG datasets -> COCO instances. Two layouts, both under one root with ``images/`` and
``masks/``:

- **Instance-id PNGs**: ``masks/<image stem>.png``, one per image; 0 is background and every
  other value one instance. ``classes.json`` at the root maps each id to a class, for the whole
  set (``{"1": "cat", "2": "dog"}``) or per image (``{"<image stem>": {"1": "cat"}}``). Colour
  PNGs work the same way, one instance per colour, with colour keys (``{"#ff0000": "cat"}``).
- **One binary PNG per instance**: ``masks/<image stem>_<k>_<class>.png`` (any non-zero pixel
  is the object; the class is the part after the last underscore).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import YolactError
from .builder import CocoBuilder
from .images import IMAGE_EXTENSIONS, image_size

_PER_INSTANCE = re.compile(r"^(?P<image>.+)_(?P<k>\d+)_(?P<cls>[^_]+)$")


def is_mask_dataset(root) -> bool:
    """True when ``root`` is a folder with ``images/`` and ``masks/`` subfolders (the mask PNG
    format); never raises."""
    r = Path(root)
    return r.is_dir() and (r / "images").is_dir() and (r / "masks").is_dir()


def _colour_key(key: str) -> Optional[Tuple[int, int, int]]:
    """'#rrggbb' or 'r,g,b' -> (b, g, r) as OpenCV reads it; None for an instance id."""
    k = key.strip()
    if k.startswith("#") and len(k) == 7:
        r, g, b = (int(k[i:i + 2], 16) for i in (1, 3, 5))
        return b, g, r
    if k.count(",") == 2:
        r, g, b = (int(v) for v in k.split(","))
        return b, g, r
    return None


def _read_mapping(root: Path) -> Dict:
    p = root / "classes.json"
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise YolactError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise YolactError(f"{p}: expected an object mapping ids or colours to class names")
    return data


def mask_pngs_to_coco(root, out_json, classes: Optional[Sequence[str]] = None) -> Tuple[Path, List[str]]:
    """-> (COCO path with absolute image file names, problems)."""
    root = Path(root)
    if not is_mask_dataset(root):
        raise YolactError(f"{root}: a mask dataset needs images/ and masks/ folders")
    images = sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise YolactError(f"{root / 'images'}: no images")
    masks = sorted((root / "masks").glob("*.png"))
    by_stem = {m.stem: m for m in masks}
    image_stems = {p.stem for p in images}
    per_instance: Dict[str, List[Tuple[int, str, Path]]] = {}
    for m in masks:
        hit = _PER_INSTANCE.match(m.stem)
        if hit and m.stem not in image_stems:
            per_instance.setdefault(hit["image"], []).append((int(hit["k"]), hit["cls"], m))
    mapping = _read_mapping(root)
    builder = CocoBuilder(classes, source=root)
    for stem in sorted(set(per_instance) - image_stems):
        builder.problems.append(f"{per_instance[stem][0][2]}: no image '{stem}' in {root / 'images'}")
    for img_path in images:
        size = image_size(img_path)  # upright (EXIF orientation applied): masks are drawn on the upright photo
        if size is None:
            builder.problems.append(f"{img_path}: unreadable image")
            continue
        w, h = size
        image_id = builder.add_image(str(img_path.resolve()), h, w)
        since = len(builder.problems)
        if img_path.stem in by_stem:
            _read_instance_png(builder, image_id, by_stem[img_path.stem], (h, w), mapping, img_path.stem)
        for k, cls, mp in sorted(per_instance.get(img_path.stem, [])):
            m = cv2.imread(str(mp), cv2.IMREAD_GRAYSCALE)
            if m is None:
                builder.problems.append(f"{mp}: unreadable mask")
            elif m.shape != (h, w):
                builder.problems.append(f"{mp}: mask is {m.shape[1]}x{m.shape[0]}, image is {w}x{h}")
            else:
                builder.add_instance(image_id, m > 0, cls, f"{mp}")
        builder.skip_if_all_dropped(image_id, since, str(img_path))
    return builder.write(out_json), builder.problems


def _read_instance_png(builder: CocoBuilder, image_id: int, path: Path, size, mapping: Dict, stem: str) -> None:
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        builder.problems.append(f"{path}: unreadable mask")
        return
    if m.shape[:2] != tuple(size):
        builder.problems.append(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, image is {size[1]}x{size[0]}")
        return
    table = mapping.get(stem) if isinstance(mapping.get(stem), dict) else mapping
    if m.ndim == 3:  # colour: one instance per colour
        colours = {}
        for key, name in table.items():
            c = _colour_key(str(key))
            if c is not None:
                colours[c] = str(name)
        px = m[..., :3].reshape(-1, 3)
        for c in {tuple(int(v) for v in row) for row in np.unique(px, axis=0)} - {(0, 0, 0)}:
            where = f"{path}: colour #{c[2]:02x}{c[1]:02x}{c[0]:02x}"
            if c not in colours:
                builder.problems.append(f"{where}: not in classes.json")
                continue
            builder.add_instance(image_id, np.all(m[..., :3] == c, axis=-1), colours[c], where)
        return
    for inst in (int(v) for v in np.unique(m) if v != 0):
        where = f"{path}: instance {inst}"
        name = table.get(str(inst))
        if name is None:
            builder.problems.append(f"{where}: no class for this id in classes.json")
            continue
        builder.add_instance(image_id, m == inst, str(name), where)
