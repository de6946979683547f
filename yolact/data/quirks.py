"""What reading a COCO file corrects, so that training, its validation, ``eval`` and ``data check``
all read the same file the same way (:func:`normalise_coco`, called by
:func:`yolact.data.coco.read_coco_json`). Each correction is one ``note:`` line naming the file:

- a box that disagrees with its mask's extent (IoU < 0.5), or none ([0, 0, 0, 0], missing,
  malformed), is taken from the mask (pycocotools ``toBbox``), with a tested guess of what the
  boxes are ([x1, y1, x2, y2], or measured from the bottom); boxes that agree keep their values;
- a category that is only the other categories' supercategory and owns no annotation
  (Roboflow's root category) is left out;
- annotation ids used more than once (pycocotools keeps one annotation per id) are renumbered;
- a missing ``area`` (COCOeval needs it) is the mask's (pycocotools ``area``).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from .geometry import _is_int, _is_number, _polygon_parts, bounded_parts


_NOTED: Set[str] = set()


def note(message: str) -> None:
    """One ``note: <file>: <what was changed>`` line on stderr, once per process (a file read
    by training, its validation and the CLI says it once)."""
    import sys

    if message in _NOTED:
        return
    _NOTED.add(message)
    print(f"note: {message}", file=sys.stderr, flush=True)


# A box agrees with its mask's extent at IoU >= BOX_IOU, or when every side lies within
# BOX_SLACK pixels of it (a 2-pixel object measured one pixel wider is not a wrong box).
BOX_IOU, BOX_SLACK = 0.5, 1.5


def _box_iou(a, b) -> float:
    """IoU of two [x, y, w, h] boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(iw, 0.0) * max(ih, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def boxes_agree(box, ext) -> bool:
    """Whether COCO box ``box`` [x, y, w, h] describes a mask whose extent is ``ext``."""
    if _box_iou(box, ext) >= BOX_IOU:
        return True
    a = (box[0], box[1], box[0] + box[2], box[1] + box[3])
    b = (ext[0], ext[1], ext[0] + ext[2], ext[1] + ext[3])
    return max(abs(u - v) for u, v in zip(a, b)) <= BOX_SLACK


def _seg_rle(seg, h: Optional[int], w: Optional[int]):
    """The segmentation as one pycocotools RLE, or None when it is not a readable one. Polygons
    need the image size; without one (the JSON may leave it to the file) their extent is used."""
    try:
        if isinstance(seg, list):
            parts = _polygon_parts(seg)
            if not parts:
                return None
            if not (h and w):
                xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in parts])
                if not np.isfinite(xy).all() or np.abs(xy).max() > 1e6:
                    return None
                w, h = int(math.ceil(max(xy[:, 0].max(), 0))) + 1, int(math.ceil(max(xy[:, 1].max(), 0))) + 1
            parts = bounded_parts(seg, h, w)
            return mask_utils.merge(mask_utils.frPyObjects(parts, h, w)) if parts else None
        size = seg.get("size") if isinstance(seg, dict) else None
        if isinstance(size, list) and len(size) == 2 and all(_is_int(v) and 0 < v < 2 ** 31 for v in size):
            counts = seg.get("counts")
            if isinstance(counts, list):
                if not all(_is_int(v) and 0 <= v < 2 ** 31 for v in counts) or sum(counts) != size[0] * size[1]:
                    return None
                rle = mask_utils.frPyObjects(seg, *size)
            elif isinstance(counts, str):
                rle = seg
            else:
                return None
            mask_utils.area(rle)  # readable: pycocotools raises for what it cannot read
            return rle
    except Exception:  # noqa: BLE001 - whatever pycocotools cannot read, CocoDataset reports
        return None
    return None


def _vertex_extent(seg, h, w) -> Optional[List[float]]:
    """[x, y, w, h] spanned by a polygon's vertices (clipped to the image when its size is
    known): how COCO measures its boxes, and cheap."""
    if not isinstance(seg, list):
        return None
    # Plain Python min/max: this runs once per annotation of the file (COCO: 860k of them).
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    try:
        for p in seg:
            if isinstance(p, list) and len(p) >= 6 and not len(p) % 2:
                xs, ys = p[0::2], p[1::2]
                x0, x1 = min(x0, min(xs)), max(x1, max(xs))
                y0, y1 = min(y0, min(ys)), max(y1, max(ys))
    except TypeError:
        return None
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        return None
    if h and w:
        x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
        y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _usable_box(bbox) -> bool:
    return (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
            and bbox[2] > 0 and bbox[3] > 0)


def _guess_box_layout(bad: List[Tuple[list, List[float], Optional[int]]]) -> str:
    """What the disagreeing boxes are, when reading them another way makes most of them agree."""
    def share(read) -> float:
        ok = 0
        for box, ext, h in bad:
            b = read(box, h)
            ok += b is not None and b[2] > 0 and b[3] > 0 and boxes_agree(b, ext)
        return ok / len(bad)

    if share(lambda b, h: [b[0], b[1], b[2] - b[0], b[3] - b[1]]) > 0.5:
        return "; is bbox [x1, y1, x2, y2]?"
    if (share(lambda b, h: None if not h else [b[0], h - b[1] - b[3], b[2], b[3]]) > 0.5
            or share(lambda b, h: None if not h else [b[0], h - b[1], b[2], b[3]]) > 0.5):
        return "; measured from the bottom?"
    return ""


