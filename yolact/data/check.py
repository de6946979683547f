"""``yolact data check``: what a dataset holds, what was skipped and why, and pictures of it
(as read, and optionally as the trainer will see it after augmentation)."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..config import get_config
from .coco import CocoDataset, ann_to_mask
from .sources import convert_to_coco

# COCO's size ranges (area in pixels).
SMALL, MEDIUM = 32 ** 2, 96 ** 2


@dataclass
class CheckReport:
    """What ``yolact data check`` found in ``source`` (read as ``format``): usable images, non-crowd
    instances and crowd regions, instances per class (in class order), COCO size ranges by
    area in pixels (small < 32², medium < 96², large), images with no instance, groups of
    byte-identical image files, what was skipped (``problems``) and clipped (``notes``), each as
    ``"<file>: <what>: <why>"``, and the pictures written."""
    source: str
    format: str
    images: int = 0
    instances: int = 0
    crowds: int = 0
    per_class: Dict[str, int] = field(default_factory=dict)
    sizes: Dict[str, int] = field(default_factory=dict)
    empty_images: List[str] = field(default_factory=list)
    duplicates: List[List[str]] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    pictures: List[str] = field(default_factory=list)
    #: what reading the file corrected (boxes taken from masks, a root category left out, ...)
    corrections: List[str] = field(default_factory=list)
    #: classes without any instance
    empty_classes: List[str] = field(default_factory=list)
    #: groups of annotations with the same image, category and segmentation, as "<where>" strings
    duplicate_annotations: List[List[str]] = field(default_factory=list)
    #: objects whose mask has no pixel left at the model's input size (with --augmented)
    thin_objects: List[str] = field(default_factory=list)
    input_size: int = 0

    def lines(self, limit: int = 10) -> List[str]:
        """The report as terminal lines; ``limit``: how many problems, notes and duplicate groups
        are shown in full (skipped ones are also grouped by reason with counts)."""
        out = [f"{self.source} ({self.format}): {self.images} images, {self.instances} instances"
               + (f" (+{self.crowds} crowd regions)" if self.crowds else "")]
        out += [f"note: {c}" for c in self.corrections]
        out += skipped_lines(self.problems, limit)
        if self.notes:
            out.append(f"kept but clipped to the image: {len(self.notes)}")
            out += [f"    e.g. {p}" for p in self.notes[:limit]]
        out.append("instances per class:")
        width = max((len(c) for c in self.per_class), default=0)
        for c, n in self.per_class.items():
            out.append(f"  {c:<{width}}  {n}")
        out.append("sizes (COCO): " + ", ".join(f"{k} {v}" for k, v in self.sizes.items()))
        if self.empty_classes:
            out.append(f"warning: {self.source}: {len(self.empty_classes)} of {len(self.per_class)} classes have no "
                       f"instances: {', '.join(self.empty_classes)}")
        if self.duplicate_annotations:
            out.append(f"warning: {self.source}: {len(self.duplicate_annotations)} annotation(s) repeat another exactly "
                       "(same image, category and segmentation), e.g. "
                       + "; ".join(" = ".join(g) for g in self.duplicate_annotations[:3]))
        if self.thin_objects:
            out.append(f"warning: {self.source}: {len(self.thin_objects)} objects lose every mask pixel at "
                       f"{self.input_size} px: " + " ".join(self.thin_objects[:limit])
                       + (f" (and {len(self.thin_objects) - limit} more)" if len(self.thin_objects) > limit else "")
                       + "; `--mask-resize area` keeps any coverage")
        out.append(f"images with no instances: {len(self.empty_images)}"
                   + (f" (e.g. {', '.join(self.empty_images[:3])})" if self.empty_images else ""))
        out.append(f"duplicate image files: {len(self.duplicates)}"
                   + "".join(f"\n  {' = '.join(d)}" for d in self.duplicates[:limit]))
        for p in self.pictures:
            out.append(f"wrote {p}")
        return out


def _reason(problem: str) -> str:
    """The reason part of '<file>: <what>: <reason> (details); <consequence>' (sizes WxH left
    out, so that like reasons group together)."""
    import re

    why = re.sub(r"\s*\([^()]*\)", "", problem).split("; ")[0].rsplit(": ", 1)[-1]
    return re.sub(r"\b\d+x\d+\b", "WxH", why)


def skipped_lines(problems: Sequence[str], limit: int = 10) -> List[str]:
    """'skipped: N', one line per reason with its count, and the first few in full."""
    out = [f"skipped: {len(problems)}"]
    for why, n in Counter(_reason(p) for p in problems).most_common():
        out.append(f"  {n} x {why}")
    for p in problems[:limit]:
        out.append(f"    e.g. {p}")
    return out


def conversion_summary(data: Dict, problems: Sequence[str], limit: int = 5) -> List[str]:
    """What a converted COCO dict holds: images (and how many without objects), instances per
    class, crowd regions, and what was skipped with the reasons."""
    names = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
    anns = data.get("annotations", [])
    per_class = Counter(names.get(a.get("category_id")) for a in anns if not a.get("iscrowd", 0))
    crowds = sum(1 for a in anns if a.get("iscrowd", 0))
    with_objects = {a.get("image_id") for a in anns}
    empty = sum(1 for img in data["images"] if img.get("id") not in with_objects)
    out = [f"images: {len(data['images'])}" + (f" ({empty} without objects: background images)" if empty else ""),
           f"instances: {sum(per_class.values())}" + (f" (+{crowds} crowd regions)" if crowds else "")]
    width = max((len(n) for n in names.values()), default=0)
    out += [f"  {n:<{width}}  {per_class.get(n, 0)}" for n in names.values()]
    return out + skipped_lines(problems, limit)


def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def check_dataset(src, out_dir, fmt: str = "auto", images: Optional[str] = None,
                  classes: Optional[Sequence[str]] = None, augmented: bool = False, samples: int = 12,
                  config: str = "yolact_resnet18", seed: int = 0, hole_label: str = "hole",
                  mask_resize: str = "bilinear", split: str = "train") -> CheckReport:
    """Read ``src`` (``fmt`` "auto": see :func:`~yolact.data.sources.detect_format`) through the
    COCO reader (``train=False``: images without objects kept) and write into ``out_dir``:
    coco.json (a converted source), overview.png (``samples`` images drawn with ``seed``),
    histograms.png and, with ``augmented``, overview_augmented.png (the same images after
    ``config``'s training augmentation). ``split``: 'train' or 'val' of a source that has both
    (:func:`~yolact.data.sources.has_val_split`). Returns a :class:`CheckReport`. Raises
    :class:`YolactError` for a source that cannot be read or has no usable image."""
    from .sources import detect_format, split_source

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fmt = detect_format(src) if fmt == "auto" else fmt
    read, which = split_source(src, fmt, split)
    split = convert_to_coco(read, out / "coco.json", fmt, which, classes=classes, images=images, hole_label=hole_label)
    ds = CocoDataset(split.ann, split.images, train=False, verbose=False)
    rep = CheckReport(str(src), fmt, problems=list(split.problems) + list(ds.problems), notes=list(ds.notes),
                      corrections=list(ds.read_notes), empty_classes=list(ds.empty_classes))
    rep.images = len(ds)
    counts = Counter()
    sizes = Counter({"small": 0, "medium": 0, "large": 0})
    hashes: Dict[str, List[str]] = {}
    for img, anns in ds.items:
        path = Path(split.images) / img["file_name"]
        hashes.setdefault(_file_hash(path), []).append(str(path))
        real = [a for a in anns if not a.get("iscrowd", 0)]
        rep.crowds += len(anns) - len(real)
        if not real:
            rep.empty_images.append(img["file_name"])
        for a in real:
            counts[ds.class_names[ds.cat_index[a["category_id"]]]] += 1
            area = a.get("area") or float(ann_to_mask(a, img["height"], img["width"]).sum())
            sizes["small" if area < SMALL else "medium" if area < MEDIUM else "large"] += 1
    rep.instances = sum(counts.values())
    rep.per_class = {c: counts.get(c, 0) for c in ds.class_names}
    rep.sizes = dict(sizes)
    rep.duplicates = [v for v in hashes.values() if len(v) > 1]
    rep.duplicate_annotations = duplicate_annotations(ds)
    pick = np.random.RandomState(seed).permutation(len(ds))[:samples]
    rep.pictures.append(str(_overview(ds, pick, out / "overview.png")))
    rep.pictures.append(str(_histograms(rep, out / "histograms.png")))
    if augmented:
        cfg = get_config(config, class_names=ds.class_names)
        rep.input_size = cfg.max_size
        rep.thin_objects = thin_objects(ds, cfg.max_size, cfg.min_box_size, mask_resize)
        rep.pictures.append(str(_augmented_overview(split, cfg, pick, seed, out / "overview_augmented.png")))
    return rep


def _ann_where(ds: CocoDataset, img: Dict, ann: Dict) -> str:
    return str(ann.get("source") or f"{img.get('source') or img['file_name']}:{ann.get('id')}")


def duplicate_annotations(ds: CocoDataset) -> List[List[str]]:
    """Groups of annotations that repeat one another exactly (same image, category and
    segmentation): each object would count twice in training and in the metrics."""
    import json

    groups: Dict[tuple, List[str]] = {}
    for img, anns in ds.items:
        for a in anns:
            key = (img["id"], a["category_id"], json.dumps(a["segmentation"], sort_keys=True))
            groups.setdefault(key, []).append(_ann_where(ds, img, a))
    return [g for g in groups.values() if len(g) > 1]


def thin_objects(ds: CocoDataset, size: int, min_box_size: float = 0.0, mask_resize: str = "bilinear") -> List[str]:
    """The objects (``file:annotation id``) that keep their box but lose every mask pixel when
    their image is resized to the model's ``size`` (``mask_resize``: the original's bilinear
    resize by default; 'area' keeps any coverage): thin structures such as wires and poles."""
    from .augment import _resize_masks

    out = []
    for i, (img, anns) in enumerate(ds.items):
        _, s = ds.load_sample(i)
        order = sorted(anns, key=lambda a: int(a.get("iscrowd", 0)))  # load_sample's order
        h, w = s.masks.shape[1:] if s.masks.size else (img["height"], img["width"])
        small = _resize_masks(s.masks, size, mask_resize)
        for k, a in enumerate(order):
            if a.get("iscrowd", 0):
                continue
            bw = (s.boxes[k, 2] - s.boxes[k, 0]) * size / w
            bh = (s.boxes[k, 3] - s.boxes[k, 1]) * size / h
            if bw > min_box_size and bh > min_box_size and not small[k].any() and s.masks[k].any():
                out.append(_ann_where(ds, img, a))
    return out


def _tile(cells: List[np.ndarray], cell: int = 256, cols: int = 4) -> np.ndarray:
    rows = max(1, (len(cells) + cols - 1) // cols)
    grid = np.full((rows * (cell + 4) + 4, cols * (cell + 4) + 4, 3), 255, np.uint8)
    for i, c in enumerate(cells):
        h, w = c.shape[:2]
        s = cell / max(h, w)
        c = cv2.resize(c, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        r, k = divmod(i, cols)
        y, x = 4 + r * (cell + 4), 4 + k * (cell + 4)
        grid[y:y + c.shape[0], x:x + c.shape[1]] = c
    return grid


def _draw(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray, labels: np.ndarray, names) -> np.ndarray:
    from ..viz import draw_detections

    return draw_detections(image, boxes, masks, labels, None, names)


def _overview(ds: CocoDataset, pick, path: Path) -> Path:
    cells = []
    for i in pick:
        img, s = ds.load_sample(int(i))
        n = s.boxes.shape[0] - s.num_crowds
        cells.append(_draw(img, s.boxes[:n], s.masks[:n], s.labels[:n], ds.class_names))
    cv2.imwrite(str(path), _tile(cells))
    return path


def _augmented_overview(split, cfg, pick, seed: int, path: Path) -> Path:
    from ..model.transform import YolactTransform

    ds = CocoDataset(split.ann, split.images, cfg=cfg, train=True, seed=seed, verbose=False)
    transform = YolactTransform(cfg.max_size, cfg.normalize)
    cells = []
    for i in pick[: len(ds)]:
        image, t = ds[int(i) % len(ds)]
        img = transform.unnormalize(image[None])[0]  # back to BGR uint8
        size = img.shape[0]
        n = len(t["labels"]) - t["num_crowds"]
        cells.append(_draw(img, t["boxes"][:n].numpy() * size, t["masks"][:n].numpy(),
                           t["labels"][:n].numpy(), ds.class_names))
    cv2.imwrite(str(path), _tile(cells))
    return path


def _histograms(rep: CheckReport, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(rep.per_class)
    axes[0].bar(range(len(names)), [rep.per_class[n] for n in names], color="#2196f3")
    axes[0].set_xticks(range(len(names)))
    axes[0].set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    axes[0].set_title("instances per class")
    axes[1].bar(list(rep.sizes), list(rep.sizes.values()), color="#ff9800")
    axes[1].set_title("instance sizes (COCO: < 32², < 96², larger)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
