"""YOLO segmentation layout (data.yaml, images/, labels/*.txt with normalised polygons) <-> COCO.

A YOLO split is converted to a COCO instances JSON once, then read by :class:`CocoDataset`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import yaml
from pycocotools import mask as mask_utils

from ..errors import YolactError, warn
from .builder import all_dropped
from .geometry import bounded_polygon
from .images import IMAGE_EXTENSIONS, image_size


def _read_yaml(path) -> Dict:
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise YolactError(f"{p}: not a text file (invalid UTF-8)") from None
    except yaml.YAMLError as e:
        raise YolactError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or "names" not in data:
        raise YolactError(f"{p}: not a YOLO data.yaml (needs 'names')")
    _names(data, p)
    if "path" in data and not isinstance(data["path"], str):
        raise YolactError(f"{p}: 'path' must be a folder name, found {data['path']!r}")
    return data


def _names(data: Dict, path) -> List[str]:
    names = data["names"]
    if isinstance(names, dict):
        if not all((isinstance(k, int) and not isinstance(k, bool)) or (isinstance(k, str) and k.isdigit())
                   for k in names):
            raise YolactError(f"{path}: 'names' keys must be class indices 0, 1, ...")
        names = [names[k] for k in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise YolactError(f"{path}: 'names' must be a non-empty list or an index -> name mapping")
    return [str(n) for n in names]


# Normalised coordinates outside [COORD_LO, COORD_HI] are not rounding noise: the row is skipped.
COORD_LO, COORD_HI = -0.01, 1.01


def _parse_label_line(line: str, num_classes: int) -> Tuple[int, np.ndarray]:
    """'cls x1 y1 x2 y2 ...' (polygon) or 'cls cx cy w h' (box) -> (class, relative coords);
    ValueError saying what is wrong."""
    vals = line.split()
    try:
        cls_f = float(vals[0])
        coords = np.array([float(v) for v in vals[1:]], np.float64)
    except ValueError:
        raise ValueError("not numbers") from None
    if not cls_f.is_integer() or not 0 <= cls_f < num_classes:
        raise ValueError(f"class {vals[0]} is not one of 0..{num_classes - 1}")
    if not np.isfinite(coords).all():
        raise ValueError("non-finite coordinate")
    if coords.size and (coords.max() > COORD_HI or coords.min() < COORD_LO):
        # As Ultralytics: a label in pixel units would otherwise be a full-image mask (or none)
        far = coords.max() if coords.max() > COORD_HI else coords.min()
        raise ValueError(f"coordinates outside 0..1: pixel units? YOLO labels are normalised (found {far:g})")
    if len(coords) == 4:  # a box-only line: use the box as polygon
        cx, cy, bw, bh = coords
        coords = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy - bh / 2,
                           cx + bw / 2, cy + bh / 2, cx - bw / 2, cy + bh / 2])
    elif len(coords) < 6 or len(coords) % 2:
        raise ValueError(f"{len(coords)} coordinates (a polygon needs an even number, at least 6)")
    return int(cls_f), np.clip(coords, 0.0, 1.0)  # rounding noise such as 1.0021, as Ultralytics


def _label_path(img: Path) -> Path:
    parts = list(img.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def yolo_to_coco(data_yaml, split: str, out_json) -> Tuple[Path, List[str]]:
    """Convert one split of a YOLO segmentation dataset to a COCO instances file.
    -> (the file, the label lines and files skipped, each with its reason)."""
    yml = Path(data_yaml)
    img_dir = yolo_split_dir(yml, split)
    if not img_dir.is_dir():
        raise YolactError(f"{yml}: {split} folder {img_dir} does not exist")
    names = _names(_read_yaml(yml), yml)
    images, anns, problems = [], [], []
    for img_path in sorted(f for f in img_dir.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS):
        size = image_size(img_path)  # upright (EXIF orientation applied), as the image will be read
        if size is None:
            problems.append(f"{img_path}: not a readable image; skipped")
            continue
        w, h = size
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": str(img_path.relative_to(img_dir)), "height": h, "width": w})
        lp = _label_path(img_path)
        if not lp.exists():
            continue
        try:
            lines = lp.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            images.pop()  # its objects are unknown: not a background image
            problems.append(f"{lp}: not a text file (invalid UTF-8); image skipped, not trained as a background image")
            continue
        since, kept = len(problems), len(anns)
        for line_no, line in enumerate(lines, 1):
            if not line.split():
                continue
            try:
                cls, coords = _parse_label_line(line, len(names))
            except ValueError as e:
                problems.append(f"{lp}:{line_no}: {e}; line skipped")
                continue
            poly = (coords.reshape(-1, 2) * [w, h]).reshape(-1).tolist()
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cls, "iscrowd": 0,
                   "segmentation": [poly], "source": f"{lp}:{line_no}"}
            inside = bounded_polygon(np.reshape(poly, (-1, 2)), h, w)  # a far-out vertex is clipped away
            rle = mask_utils.merge(mask_utils.frPyObjects([inside.reshape(-1).tolist()], h, w)) \
                if len(poly) >= 6 and inside is not None else None
            if rle is None or not mask_utils.area(rle):
                problems.append(f"{lp}:{line_no}: covers no pixel of the {w}x{h} image; line skipped")
                continue
            ann["bbox"] = mask_utils.toBbox(rle).tolist()
            ann["area"] = float(mask_utils.area(rle))
            anns.append(ann)
        if len(anns) == kept and len(problems) > since:  # every row skipped: not a background image
            images.pop()
            problems.append(all_dropped(str(lp), problems[since:]))
    categories = [{"id": i, "name": n} for i, n in enumerate(names)]
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": {"yolact_source": f"{yml} ({split})"}, "images": images, "annotations": anns,
                               "categories": categories}))
    return out, problems


def yolo_split_dir(data_yaml, split: str) -> Path:
    """The image folder of one split of a YOLO data.yaml."""
    data = _read_yaml(data_yaml)
    if split not in data:
        raise YolactError(f"{data_yaml}: no '{split}' split")
    if not isinstance(data[split], str):
        raise YolactError(f"{data_yaml}: '{split}' must be one folder name, found {data[split]!r}")
    root = Path(data.get("path", Path(data_yaml).parent))
    if not root.is_absolute():
        root = (Path(data_yaml).parent / root).resolve()
    return root / data[split]


def coco_to_yolo(coco_json, image_dir, out_dir, val_fraction: float = 0.0, seed: int = 0) -> Path:
    """Write a YOLO layout (images copied, labels/*.txt, data.yaml) from COCO; -> data.yaml.

    ``val_fraction`` 0: one split, ``images/`` and ``labels/``, and data.yaml names no ``val``
    (there is none). Otherwise a seeded split stratified by class (as ``yolact data split``):
    ``images/train``, ``images/val`` and their ``labels/`` folders, and data.yaml names both.
    Holes, which YOLO polygons cannot hold, are filled (one warning line with the count)."""
    from .coco import ann_to_mask, read_coco_json
    from .split import stratified_val_ids

    if not image_dir:
        raise YolactError("--images is needed to convert COCO to YOLO")
    if not 0 <= val_fraction < 1:
        raise YolactError(f"--val {val_fraction}: must lie in [0, 1)")
    data = read_coco_json(coco_json)
    out = Path(out_dir)
    val_ids = stratified_val_ids(data, val_fraction, seed) if val_fraction > 0 else set()
    splits = ("train", "val") if val_fraction > 0 else ("",)
    for sp in splits:
        (out / "images" / sp).mkdir(parents=True, exist_ok=True)
        (out / "labels" / sp).mkdir(parents=True, exist_ok=True)
    cat_index = {c["id"]: i for i, c in enumerate(data["categories"])}
    filled_holes = 0
    by_image: Dict[int, List[Dict]] = {}
    for a in data.get("annotations", []):
        by_image.setdefault(a["image_id"], []).append(a)
    for img in data["images"]:
        sp = ("val" if img["id"] in val_ids else "train") if val_fraction > 0 else ""
        src = Path(image_dir) / img["file_name"]
        dst = out / "images" / sp / Path(img["file_name"]).name
        if src.exists() and not dst.exists():
            dst.write_bytes(src.read_bytes())
        h, w = img["height"], img["width"]
        lines = []
        for a in by_image.get(img["id"], []):
            if a.get("iscrowd") or a.get("category_id") not in cat_index:
                continue
            poly, holed = instance_polygon(ann_to_mask(a, h, w))
            filled_holes += holed
            if poly is not None:
                pts = poly / [w, h]
                lines.append(f"{cat_index[a['category_id']]} " + " ".join(f"{v:.10g}" for v in pts.reshape(-1)))
        (out / "labels" / sp / (Path(img["file_name"]).stem + ".txt")).write_text("\n".join(lines) + ("\n" if lines else ""))
    names = [c["name"] for c in data["categories"]]
    yml = out / "data.yaml"
    spec = {"path": str(out.resolve()), "train": "images/train" if val_fraction > 0 else "images"}
    if val_fraction > 0:
        spec["val"] = "images/val"
    yml.write_text(yaml.safe_dump({**spec, "names": names}, sort_keys=False))
    if filled_holes:
        warn(f"{coco_json}: {filled_holes} instance(s) have holes, which YOLO polygons cannot hold: they were filled")
    return yml


def instance_polygon(mask: np.ndarray):
    """One mask -> (one polygon [N, 2] in pixel coordinates, whether it had holes).

    Outlines are traced on a 2x nearest-upsampled mask and halved, so that the polygon runs
    along pixel edges: rasterised again (pycocotools) it gives back the mask exactly. The parts
    of a multi-part object are joined into one polygon by zero-width bridges between their
    nearest points (YOLO has one polygon per instance). Holes are filled.
    """
    up = cv2.resize(mask, (mask.shape[1] * 2, mask.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None, False
    has_holes = bool((hierarchy[0][:, 3] >= 0).any())
    # +0.375 (in upsampled pixels) keeps the vertices clear of the half-pixel boundaries where
    # rasterisation flips: the mask comes back exactly even after rounding to text.
    parts = [(c.reshape(-1, 2).astype(np.float64) + 0.375) / 2
             for c, h in zip(contours, hierarchy[0]) if h[3] < 0 and len(c) >= 3]
    if not parts:
        return None, has_holes
    parts.sort(key=lambda p: -cv2.contourArea(p.astype(np.float32)))
    poly = parts[0]
    for part in parts[1:]:
        d = ((poly[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(d.argmin()), d.shape)
        detour = np.concatenate([np.roll(part, -j, axis=0), part[j:j + 1]])
        poly = np.concatenate([poly[:i + 1], detour, poly[i:]])
    return poly, has_holes
