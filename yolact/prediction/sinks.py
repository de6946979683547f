"""What ``yolact predict`` writes besides the overlays: JSON results, YOLO-seg label files,
cut-out crops, and pre-labels for annotation tools (LabelMe files, one COCO file).

Layout of an output folder (Ultralytics' where it has one):

- ``results.json``: COCO-style result records (RLE mask, box, scores, ``file_name``); for
  videos and webcams one record per detection per frame, with ``video`` and ``frame``
  (0-based index);
- ``labels/<stem>.txt`` (``<video>_<frame>.txt`` for video frames): YOLO-seg lines;
- ``crops/<class>/<stem>_<i>.png``: each detection with its mask as alpha;
- ``annotations.json``: the predictions as a COCO instances file (images, categories,
  annotations with polygons, or RLE for masks with holes, and a ``score``);
- ``<stem>.json``: LabelMe files, when written into the output folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence


from ..results import Results


class PredictionWriter:
    """Collects per-image (or per-frame) results and writes the outputs asked for.

    ``labelme_dir``: where LabelMe files go; None puts each next to its image, and then an
    existing file there (perhaps already corrected by hand) is kept, never overwritten.
    """

    def __init__(self, out_dir, class_names: Sequence[str], save_json: bool = False, save_txt: bool = False,
                 save_conf: bool = False, save_crop: bool = False, save_labelme: bool = False,
                 labelme_dir=None, save_coco: bool = False):
        self.out_dir = Path(out_dir)
        self.class_names = tuple(class_names)
        self.save_json, self.save_txt, self.save_conf = save_json, save_txt, save_conf
        self.save_crop, self.save_labelme, self.save_coco = save_crop, save_labelme, save_coco
        self.labelme_dir = Path(labelme_dir) if labelme_dir is not None else None
        self.records: List[Dict] = []
        self.coco_images: List[Dict] = []
        self.coco_annotations: List[Dict] = []
        self.labelme_written: List[Path] = []
        self.labelme_kept: List[Path] = []

    def add(self, res: Results, image_path: Optional[str] = None, video: Optional[str] = None,
            frame: Optional[int] = None) -> None:
        """One image's results (``image_path``), or one frame's (``video`` name, ``frame`` index)."""
        stem = Path(image_path).stem if video is None else f"{Path(video).stem}_{frame}"
        if self.save_json:
            # category_id is the class index + 1 (the model knows its class names, not the ids of
            # the file it was trained on): category_name says which class it is.
            where = {"file_name": os.path.basename(image_path)} if video is None else {"video": video, "frame": int(frame)}
            self.records += [dict(d, category_name=res.class_names[int(label)], **where)
                             for d, label in zip(res.to_coco(stem, kind="both"), res.labels)]
        if self.save_txt:
            res.save_txt(self.out_dir / "labels" / f"{stem}.txt", save_conf=self.save_conf)
        if self.save_crop:
            res.save_crops(self.out_dir / "crops", stem)
        if image_path is None:
            return  # pre-labels need an image file to point at
        if self.save_labelme:
            self._write_labelme(res, Path(image_path))
        if self.save_coco:
            self._add_coco(res, Path(image_path))

    def _write_labelme(self, res: Results, image: Path) -> None:
        if self.labelme_dir is None:
            path = image.with_suffix(".json")
            if path.exists():
                self.labelme_kept.append(path)
                return
            rel = image.name
        else:
            self.labelme_dir.mkdir(parents=True, exist_ok=True)
            path = self.labelme_dir / f"{image.stem}.json"
            rel = os.path.relpath(image.resolve(), self.labelme_dir.resolve())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res.to_labelme(rel), indent=1))
        self.labelme_written.append(path)

    def _add_coco(self, res: Results, image: Path) -> None:
        from pycocotools import mask as mask_utils

        h, w = res.image_shape
        image_id = len(self.coco_images) + 1
        self.coco_images.append({"id": image_id, "file_name": str(image.resolve()), "height": int(h), "width": int(w)})
        crops = res.mask_crops
        for i in range(len(res)):
            if not crops.crops[i].any():
                continue
            rle = crops.rle(i)
            outer, holes = crops.outlines(i, corners=True)  # COCO polygons: points on pixel edges
            if holes or not outer:
                # Polygons cannot cut holes in COCO (its parts are united): keep the mask as RLE.
                segmentation = rle
            else:
                segmentation = [c.reshape(-1).tolist() for c in outer]
            self.coco_annotations.append({
                "id": len(self.coco_annotations) + 1, "image_id": image_id, "category_id": int(res.labels[i]) + 1,
                "segmentation": segmentation, "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
                "area": float(mask_utils.area(rle)), "iscrowd": 0, "score": round(float(res.scores[i]), 4)})

    def close(self) -> List[Path]:
        """Write the files collected over the run. -> the files written here."""
        written = []
        if self.save_json:
            p = self.out_dir / "results.json"
            p.write_text(json.dumps(self.records))
            written.append(p)
        if self.save_coco:
            # File names relative to the images' common folder (as annotation tools and
            # `yolact train --train-images ROOT` expect), which is recorded in "info".
            root = Path(os.path.commonpath([os.path.dirname(i["file_name"]) for i in self.coco_images])) \
                if self.coco_images else Path(".")
            images = [dict(i, file_name=os.path.relpath(i["file_name"], root)) for i in self.coco_images]
            doc = {"info": {"description": "yolact predictions", "image_root": str(root)}, "images": images,
                   "annotations": self.coco_annotations,
                   "categories": [{"id": k + 1, "name": n} for k, n in enumerate(self.class_names)]}
            p = self.out_dir / "annotations.json"
            p.write_text(json.dumps(doc))
            written.append(p)
        return written
