"""Small objects in large images: the whole image, our sliced inference and SAHI's, on the same
model and images.

    pip install sahi shapely   # for this benchmark only; not a dependency of the package
    python benchmarks/sahi_compare.py [--images 4] [--tile 256] [--overlap 0.2]

The set: ``yolact data synth --large`` (``generate_large``: 2048x1536 images, 40 non-overlapping
shapes of 40-100 px each, i.e. 2-5% of the image side, COCO ground truth written by the
generator), scored with the built-in demo model (input 192 px). Methods:

* full image: ``model.predict(img)`` (the image resized to 192 px: shapes become 4-9 px);
* ours sliced: ``model.predict(img, slice=(tile, overlap))``, the whole image included, tiles
  merged by masks (union of the masks of one object);
* SAHI sliced: ``sahi.predict.get_sliced_prediction`` with :class:`YolactSahiModel` below (the
  same tiles, overlap and whole-image pass), masks handed to SAHI as its COCO polygons; merged
  with SAHI's default, greedy NMM (boxes matched by intersection over the smaller box > 0.5,
  class-aware; the masks of a match united), kept even though SAHI switches to NMS for a
  confidence threshold this low, and with NMS (box IoU > 0.5) as a second row.

Each method runs in a fresh subprocess (one thread) over all images: mask AP / AR from
pycocotools (all areas: every object is small against the image; and COCO's small and medium
area ranges), median seconds per image, and the subprocess's peak resident size.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def yolact_sahi_model_class():
    """The SAHI adapter, defined when SAHI is importable."""
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    class YolactSahiModel(DetectionModel):
        """A ``yolact`` predictor as a SAHI DetectionModel: ``model_path`` is a weights file (or
        give a loaded predictor to ``set_model``). SAHI hands over RGB arrays; YOLACT takes BGR.
        Masks go to SAHI as COCO polygons of each tile-sized mask (SAHI's own format)."""

        def load_model(self):
            import yolact

            self.set_model(yolact.load(self.model_path))

        def set_model(self, model, **kwargs):
            self.model = model
            self.category_mapping = {str(i + 1): n for i, n in enumerate(model.class_names)}

        def perform_inference(self, image: np.ndarray) -> None:
            self.perform_batch_inference([image])

        def perform_batch_inference(self, images) -> None:
            bgr = [np.ascontiguousarray(img[:, :, ::-1]) for img in images]
            self._original_predictions = self.model.predict(bgr, score_threshold=self.confidence_threshold,
                                                            keep_image=False)
            self._original_shapes = [img.shape for img in images]
            self._batch_images = None

        @property
        def num_categories(self) -> int:
            return len(self.model.class_names)

        @property
        def has_mask(self) -> bool:
            return True

        @property
        def category_names(self):
            return list(self.model.class_names)

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=[[0, 0]],
                                                                     full_shape_list=None):
            shifts = fix_shift_amount_list(shift_amount_list)
            shapes = fix_full_shape_list(full_shape_list)
            per_image = []
            for k, res in enumerate(self._original_predictions):
                shift = [int(v) for v in shifts[k]]
                full = None if shapes is None else [int(v) for v in shapes[k]]
                preds = []
                crops = res.mask_crops
                for i in range(len(res)):
                    seg = get_coco_segmentation_from_bool_mask(crops.mask(i))
                    if not seg:
                        continue
                    preds.append(ObjectPrediction(
                        bbox=[float(v) for v in res.boxes[i]], category_id=int(res.labels[i]) + 1,
                        category_name=res.class_names[int(res.labels[i])], segmentation=seg,
                        score=float(res.scores[i]), shift_amount=shift,
                        full_shape=list(res.image_shape) if full is None else full))
                per_image.append(preds)
            self._object_prediction_list_per_image = per_image

    return YolactSahiModel


