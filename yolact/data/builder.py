"""Build a COCO instances file from rasterised instances: what every non-COCO reader shares.

Each instance is stored as compressed RLE, so holes and multi-part objects survive exactly.
Problems (unknown class, empty or degenerate object, missing image, size mismatch) are
collected with the file and the object, the object skipped and counted, as the COCO reader does.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import YolactError


class CocoBuilder:
    """Collects images and instances and writes a COCO instances file. ``classes``: a fixed class
    list (category ids 1..n in its order; other labels are skipped as problems), or None to number
    classes 1, 2, ... in order of first appearance. ``source``: the user's folder or file, kept as
    ``info.yolact_source`` so that later messages name it. :attr:`problems` lists what was skipped,
    each as ``"<where>: <why>"``."""

    def __init__(self, classes: Optional[Sequence[str]] = None, source: Optional[str] = None):
        # With a fixed class list, other labels are skipped (and reported); without one, classes
        # are numbered in order of first appearance.
        self.fixed = classes is not None
        self.categories: Dict[str, int] = {str(c): i + 1 for i, c in enumerate(classes or [])}
        self.images: List[Dict] = []
        self.annotations: List[Dict] = []
        self.problems: List[str] = []
        self.source = source  # the user's folder or file, named in messages about the written COCO file

    def add_image(self, file_name: str, height: int, width: int, source: Optional[str] = None) -> int:
        """``source``: the user's file this image comes from, named in later messages (the
        COCO file written here is an intermediate the user never saw)."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width),
                            **({"source": source} if source else {})})
        return image_id

    def category_id(self, name: str, where: str) -> Optional[int]:
        """The 1-based category id of class ``name``. A new name gets the next id, unless the class
        list is fixed: then ``"<where>: unknown class '<name>'"`` goes to :attr:`problems` and the
        answer is None."""
        if name not in self.categories:
            if self.fixed:
                self.problems.append(f"{where}: unknown class '{name}'")
                return None
            self.categories[name] = len(self.categories) + 1
        return self.categories[name]

    def add_instance(self, image_id: int, mask: np.ndarray, label: str, where: str) -> bool:
        """Add one instance from its binary mask [H, W] (bool or 0/1); False (and a problem) when skipped."""
        cat = self.category_id(label, where)
        if cat is None:
            return False
        if not mask.any():
            self.problems.append(f"{where}: empty mask (degenerate shape)")
            return False
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        bbox = mask_utils.toBbox(rle).tolist()
        rle["counts"] = rle["counts"].decode("ascii")
        self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id, "category_id": cat,
                                 "segmentation": rle, "bbox": bbox, "area": float(mask_utils.area(rle)),
                                 "iscrowd": 0, "source": where})
        return True

    def skip_if_all_dropped(self, image_id: int, since: int, where: str) -> bool:
        """Take back image ``image_id`` (the last one added) when every object of it was skipped
        (problems were added after index ``since`` and no instance kept): trained as a background
        image it would teach that its objects are not objects. Only an image annotated with
        nothing is a background image. True (and one problem line) when taken back."""
        if len(self.problems) == since or (self.annotations and self.annotations[-1]["image_id"] == image_id):
            return False
        if self.images and self.images[-1]["id"] == image_id:
            self.images.pop()
        self.problems.append(all_dropped(where, self.problems[since:]))
        return True

    def to_dict(self) -> Dict:
        """The COCO instances dict: ``info`` (``yolact_source`` when a source was given),
        ``images`` (ids from 1, ``height``/``width`` in pixels), ``annotations`` (compressed RLE
        with str counts, ``bbox`` [x, y, w, h] and ``area`` in pixels, ``iscrowd`` 0, ``source``)
        and ``categories`` sorted by id."""
        cats = [{"id": i, "name": n} for n, i in sorted(self.categories.items(), key=lambda kv: kv[1])]
        info = {"yolact_source": str(self.source)} if self.source else {}
        return {"info": info, "images": self.images, "annotations": self.annotations, "categories": cats}

    def write(self, path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (parent folders created) and return the
        path; OSError propagates."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict()))
        return p


def _why(problem: str) -> str:
    """'<file>: <object>: why (details)' -> why, for grouping."""
    import re

    why = re.sub(r"^.*?(:\d+: |: shape \d+ \('[^']*'\): |: instance \d+: |: colour #[0-9a-f]+: )", "", problem)
    if why == problem:  # '<file>: why'
        why = problem.rsplit(": ", 1)[-1]
    return re.sub(r"\s*\(found [^()]*\)", "", why.split("; ")[0])


def all_dropped(where: str, problems: Sequence[str]) -> str:
    """The one line for an image none of whose objects could be read."""
    reasons = sorted({_why(p) for p in problems})
    return (f"{where}: all {len(problems)} object(s) were skipped ({'; '.join(reasons)}); image skipped, "
            "not trained as a background image")


def read_class_list(path) -> List[str]:
    """classes.txt: one class name a line (blank lines and # comments ignored)."""
    p = Path(path)
    if not p.exists():
        raise YolactError(f"{p}: no such class list")
    names = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not names:
        raise YolactError(f"{p}: no class names")
    if len(set(names)) != len(names):
        raise YolactError(f"{p}: a class name appears twice")
    return names
