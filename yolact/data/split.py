"""COCO file surgery: a seeded, class-stratified train/val split, and merging several files
with classes unified by name."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import YolactError
from .coco import read_coco_json


def split_coco(ann, out_dir, val_fraction: float = 0.2, seed: int = 0) -> Tuple[Path, Path]:
    """Write train.json and val.json. Images are grouped by their rarest class (images without
    instances form a group of their own) and each group is split by ``val_fraction``, so every
    class is represented in both parts in proportion."""
    if not 0 < val_fraction < 1:
        raise YolactError(f"--val {val_fraction}: must lie in (0, 1)")
    data = read_coco_json(ann)
    val_ids = stratified_val_ids(data, val_fraction, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, keep in (("train", lambda i: i not in val_ids), ("val", lambda i: i in val_ids)):
        imgs = [im for im in data["images"] if keep(im["id"])]
        ids = {im["id"] for im in imgs}
        part = {**{k: v for k, v in data.items() if k not in ("images", "annotations")},
                "images": imgs, "annotations": [a for a in data.get("annotations", []) if a["image_id"] in ids]}
        p = out / f"{name}.json"
        p.write_text(json.dumps(part))
        paths.append(p)
    return paths[0], paths[1]


def stratified_val_ids(data: Dict, val_fraction: float, seed: int = 0) -> set:
    """The ids of the images that go to val: images grouped by their rarest class (images
    without instances form a group of their own), ``val_fraction`` of each group, seeded; at
    least one image in all (when there are two or more)."""
    anns_by_image: Dict[int, List[Dict]] = {}
    for a in data.get("annotations", []):
        anns_by_image.setdefault(a["image_id"], []).append(a)
    freq = Counter(a["category_id"] for a in data.get("annotations", []))
    groups: Dict[object, List[Dict]] = {}
    for img in data["images"]:
        cats = {a["category_id"] for a in anns_by_image.get(img["id"], [])}
        key = min(cats, key=lambda c: (freq[c], c)) if cats else None
        groups.setdefault(key, []).append(img)
    rs = np.random.RandomState(seed)
    val_ids = set()
    for key in sorted(groups, key=str):
        imgs = groups[key]
        order = rs.permutation(len(imgs))
        n_val = int(round(val_fraction * len(imgs)))
        val_ids.update(imgs[i]["id"] for i in order[:n_val])
    # Groups too small to give one image each would leave val empty: top up from the rest.
    target = max(1, int(round(val_fraction * len(data["images"])))) if len(data["images"]) >= 2 else 0
    rest = [im["id"] for im in data["images"] if im["id"] not in val_ids]
    for i in rs.permutation(len(rest))[:max(0, target - len(val_ids))]:
        val_ids.add(rest[i])
    return val_ids


def merge_coco(inputs: Sequence[str], out_json, image_dirs: Optional[Sequence[str]] = None) -> Path:
    """Merge COCO files: classes unified by name (in order of first appearance), image and
    annotation ids renumbered. With ``image_dirs`` (one per input) file names become absolute
    paths, so images from different folders can share a name."""
    if image_dirs and len(image_dirs) != len(inputs):
        raise YolactError(f"--images: {len(image_dirs)} folders for {len(inputs)} files (one each, in order)")
    cats: Dict[str, int] = {}
    images, annotations = [], []
    seen_names = {}
    for k, path in enumerate(inputs):
        data = read_coco_json(path)
        remap = {}
        for c in data["categories"]:
            name = str(c.get("name", c["id"]))
            remap[c["id"]] = cats.setdefault(name, len(cats) + 1)
        img_remap = {}
        for img in data["images"]:
            new = dict(img, id=len(images) + 1)
            if image_dirs:
                new["file_name"] = str((Path(image_dirs[k]) / img["file_name"]).resolve())
            elif new["file_name"] in seen_names and seen_names[new["file_name"]] != k:
                raise YolactError(f"{path}: image '{new['file_name']}' also in {inputs[seen_names[new['file_name']]]}; "
                                  "give --images for each file")
            seen_names[new["file_name"]] = k
            img_remap[img["id"]] = new["id"]
            images.append(new)
        for a in data.get("annotations", []):
            if a.get("image_id") not in img_remap or a.get("category_id") not in remap:
                raise YolactError(f"{path}: annotation {a.get('id')} names an unknown image or category")
            annotations.append(dict(a, id=len(annotations) + 1, image_id=img_remap[a["image_id"]],
                                    category_id=remap[a["category_id"]]))
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": i, "name": n} for n, i in cats.items()]}))
    return out
