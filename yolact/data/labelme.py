"""LabelMe folders (one ``.json`` per image) -> COCO instances.

- Shapes: ``polygon`` (3+ points), ``rectangle`` (two corners), ``circle`` (centre and a point
  on the circle), ``mask`` (LabelMe 5.4+ AI masks: a base64 PNG cropped to the box ``points``,
  placed as LabelMe places it). Other shape types (line, point, linestrip, ...) are skipped and
  reported; an image whose shapes were all skipped is skipped too (never a background image).
- Instances: shapes that share a ``group_id`` and a label form one instance (multi-part
  objects); a shape without a ``group_id`` is an instance of its own.
- Holes: a shape labelled ``hole_label`` ("hole" by default) is cut out of every instance of
  its ``group_id``. We use a label and not the even-odd rule, because overlapping parts of one
  object (drawn as several polygons) must stay filled. A hole with no group is reported.
- Images: ``imagePath`` relative to the JSON file (Windows separators as in
  ``..\\photos\\c.jpg`` read as LabelMe reads them; an absolute path from another machine falls
  back to the file of that name beside the JSON), else the embedded ``imageData`` (base64),
  which is written out as a PNG beside the output file. Pixels are upright (EXIF orientation
  applied, as LabelMe shows and annotates them).
- Images in the folder that no JSON file names are background images: kept, with no objects.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path, PureWindowsPath
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import YolactError, warn
from .builder import CocoBuilder, all_dropped
from .geometry import bounded_polygon, is_far_outside
from .images import IMAGE_EXTENSIONS, decode_image, image_size


def _rasterise(shape: Dict, h: int, w: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """-> (mask, None) or (None, why it was skipped)."""
    kind = shape.get("shape_type") or "polygon"
    try:
        pts = np.asarray(shape.get("points", []), np.float64).reshape(-1, 2)
    except ValueError:
        return None, "malformed points"
    mask = np.zeros((h, w), np.uint8)
    if kind == "polygon":
        if len(pts) < 3:
            return None, f"degenerate polygon ({len(pts)} points)"
        # OpenCV draws in 16.16 fixed point: a far-out vertex would wrap around, so clip first.
        inside = bounded_polygon(pts, h, w)
        if inside is not None:
            cv2.fillPoly(mask, [np.round(inside).astype(np.int32)], 1)
    elif kind == "rectangle":
        if len(pts) != 2:
            return None, f"rectangle with {len(pts)} points"
        (x1, y1), (x2, y2) = np.clip(np.sort(pts, axis=0), -1, [w + 1, h + 1])
        cv2.rectangle(mask, (int(round(x1)), int(round(y1))), (int(round(x2)) - 1, int(round(y2)) - 1), 1, -1)
    elif kind == "circle":
        if len(pts) != 2:
            return None, f"circle with {len(pts)} points"
        r = float(np.hypot(*(pts[1] - pts[0])))
        if is_far_outside(np.array([pts[0] - r, pts[0] + r]), h, w):  # beyond OpenCV's drawing range
            yy, xx = np.mgrid[:h, :w]
            mask[(xx - round(pts[0][0])) ** 2 + (yy - round(pts[0][1])) ** 2 <= round(r) ** 2] = 1
        else:
            cv2.circle(mask, (int(round(pts[0][0])), int(round(pts[0][1]))), int(round(r)), 1, -1)
    elif kind == "mask":
        return _ai_mask(shape, pts, h, w)
    else:
        return None, f"unsupported shape type '{kind}'"
    if not mask.any():
        return None, "degenerate shape (no pixel inside)"
    return mask, None


def _ai_mask(shape: Dict, pts: np.ndarray, h: int, w: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """A LabelMe 5.4+ AI-mask shape: ``mask`` is a base64 PNG of the object cropped to the box
    ``points`` [[x1, y1], [x2, y2]]; placed as LabelMe's ``shapes_to_label`` does, at the
    top-left point truncated to int (``mask[y1:y2 + 1, x1:x2 + 1]``), any non-zero pixel being
    the object. The part outside the image is cut off."""
    data = shape.get("mask")
    if not isinstance(data, str) or not data:
        return None, "mask shape without its 'mask' (base64 PNG)"
    if len(pts) != 2:
        return None, f"mask shape with {len(pts)} points (needs the box's two corners)"
    try:
        crop = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)
    except (ValueError, TypeError):
        crop = None
    if crop is None:
        return None, "mask shape whose 'mask' is not a base64 PNG"
    crop = crop.any(axis=2) if crop.ndim == 3 else crop > 0
    x1, y1 = (int(v) for v in pts[0])  # numpy astype(int), as LabelMe
    ch, cw = crop.shape
    mask = np.zeros((h, w), np.uint8)
    ys, xs = max(y1, 0), max(x1, 0)
    ye, xe = min(y1 + ch, h), min(x1 + cw, w)
    if ye > ys and xe > xs:
        mask[ys:ye, xs:xe] = crop[ys - y1:ye - y1, xs - x1:xe - x1]
    if not mask.any():
        return None, "degenerate shape (no pixel inside)"
    return mask, None


def _far_points(shape: Dict, h: int, w: int) -> bool:
    """Whether a shape has a vertex more than one image size outside the image."""
    try:
        return is_far_outside(np.asarray(shape.get("points", []), np.float64).reshape(-1, 2), h, w)
    except ValueError:
        return False


def _image_candidates(rel: str, json_path: Path) -> List[Path]:
    """Where ``imagePath`` may point: as written, with Windows separators (LabelMe on Windows
    writes ``..\\photos\\c.jpg``), and, for an absolute path from another machine, the file of
    that name beside the JSON file."""
    win = PureWindowsPath(rel)
    out = [json_path.parent / rel, json_path.parent / win.as_posix()]
    if win.drive or win.is_absolute() or Path(rel).is_absolute():
        out.append(json_path.parent / win.name)
    return out


def _image_for(doc: Dict, json_path: Path, image_out: Path) -> Tuple[Optional[str], Optional[np.ndarray]]:
    """-> (absolute image file name, upright BGR image) or (None, None) when there is none."""
    rel = doc.get("imagePath")
    if isinstance(rel, str) and rel:
        for p in _image_candidates(rel, json_path):
            if p.is_file():
                img = decode_image(np.fromfile(str(p), np.uint8), str(p))
                if img is not None:
                    return str(p.resolve()), img
    data = doc.get("imageData")
    if data:
        try:
            raw = base64.b64decode(data)
        except (ValueError, TypeError):
            return None, None
        img = decode_image(raw, f"{json_path}: imageData")
        if img is None:
            return None, None
        image_out.mkdir(parents=True, exist_ok=True)
        out = image_out / (json_path.stem + ".png")
        cv2.imwrite(str(out), img)
        return str(out.resolve()), img
    return None, None


def labelme_files(src) -> List[Path]:
    """The LabelMe files under folder ``src`` (recursively, sorted by path): the .json files
    holding an object with a ``shapes`` key. Raises :class:`YolactError` when ``src`` is not a
    folder or one of its .json files is not valid JSON."""
    root = Path(src)
    if not root.is_dir():
        raise YolactError(f"{root}: not a folder")
    files = []
    for p in sorted(root.rglob("*.json")):
        try:
            doc = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise YolactError(f"{p}: not valid JSON ({e})") from None
        if isinstance(doc, dict) and "shapes" in doc:  # other JSON files (e.g. a class map) are not LabelMe
            files.append(p)
    return files


def labelme_to_coco(src, out_json, classes: Optional[Sequence[str]] = None, hole_label: str = "hole") -> Tuple[Path, List[str]]:
    """Convert a LabelMe folder to a COCO file whose image file names are absolute paths (so the
    image folder argument of the COCO reader is irrelevant). -> (path, problems)."""
    files = labelme_files(src)
    if not files:
        raise YolactError(f"{src}: no LabelMe .json files (with a 'shapes' list)")
    out = Path(out_json)
    builder = CocoBuilder(classes, source=src)
    used = set()
    for jp in files:
        doc = json.loads(jp.read_text())
        file_name, img = _image_for(doc, jp, out.parent / (out.stem + "_images"))
        if img is None:
            builder.problems.append(f"{jp}: missing image ({doc.get('imagePath')!r} not found and no imageData)")
            continue
        h, w = img.shape[:2]
        used.add(file_name)
        declared = (doc.get("imageHeight"), doc.get("imageWidth"))
        if None not in declared and tuple(declared) != (h, w):
            builder.problems.append(f"{jp}: image {file_name} is {w}x{h} (upright) but the file says "
                                    f"{declared[1]}x{declared[0]}; skipped")
            continue
        groups: Dict[Tuple, np.ndarray] = {}
        holes: Dict[object, np.ndarray] = {}
        shapes = doc.get("shapes") or []
        dropped = len(builder.problems)
        for k, shape in enumerate(shapes):
            where = f"{jp}: shape {k}"
            label = str(shape.get("label", ""))
            mask, why = _rasterise(shape, h, w)
            if mask is None:
                builder.problems.append(f"{where} ('{label}'): {why}")
                continue
            if (shape.get("shape_type") or "polygon") == "polygon" and _far_points(shape, h, w):
                warn(f"{where} ('{label}'): a vertex lies far outside the {w}x{h} image; the polygon is "
                     "clipped to the image")
            gid = shape.get("group_id")
            if label == hole_label:
                if gid is None:
                    builder.problems.append(f"{where}: a '{hole_label}' shape without a group_id cuts nothing")
                else:
                    holes[gid] = holes.get(gid, 0) | mask
                continue
            key = (label, gid) if gid is not None else (label, f"#{k}")
            groups[key] = groups.get(key, 0) | mask
        kept = []
        for (label, gid), mask in groups.items():
            if gid in holes:
                mask = mask & (1 - holes[gid])
            if mask.any():
                kept.append((label, gid, mask))
        if shapes and not kept:
            # Its objects were all dropped: trained as a background image it would teach that
            # they are not objects. Only an image annotated with nothing is a background image.
            builder.problems.append(all_dropped(str(jp), builder.problems[dropped:] or [f"{jp}: nothing left"]))
            used.add(file_name)
            continue
        image_id = builder.add_image(file_name, h, w, source=str(jp))
        for label, gid, mask in kept:
            builder.add_instance(image_id, mask, label, f"{jp}: '{label}'" + (f" group {gid}" if not str(gid).startswith("#") else ""))
    # Images no JSON file names: annotated as holding nothing (background images). Our own
    # output (embedded images written out, `data check -o src/check` pictures) is not input.
    root = Path(src).resolve()
    ours = [(out.parent / (out.stem + "_images")).resolve()]
    if root in out.parent.resolve().parents:  # an output folder inside the source folder
        ours.append(out.parent.resolve())
    for p in sorted(Path(src).rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
            continue
        rp = p.resolve()
        if str(rp) in used or any(d in rp.parents for d in ours):
            continue
        size = image_size(p)
        if size is None:
            builder.problems.append(f"{p}: not a readable image; skipped")
            continue
        builder.add_image(str(rp), size[1], size[0], source=str(p))
    return builder.write(out), builder.problems