def run_method(method: str, ann: Path, image_dir: Path, tile: int, overlap: float) -> dict:
    """In this process: predictions of ``method`` on every image -> COCO results, times, peak RSS."""
    import resource
    import time

    import cv2
    import torch

    import yolact

    torch.set_num_threads(1)
    data = json.loads(ann.read_text())
    model = yolact.load(yolact.demo_weights_path())
    if method.startswith("sahi"):
        from sahi.predict import get_sliced_prediction

        sahi_model = yolact_sahi_model_class()(confidence_threshold=0.05, device="cpu", load_at_init=False)
        sahi_model.set_model(model)
    results, times = [], []
    for im in data["images"]:
        img = cv2.imread(str(image_dir / im["file_name"]))
        t0 = time.perf_counter()
        if method == "full":
            dets = model.predict(img, score_threshold=0.05, keep_image=False).to_coco(im["id"])
        elif method == "ours":
            dets = model.predict(img, score_threshold=0.05, keep_image=False,
                                 slice=(tile, overlap)).to_coco(im["id"])
        else:
            merge = (dict(postprocess_type="GREEDYNMM", postprocess_match_metric="IOS") if method == "sahi"
                     else dict(postprocess_type="NMS", postprocess_match_metric="IOU"))
            pred = get_sliced_prediction(np.ascontiguousarray(img[:, :, ::-1]), sahi_model, slice_height=tile,
                                         slice_width=tile, overlap_height_ratio=overlap,
                                         overlap_width_ratio=overlap, perform_standard_pred=True, verbose=0,
                                         postprocess_match_threshold=0.5, force_postprocess_type=True, **merge)
            dets = pred.to_coco_predictions(image_id=im["id"])
        times.append(time.perf_counter() - t0)
        results.extend(dets)
    return {"results": results, "median_s": float(np.median(times)),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def score(ann: Path, results: list) -> dict:
    """Mask AP, AP50, AP small / medium and AR@100 (pycocotools)."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP_small": 0.0, "AP_medium": 0.0, "AR100": 0.0, "AR_small": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        # masks only: areas (COCO's small / medium) from the masks, not from boxes; SAHI may
        # write polygons under 3 points, which pycocotools cannot rasterise: left out
        results = [{k: v for k, v in r.items() if k != "bbox"} for r in results
                   if isinstance(r["segmentation"], dict) or any(len(p) >= 6 for p in r["segmentation"])]
        for r in results:  # polygons -> RLE (pycocotools' results take RLE masks)
            if isinstance(r["segmentation"], list):
                im = gt.imgs[r["image_id"]]
                polys = [p for p in r["segmentation"] if len(p) >= 6]
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, im["height"], im["width"]))
                r["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"AP": s[0], "AP50": s[1], "AP_small": s[3], "AP_medium": s[4], "AR100": s[8], "AR_small": s[9]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument("--data", default=None, help="a folder written by `yolact data synth --large` (default: a new one)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: method
    args = ap.parse_args()
    if args.one:
        data = Path(args.data)
        out = run_method(args.one, data / "val.json", data / "val", args.tile, args.overlap)
        Path(data / f"{args.one}.json").write_text(json.dumps(out))
        return
    import torch

    from yolact.data.synth import generate_large

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp()) / "large"
    if not (data / "val.json").exists():
        generate_large(data, 0, args.images, seed=0)
    n_objects = len(json.loads((data / "val.json").read_text())["annotations"])
    rows = []
    for method, name in (("full", "full image (192 px)"), ("ours", f"ours sliced ({args.tile}, {args.overlap})"),
                         ("sahi", f"SAHI sliced ({args.tile}, {args.overlap}), greedy NMM, IOS 0.5"),
                         ("sahi-nms", f"SAHI sliced ({args.tile}, {args.overlap}), NMS, IoU 0.5")):
        subprocess.run([sys.executable, __file__, "--one", method, "--data", str(data), "--tile", str(args.tile),
                        "--overlap", str(args.overlap)], check=True)
        out = json.loads((data / f"{method}.json").read_text())
        rows.append((name, score(data / "val.json", out["results"]), out["median_s"], out["peak_rss"], len(out["results"])))
    import sahi

    print(f"# {datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"sahi {sahi.__version__}  1 thread  demo model (192 px)  {args.images} images 2048x1536, "
          f"{n_objects} shapes of 40-100 px")
    print("| method | mask AP | AP50 | AP small | AP medium | AR@100 | AR small | s / image | peak RSS (GB) | detections |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, s, sec, rss, n in rows:
        print(f"| {name} | {100 * s['AP']:.1f} | {100 * s['AP50']:.1f} | {100 * s['AP_small']:.1f} "
              f"| {100 * s['AP_medium']:.1f} | {100 * s['AR100']:.1f} | {100 * s['AR_small']:.1f} | {sec:.2f} "
              f"| {rss / 1e9:.3f} | {n} |")


if __name__ == "__main__":
    main()
