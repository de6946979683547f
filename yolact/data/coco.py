"""COCO-format instance datasets (also the target of the YOLO-format reader).

Polygons (multi-part), compressed and uncompressed RLE, ``iscrowd``, images without
annotations, and arbitrary category ids (mapped to contiguous labels in the file's category
order) are supported. Problems are checked at load time: a bad annotation is skipped and
counted (with file, annotation id and reason), a broken file stops with a one-line error.

- Each image's ``width``/``height`` is checked against the file's header (upright size, EXIF
  orientation applied): a mismatch is skipped and counted (``size_mismatch="skip"``, the
  default) or stops the run (``"error"``). Images without a size in the JSON take the file's.
- A polygon vertex far outside the image is clipped away before rasterising (see
  :mod:`yolact.data.geometry`), with a note naming the annotation.
- A flat ``segmentation: [x1, y1, ...]`` is not a COCO polygon (pycocotools cannot read it:
  polygons are ``[[x1, y1, ...], ...]``); it is skipped with that reason.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..config import YolactConfig
from ..errors import YolactError, warn
from ..model.transform import YolactTransform
from .augment import Sample, eval_transform, train_transform
from .geometry import _is_int, _is_number, _polygon_parts, bounded_parts, far_vertices  # noqa: F401 - also read from here
from .images import image_size, read_image

SIZE_MISMATCH = ("skip", "error")


def read_coco_json(path, notes: Optional[List[str]] = None) -> Dict:
    """The parsed file, with its categories checked (they define the model's classes) and the
    quirks of real exports corrected (see :func:`normalise_coco`): each correction is one line,
    appended to ``notes`` when given, else printed as ``note: <file>: <what>`` (once a process)."""
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such annotation file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise YolactError(f"{p}: not valid JSON ({str(e)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise YolactError(f"{p}: not a COCO instances file (needs 'images' and 'categories' lists)")
    if not isinstance(data.get("annotations", []), list):
        raise YolactError(f"{p}: 'annotations' must be a list")
    if not data["categories"]:
        raise YolactError(f"{p}: no categories")
    seen = set()
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise YolactError(f"{p}: category {i}: needs an integer 'id'")
        if c["id"] in seen:
            raise YolactError(f"{p}: category id {c['id']} appears twice")
        seen.add(c["id"])
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    lines: List[str] = []
    from .quirks import normalise_coco, note

    data = normalise_coco(data, str(info.get("yolact_source") or p), lines)
    if notes is not None:
        notes.extend(lines)
    else:
        for line in lines:
            note(line)
    return data


def _polygon_problem(seg: list) -> Optional[str]:
    """Why a polygon segmentation has no usable part (None when it has one)."""
    if _polygon_parts(seg):
        return None
    if seg and all(_is_number(v) for v in seg):
        return ("flat list segmentation [x1, y1, ...], not a list of polygons [[x1, y1, ...]] "
                "(pycocotools cannot read it)")
    if not seg:
        return "empty segmentation list"
    for part in seg:
        if not isinstance(part, list):
            return f"polygon part is {type(part).__name__}, not a list of numbers"
        if not all(_is_number(v) for v in part):
            return "polygon has a coordinate that is not a finite number"
        if len(part) % 2:
            return f"polygon has an odd number of coordinates ({len(part)})"
    return "degenerate polygon (fewer than 3 points)"


def far_vertex(seg, h: int, w: int) -> Optional[Tuple[float, float]]:
    """The first vertex of a polygon segmentation lying far outside the image, else None."""
    if not isinstance(seg, list):
        return None
    for part in _polygon_parts(seg):
        xy = np.asarray(part, np.float64).reshape(-1, 2)
        far = far_vertices(xy, h, w)
        if far.any():
            return tuple(float(v) for v in xy[int(np.argmax(far))])
    return None


def ann_to_mask(ann: Dict, h: int, w: int) -> np.ndarray:
    """The annotation's mask as uint8 {0, 1} [h, w] (what pycocotools gives; a polygon reaching
    far outside the image is clipped to it first)."""
    seg = ann["segmentation"]
    if isinstance(seg, list):  # polygons, possibly several parts
        parts = bounded_parts(seg, h, w)
        if not parts:
            return np.zeros((h, w), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
    elif isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    return mask_utils.decode(rle)


def _check_image(img) -> Optional[str]:
    if not isinstance(img, dict):
        return "not an object"
    if not (_is_int(img.get("id")) or isinstance(img.get("id"), str)):
        return f"needs an integer 'id', found {img.get('id')!r}"
    if not isinstance(img.get("file_name"), str) or not img["file_name"]:
        return f"needs a 'file_name', found {img.get('file_name')!r}"
    for k in ("height", "width"):
        if k in img and not (_is_int(img[k]) and img[k] > 0):
            return f"{k} must be a positive integer, found {img[k]!r}"
    return None


def _check_annotation(ann: Dict, img: Dict, cat_index: Dict[int, int]) -> Optional[str]:
    cat = ann.get("category_id")
    if not _is_int(cat) or cat not in cat_index:
        return f"unknown category {cat!r}"
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        return f"bbox must be 4 numbers [x, y, w, h], found {bbox!r}"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return f"zero-size box {bbox}"
    w, h = img.get("width", math.inf), img.get("height", math.inf)
    if not (bbox[0] < w and bbox[1] < h and bbox[0] + bbox[2] > 0 and bbox[1] + bbox[3] > 0) or max(map(abs, bbox)) > 1e6:
        return f"box {bbox} lies outside the image"
    if ann.get("iscrowd", 0) not in (0, 1):
        return f"iscrowd must be 0 or 1, found {ann.get('iscrowd')!r}"
    seg = ann.get("segmentation")
    if seg is None:
        return "no segmentation"
    if isinstance(seg, list):
        return _polygon_problem(seg)
    if not isinstance(seg, dict) or "counts" not in seg:
        return "unrecognised segmentation"
    size = seg.get("size")
    if not isinstance(size, list) or len(size) != 2 or not all(_is_int(v) and v > 0 for v in size):
        return f"RLE size must be [height, width], found {size!r}"
    counts = seg["counts"]
    if not (isinstance(counts, str) or (isinstance(counts, list) and all(_is_int(v) and v >= 0 for v in counts))):
        return "RLE counts must be a string or a list of non-negative integers"
    if isinstance(counts, list) and sum(counts) != size[0] * size[1]:
        return f"RLE counts cover {sum(counts)} pixels, not {size[0]}x{size[1]}"
    if "height" in img and "width" in img and size != [img["height"], img["width"]]:
        return f"RLE size {size} differs from image size {[img['height'], img['width']]}"
    return None


class _FileCheck(NamedTuple):
    """What checking the image files found: missing paths, dropped image ids, size mismatches."""
    missing: List[str]
    dropped: Set
    mismatched: int


class CocoDataset(torch.utils.data.Dataset):
    """Yields (image [3, S, S] normalised RGB float tensor, target dict) for training/eval.

    ``size_mismatch``: what to do with an image whose JSON ``width``/``height`` differ from the
    file's (upright) size: ``"skip"`` it and count it among :attr:`problems` (default), or
    ``"error"``: stop with a :class:`YolactError` naming the image and both sizes.
    :attr:`problems` lists what was skipped, :attr:`notes` what was kept but changed (polygons
    clipped to the image), each as ``"<file>: <what>: <why>"``.
    """

    def __init__(self, ann_file, image_dir, cfg: Optional[YolactConfig] = None, train: bool = True,
                 seed: int = 0, data: Optional[Dict] = None, verbose: bool = True, size_mismatch: str = "skip",
                 skip_empty: bool = False):
        if size_mismatch not in SIZE_MISMATCH:
            raise YolactError(f"size_mismatch={size_mismatch!r}: expected one of {', '.join(SIZE_MISMATCH)}")
        self.ann_file = str(ann_file)
        self.image_dir = Path(image_dir)
        # What reading corrected (see normalise_coco): a data dict given was read by the caller,
        # which has said it.
        self.read_notes: List[str] = []
        data = data if data is not None else read_coco_json(ann_file, self.read_notes)
        # Messages name the user's data: a file converted from LabelMe, YOLO or mask PNGs names
        # its source (the COCO file itself is an intermediate the user never wrote).
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        self.name = str(info.get("yolact_source") or self.ann_file)
        cats = data["categories"]
        self.category_ids: List[int] = [int(c["id"]) for c in cats]
        self.class_names: Tuple[str, ...] = tuple(str(c.get("name", c["id"])) for c in cats)
        self.cat_index = {cid: i for i, cid in enumerate(self.category_ids)}
        self.cfg, self.train, self.seed, self.epoch = cfg, train, seed, 0
        # A training recipe's augmentation (e.g. yolact.data.mosaic.ModernAugment: a callable
        # (dataset, index) -> Sample at input size, boxes relative); None: the original's.
        self.augment = None
        self.problems: List[str] = []
        self.notes: List[str] = []
        images = self._read_image_entries(data["images"])
        files = self._check_image_files(images, size_mismatch)
        by_image, annotated = self._collect_annotations(data.get("annotations", []), images, files.dropped)
        self.items: List[Tuple[Dict, List[Dict]]] = []
        self.skipped_background = 0  # images without objects left out (skip_empty)
        crowd_only, no_objects = self._choose_items(images, by_image, files.dropped, annotated, skip_empty)
        if not self.items:
            raise YolactError(self._no_usable_images(len(images), files, crowd_only, no_objects))
        have = {a["category_id"] for _, anns in self.items for a in anns if not a.get("iscrowd", 0)}
        #: the classes no kept image holds an instance of (the model would learn never to say them)
        self.empty_classes: List[str] = [n for cid, n in zip(self.category_ids, self.class_names) if cid not in have]
        if verbose:
            self.report()

    def _read_image_entries(self, entries: List) -> Dict:
        """The valid image entries by id, in file order; a malformed or repeated one is a problem."""
        images = {}
        for i, img in enumerate(entries):
            why = _check_image(img)
            if why is None and img["id"] in images:
                why = f"id {img['id']} appears twice"
            if why:
                self.problems.append(f"{self.name}: image {i}: {why}")
                continue
            images[img["id"]] = img
        return images

    def _check_image_files(self, images: Dict, size_mismatch: str) -> _FileCheck:
        """Each image file: present, readable, and of the size the JSON says (header only). A
        failing image is dropped with a problem (a size mismatch raises with ``"error"``); an
        entry without a size takes the file's (``images`` is updated in place, order kept)."""
        missing: List[str] = []
        dropped = set()
        mismatched = 0
        for img_id, img in list(images.items()):
            path = self.image_dir / img["file_name"]
            where = self._image_where(img)
            if not path.exists():
                missing.append(str(path))
                self.problems.append(f"{where}: missing file {path}")
                dropped.add(img_id)
                continue
            size = image_size(path)
            if size is None:
                self.problems.append(f"{where}: {path} is not a readable image")
                dropped.add(img_id)
                continue
            w, h = size
            if "width" in img and "height" in img and (img["width"], img["height"]) != (w, h):
                swapped = ", width and height swapped" if (img["width"], img["height"]) == (h, w) else ""
                why = (f"{where}: the JSON says {img['width']}x{img['height']} but the file is {w}x{h} "
                       f"({path}, upright, EXIF orientation applied{swapped})")
                if size_mismatch == "error":
                    raise YolactError(why)
                self.problems.append(f"{why}; image skipped")
                mismatched += 1
                dropped.add(img_id)
                continue
            if "width" not in img or "height" not in img:
                images[img_id] = dict(img, width=w, height=h)
        return _FileCheck(missing, dropped, mismatched)

    def _collect_annotations(self, anns: List, images: Dict, dropped: Set) -> Tuple[Dict, Set]:
        """The valid annotations of each image (every image id a key, in image order), and the ids
        of the images with any annotation in the file, valid or not. A bad annotation is a
        problem; a polygon clipped to the image a note."""
        by_image: Dict[int, List[Dict]] = {img_id: [] for img_id in images}
        annotated = set()
        for ann in anns:
            if isinstance(ann, dict) and isinstance(ann.get("image_id"), (int, str)):
                annotated.add(ann["image_id"])
            if not isinstance(ann, dict) or not (_is_int(ann.get("image_id")) or isinstance(ann.get("image_id"), str)):
                self.problems.append(f"{self.name}: annotation {str(ann)[:40]}: needs an 'image_id'")
                continue
            img = images.get(ann.get("image_id"))
            if img is None:
                self.problems.append(f"{self._ann_where(ann)}: unknown image id {ann.get('image_id')}")
                continue
            if img["id"] in dropped:
                continue  # the image is counted once, by _check_image_files
            why = _check_annotation(ann, img, self.cat_index)
            if why:
                self.problems.append(f"{self._ann_where(ann)}: {why}")
                continue
            far = far_vertex(ann["segmentation"], img["height"], img["width"])
            if far is not None:
                self.notes.append(f"{self._ann_where(ann)}: vertex ({far[0]:g}, {far[1]:g}) lies far outside the "
                                  f"{img['width']}x{img['height']} image; the polygon is clipped to the image")
            by_image[img["id"]].append(ann)
        return by_image, annotated

    def _choose_items(self, images: Dict, by_image: Dict, dropped: Set, annotated: Set,
                      skip_empty: bool) -> Tuple[int, int]:
        """Fill :attr:`items` with the images kept, in image order; returns (crowd-only images,
        images left out for having no objects). Evaluation keeps every image not dropped."""
        crowd_only = no_objects = 0
        for img_id, img in images.items():
            if img_id in dropped:
                continue
            if self.train and not any(not a.get("iscrowd", 0) for a in by_image[img_id]):
                # An image without annotations is a background image: trained on by default
                # (all priors negative), left out with skip_empty (the original's choice).
                # Annotated images with nothing usable (only crowds, or every annotation
                # rejected) are left out: training them as background would teach that
                # their objects are not objects.
                if by_image[img_id] and not any(not a.get("iscrowd", 0) for a in by_image[img_id]):
                    crowd_only += 1
                    self.problems.append(f"{self._image_where(img)}: only crowd regions (iscrowd=1), which "
                                         "training ignores; image skipped")
                    continue
                if img_id in annotated or skip_empty:
                    no_objects += 1
                    self.skipped_background += img_id not in annotated
                    if img_id in annotated:
                        self.problems.append(f"{self._image_where(img)}: all its annotations were skipped (see "
                                             "above); image skipped, not trained as a background image")
                    continue
            self.items.append((img, by_image[img_id]))
        return crowd_only, no_objects

    def _no_usable_images(self, n_images: int, files: _FileCheck, crowd_only: int, no_objects: int) -> str:
        """The one-line error for a dataset left without items, with the reasons counted."""
        why = []
        if files.missing:
            why.append(f"{len(files.missing)} image file(s) missing, e.g. " + ", ".join(files.missing[:3])
                       + (f" (and {len(files.missing) - 3} more)" if len(files.missing) > 3 else ""))
        if files.mismatched:
            why.append(f"{files.mismatched} image(s) differ in size from their JSON width/height")
        if crowd_only:
            why.append(f"{crowd_only} image(s) hold only crowd regions (iscrowd=1)")
        if no_objects:
            why.append(f"{no_objects} image(s) have no objects")
        if self.problems and not why:
            why.append(f"{len(self.problems)} problem(s), e.g. {self.problems[0]}")
        return (f"{self.name}: no usable images (of {n_images}) in {self.image_dir}"
                + (": " + "; ".join(why) if why else ""))

    def _image_where(self, img: Dict) -> str:
        """The user's file and the image, for messages (a converted file names its source)."""
        return img.get("source") or f"{self.ann_file}: image {img['id']} ({img['file_name']})"

    def _ann_where(self, ann: Dict) -> str:
        return ann.get("source") or f"{self.ann_file}: annotation {ann.get('id')}"

    def report(self, limit: int = 5) -> None:
        """What reading corrected (``note:`` lines), what was skipped and what was clipped, and
        for a training set the classes without an instance (``warning:`` lines), on stderr."""
        from .quirks import note

        for line in self.read_notes:
            note(line)
        if self.train and self.empty_classes:
            warn(f"{self.name}: {len(self.empty_classes)} of {len(self.class_names)} classes have no instances: "
                 f"{', '.join(self.empty_classes)} (the model still gets a class for each)")
        for kind, lines in (("skipped", self.problems), ("clipped", self.notes)):
            if not lines:
                continue
            warn(f"{self.name}: {kind} {len(lines)}" + (" (yolact data check lists them all)" if len(lines) > limit else ""))
            for line in lines[:limit]:
                warn(line)
            if len(lines) > limit:
                warn(f"{self.name}: ... and {len(lines) - limit} more {kind}")

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation randomness is a function of (seed, epoch, index): exact on resume."""
        self.epoch = epoch

    def image_info(self, i: int) -> Dict:
        """The COCO image entry of item ``i``: ``id``, ``file_name``, ``width``/``height`` in
        pixels of the upright image (from the file when the JSON has none)."""
        return self.items[i][0]

    def has_objects(self, i: int) -> bool:
        """False for a background image (no object to learn, only what is not an object)."""
        return any(not a.get("iscrowd", 0) for a in self.items[i][1])

    def load_sample(self, i: int) -> Tuple[np.ndarray, Sample]:
        """Item ``i`` as read, before any transform (the original's ``COCODetection.pull_item``):
        (image upright BGR uint8 [H, W, 3], :class:`Sample` of it with masks uint8 {0, 1} [N, H, W],
        boxes float64 [N, 4] absolute (x1, y1, x2, y2) pixels, labels int64 [N] 0-based, crowd
        regions last). Raises :class:`YolactError` for an unreadable image or RLE mask, or a mask
        whose size differs from the image's."""
        img_info, anns = self.items[i]
        img = read_image(self.image_dir / img_info["file_name"])
        h, w = img.shape[:2]
        # non-crowd first, crowds last (the loss expects crowds at the end)
        anns = sorted(anns, key=lambda a: int(a.get("iscrowd", 0)))
        masks = []
        for a in anns:
            try:
                m = ann_to_mask(a, h, w)
            except ValueError as e:  # pycocotools: a compressed RLE string it cannot read
                raise YolactError(f"{self._ann_where(a)}: unreadable RLE mask ({e})") from None
            if m.shape != (h, w):
                raise YolactError(f"{self._ann_where(a)}: its mask is {m.shape[1]}x{m.shape[0]} "
                                  f"but image {img_info['file_name']} is {w}x{h}")
            masks.append(m)
        # Through relative coordinates and back, as the original, so that the crop's strict
        # centre tests break ties the same way.
        scale = np.array([w, h, w, h], np.float64)
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], np.float64).reshape(-1, 4) / scale * scale
        labels = [self.cat_index[a["category_id"]] for a in anns]
        n_crowd = sum(int(a.get("iscrowd", 0)) for a in anns)
        sample = Sample(img, np.stack(masks) if masks else np.zeros((0, h, w), np.uint8),
                        boxes, np.array(labels, np.int64), n_crowd)
        return img, sample

    def __getitem__(self, i: int):
        assert self.cfg is not None, "dataset needs a config to produce training tensors"
        if not self.train:
            return to_tensors(eval_transform(self.load_sample(i)[1], self.cfg), self.cfg)
        if self.augment is not None:
            return to_tensors(self.augment(self, i), self.cfg)
        # Augmentation draws from a RandomState seeded by (seed, epoch, index): the original's
        # draws in the original's order, and exact on resume.
        rs = np.random.RandomState([self.seed, self.epoch, i])
        while True:
            s = train_transform(self.load_sample(i)[1], self.cfg, rs)
            if s.boxes.shape[0] > s.num_crowds or not self.has_objects(i):  # a background image stays one
                return to_tensors(s, self.cfg)
            # Nothing left to learn from (every object was dropped as degenerate): like the
            # original, train on another image instead.
            i = int(rs.randint(0, len(self)))


def to_tensors(s: Sample, cfg: YolactConfig):
    """A transformed sample -> (network input [3, S, S] float32, normalised by the model's
    YolactTransform; target dict: boxes [n, 4] relative, labels [n] int64, masks [n, S, S]
    float32, num_crowds)."""
    img = torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1))).float()[None]
    image = YolactTransform(cfg.max_size, cfg.normalize).normalize(img)[0]
    target = {"boxes": torch.from_numpy(s.boxes).float(), "labels": torch.from_numpy(s.labels).long(),
              "masks": torch.from_numpy(s.masks).float(), "num_crowds": int(s.num_crowds)}
    return image, target


def collate(batch):
    """DataLoader collate: [(image [3, S, S] float32, target dict), ...] -> (images [B, 3, S, S],
    list of the B target dicts). Targets stay a list since images hold different numbers of
    objects (as the original's ``detection_collate``, which also keeps the images a list)."""
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch]