def _examples(ids: List, n: int = 3) -> str:
    return ", ".join(str(i) for i in ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _drop_root_categories(data: Dict, name: str, notes: List[str]) -> Dict:
    """Leave out a category that is only the other categories' supercategory and owns no
    annotation (Roboflow's root category, id 0): it is no class the model could learn."""
    cats = data["categories"]
    used = {a.get("category_id") for a in data.get("annotations", []) if isinstance(a, dict)}
    supers = {}
    for c in cats:
        s = c.get("supercategory")
        if isinstance(s, str):
            supers.setdefault(s, set()).add(c["id"])
    keep = []
    for c in cats:
        nm = c.get("name")
        children = supers.get(nm, set()) - {c["id"]} if isinstance(nm, str) else set()
        if children and c["id"] not in used and len(cats) > 1:
            notes.append(f"{name}: category '{nm}' (id {c['id']}) is only the other categories' supercategory "
                         "and has no annotations; left out")
            continue
        keep.append(c)
    return data if len(keep) == len(cats) else {**data, "categories": keep}


def _renumber_ids(anns: List, name: str, notes: List[str]) -> List:
    """Annotation ids used twice (pycocotools keeps one annotation per id: the others would be
    lost to the metrics without a word) or missing get new ids above the largest."""
    ids = [a.get("id") for a in anns if isinstance(a, dict)]
    seen, dup, missing = set(), 0, 0
    top = max((i for i in ids if _is_int(i)), default=0)
    out = []
    for a in anns:
        if not isinstance(a, dict):
            out.append(a)
            continue
        i = a.get("id")
        if not (_is_int(i) or isinstance(i, str)) or i in seen:
            dup += i is not None
            missing += i is None
            top += 1
            a = dict(a, id=top)
        seen.add(a["id"])
        out.append(a)
    if dup:
        notes.append(f"{name}: {dup} annotation ids were used more than once; renumbered" if dup > 1 else
                     f"{name}: 1 annotation id was used more than once; renumbered")
    if missing:
        notes.append(f"{name}: {missing} annotation(s) have no id; numbered")
    return out


def _fix_boxes_and_areas(data: Dict, anns: List, name: str, notes: List[str]) -> List:
    """Each annotation's box is checked against its mask's extent: a box that disagrees
    (IoU < 0.5), or none ([0, 0, 0, 0], missing, malformed), is taken from the mask (pycocotools
    ``toBbox``); a box that agrees stays exactly as written. A missing ``area`` is the mask's
    (pycocotools ``area``), which COCOeval needs."""
    sizes = {img.get("id"): (img.get("height"), img.get("width")) for img in data["images"] if isinstance(img, dict)}
    out, bad, no_box, no_area, checked = [], [], [], 0, 0
    for a in anns:
        if not isinstance(a, dict) or "segmentation" not in a:
            out.append(a)
            continue
        h, w = sizes.get(a.get("image_id"), (None, None)) if not isinstance(a.get("image_id"), (list, dict)) else (None, None)
        h = h if _is_int(h) and h > 0 else None
        w = w if _is_int(w) and w > 0 else None
        seg, bbox = a["segmentation"], a.get("bbox")
        fixed = None
        rle = None
        if _usable_box(bbox):
            ext = _vertex_extent(seg, h, w)
            if ext is None or not boxes_agree(bbox, ext):
                rle = _seg_rle(seg, h, w)
                if rle is not None and float(mask_utils.area(rle)) > 0:
                    checked += 1
                    ext = mask_utils.toBbox(rle).tolist()
                    if not boxes_agree(bbox, ext):
                        bad.append((bbox, ext, h, a.get("id")))
                        fixed = ext
            else:
                checked += 1
        else:  # missing, [0, 0, 0, 0], zero-size or malformed: the mask says where the object is
            rle = _seg_rle(seg, h, w)
            if rle is not None and float(mask_utils.area(rle)) > 0:
                fixed = mask_utils.toBbox(rle).tolist()
                no_box.append(a.get("id"))
        if "area" not in a or not _is_number(a.get("area")):
            rle = rle if rle is not None else _seg_rle(seg, h, w)
            if rle is not None:
                a = dict(a, area=float(mask_utils.area(rle)))
                no_area += 1
        if fixed is not None:
            a = dict(a, bbox=[float(v) for v in fixed])
        out.append(a)
    if bad:
        guess = _guess_box_layout([(b, e, h) for b, e, h, _ in bad])
        notes.append(f"{name}: {len(bad)} of {checked} boxes disagree with their masks (IoU < {BOX_IOU:g}){guess or ';'} "
                     f"boxes taken from the masks (annotations {_examples([i for *_, i in bad])})")
    if no_box:
        notes.append(f"{name}: {len(no_box)} annotation(s) have no usable box (missing, [0, 0, 0, 0] or malformed); "
                     f"boxes taken from their masks (annotations {_examples(no_box)})")
    if no_area:
        notes.append(f"{name}: {no_area} annotation(s) have no 'area'; computed from their masks")
    return out


def normalise_coco(data: Dict, name: str, notes: List[str]) -> Dict:
    """``data`` with the quirks of real exports corrected, each with a line in ``notes``: a root
    category that is only a supercategory left out, annotation ids made unique, boxes that
    disagree with their masks (or are missing) taken from the masks, missing areas computed.
    Untouched annotations are the same objects."""
    data = _drop_root_categories(data, name, notes)
    anns = data.get("annotations", [])
    if not anns:
        return data
    anns = _renumber_ids(anns, name, notes)
    anns = _fix_boxes_and_areas(data, anns, name, notes)
    return {**data, "annotations": anns}
