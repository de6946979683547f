"""COCO box and mask AP of a model on an annotated set: :func:`evaluate` matches the model's
classes to the file's categories (:mod:`.classes`), predicts every image (:mod:`.predictions`,
sharded across DDP ranks) and scores the detections with pycocotools (:func:`coco_eval`)."""
from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch.distributed as dist

from ..data.coco import CocoDataset, read_coco_json
from ..errors import YolactError, warn
from .classes import class_subset_note, model_category_ids
from .predictions import is_dist, predict_dataset

__all__ = ["METRIC_NAMES", "coco_eval", "evaluate", "format_metrics", "model_category_ids", "predict_dataset"]

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _gt_for_pycocotools(data: Dict, ann_file) -> Dict:
    """The ground truth as pycocotools can score it within bounded memory: polygons reaching
    far outside their image clipped to it (the same mask inside the image). A segmentation
    pycocotools cannot read (a flat list, an unreadable compressed RLE) stops the run naming
    it: skipping it or misreading it would change the AP without a word."""
    from pycocotools import mask as mask_utils

    from ..data.coco import _polygon_problem, bounded_parts, far_vertex

    sizes = {img.get("id"): (img.get("height"), img.get("width")) for img in data["images"] if isinstance(img, dict)}
    anns = []
    for a in data.get("annotations", []):
        seg = a.get("segmentation") if isinstance(a, dict) else None
        h, w = sizes.get(a.get("image_id"), (None, None)) if isinstance(a, dict) else (None, None)
        if isinstance(seg, list) and h and w:
            if not seg or not isinstance(seg[0], list):  # pycocotools would stop with a TypeError
                raise YolactError(f"{ann_file}: annotation {a.get('id')}: {_polygon_problem(seg)}")
            if far_vertex(seg, h, w) is not None:
                a = dict(a, segmentation=bounded_parts(seg, h, w) or [[0, 0, 0, 0, 0, 0]])
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), str):
            try:  # pycocotools would score a string it cannot read as some other mask
                mask_utils.decode(seg)
            except ValueError as e:
                raise YolactError(f"{ann_file}: annotation {a.get('id')}: unreadable RLE mask ({e})") from None
        anns.append(a)
    return {**data, "annotations": anns, "info": data.get("info", {})}


def coco_eval(gt_json, results: List[Dict], iou_types=("bbox", "segm"), pr_score_threshold: float = 0.5,
              data: Optional[Dict] = None, max_dets: int = 100,
              cat_ids: Optional[Sequence[int]] = None) -> Dict[str, Dict]:
    """Run COCOeval on the ground truth ``gt_json`` (``data``: its parsed contents, if read
    already). Returns {'bbox': {...}, 'segm': {...}} with the AP metrics (0..1, and -1 where
    pycocotools gives -1: no object of that size), per-class AP and AP50 (``per_class``,
    ``per_class_ap50``), precision/recall/F1 at ``pr_score_threshold`` and IoU 0.5 per class
    (``per_class_prf``), the IoU-0.5 precision-recall curves (``pr_curve``), for 'segm' a
    confusion matrix (``confusion``), and the printed summary text. ``max_dets``: detections per
    image that the APs count (COCOeval's maxDets; above 100 the summary says maxDets=N).
    ``cat_ids``: score only these categories of the file (COCOeval's ``params.catIds``): every
    AP, the headline included, is averaged over them alone (as Ultralytics' ``classes``)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from .metrics import confusion_matrix, pr_curves, precision_recall_at

    data = data if data is not None else read_coco_json(gt_json)
    gt = COCO()
    gt.dataset = _gt_for_pycocotools(data, gt_json)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    out = {}
    for iou_type in iou_types:
        dets = []
        for r in results:
            d = {"image_id": r["image_id"], "category_id": r["category_id"]}
            if iou_type == "bbox":
                d.update(bbox=r["bbox"], score=r.get("box_score", r.get("score")))
            else:
                d.update(segmentation=r["segmentation"], score=r["score"])
            dets.append(d)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            if dets:
                dt = gt.loadRes(dets)
            else:  # no detections: every AP is 0 (or -1 where there is nothing to find)
                dt = COCO()
                dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"],
                              "annotations": []}
                dt.createIndex()
            ev = COCOeval(gt, dt, iou_type)
            if cat_ids is not None:
                ev.params.catIds = sorted(int(c) for c in cat_ids)
            if max_dets > 100:  # AP at the detections kept (COCO's standard is 100 per image)
                ev.params.maxDets = [1, 10, int(max_dets)]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(s) for s in ev.stats[:6]]
        summary = buf.getvalue()
        if max_dets > 100:
            # pycocotools' summarize() asks its headline AP at maxDets=100 whatever maxDets holds
            # (-1 when 100 is not in it): take it over the same precision table at maxDets N.
            prec_all = ev.eval["precision"][:, :, :, 0, -1]
            stats[0] = float(prec_all[prec_all > -1].mean()) if (prec_all > -1).any() else -1.0
            lines = summary.splitlines()
            lines[0] = lines[0].replace("maxDets=100", f"maxDets={max_dets}").rsplit("=", 1)[0] + f"= {stats[0]:0.3f}"
            summary = "\n".join(lines) + "\n"
        names = [gt.cats[c]["name"] for c in ev.params.catIds]
        per_class, per_class_ap50 = {}, {}
        prec = ev.eval["precision"]  # [T, R, K, A, M]
        t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
        for k, name in enumerate(names):
            p = prec[:, :, k, 0, -1]
            p = p[p > -1]
            per_class[name] = float(p.mean()) if p.size else float("nan")
            p50 = prec[t50, :, k, 0, -1]
            p50 = p50[p50 > -1]
            per_class_ap50[name] = float(p50.mean()) if p50.size else float("nan")
        prf = precision_recall_at(ev, pr_score_threshold)
        out[iou_type] = {**dict(zip(METRIC_NAMES, stats)), "per_class": per_class, "per_class_ap50": per_class_ap50,
                         "per_class_prf": {gt.cats[c]["name"]: v for c, v in prf.items()},
                         "pr_score_threshold": pr_score_threshold,
                         "pr_curve": pr_curves(ev, names), "summary": summary}
        if iou_type == "segm":
            out[iou_type]["confusion"] = {
                "names": names, "iou": 0.5, "score_threshold": pr_score_threshold,
                "matrix": confusion_matrix(gt, dets, ev.params.catIds, pr_score_threshold).tolist()}
    return out


def _pct(v: float, width: int) -> str:
    """A 0..1 metric as printed everywhere (console, JSON, metrics.jsonl, plots): a fraction with
    3 decimals, as pycocotools and Ultralytics print it; pycocotools' -1 (nothing to measure) and
    nan as n/a."""
    return f"{'n/a':>{width}}" if v is None or not math.isfinite(v) or v < 0 else f"{v:{width}.3f}"


def format_metrics(metrics: Dict[str, Dict], per_class: bool = True) -> str:
    """The AP table (n/a where pycocotools gives -1) and, with ``per_class``, one row a class:
    box AP, mask AP, mask AP50, and mask precision, recall and F1 at the score threshold. Every
    value is a fraction 0..1 (3 decimals), the unit of the JSON summaries and metrics.jsonl."""
    lines = [f"{'':6}" + "".join(f"{m:>8}" for m in METRIC_NAMES)]
    for t in ("bbox", "segm"):
        if t in metrics:
            name = "box" if t == "bbox" else "mask"
            lines.append(f"{name:6}" + "".join(_pct(metrics[t][m], 8) for m in METRIC_NAMES))
    segm = metrics.get("segm", {})
    if per_class and segm.get("per_class"):
        thr = segm.get("pr_score_threshold", 0.5)
        lines.append("")
        lines.append(f"{'class':20}{'box AP':>8}{'mask AP':>9}{'AP50':>8}{'P':>8}{'R':>8}{'F1':>8}{'objects':>9}"
                     f"   (P, R, F1: masks, IoU 0.5, score >= {thr:g})")
        for name, ap in segm["per_class"].items():
            bap = metrics.get("bbox", {}).get("per_class", {}).get(name, float("nan"))
            prf = segm.get("per_class_prf", {}).get(name, {})
            lines.append(f"{name[:20]:20}{_pct(bap, 8)}{_pct(ap, 9)}{_pct(segm.get('per_class_ap50', {}).get(name), 8)}"
                         f"{_pct(prf.get('precision'), 8)}{_pct(prf.get('recall'), 8)}{_pct(prf.get('f1'), 8)}"
                         f"{prf.get('gt', 0):9d}")
    return "\n".join(lines)


def _note(message: str) -> None:
    """One ``note:`` line on stderr: what the numbers cover, not a problem with the data."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def evaluate(model, ann_file, image_dir, score_threshold: float = 0.0, top_k: int = 100,
             out_json: Optional[str] = None, progress: bool = True, batch_size: int = 1,
             map_classes_by_position: bool = False, pr_score_threshold: float = 0.5,
             plots_dir: Optional[str] = None, **predict_kwargs) -> Dict[str, Dict]:
    """COCO box and mask AP of ``model`` on the COCO file ``ann_file`` with images in ``image_dir``.

    The model's classes are matched to the file's categories by name (any order, any ids);
    ``map_classes_by_position`` pairs them by order instead. A file with only some of the
    model's classes is scored on those: the other classes' detections are left out, and a
    ``note:`` line on stderr says so; a category name the model lacks stops the run
    (YolactError). An image whose JSON size differs from its file stops the run (YolactError
    naming the image and both sizes): its masks could not be scored. ``plots_dir``: also
    write the confusion matrix and precision-recall curve there
    (:func:`yolact.evaluation.metrics.save_eval_plots`). Returns :func:`coco_eval`'s dict ({} on
    ranks other than 0). ``predict_kwargs`` go to ``model.predict`` (classes, iou,
    agnostic_nms, max_det, img_size)."""
    data = read_coco_json(ann_file)
    class_names = getattr(model, "class_names", None) or model.cfg.class_names
    category_ids = model_category_ids(class_names, data, ann_file, map_classes_by_position)
    rank0 = not is_dist() or dist.get_rank() == 0
    note = class_subset_note(class_names, category_ids, ann_file)
    if note and rank0:
        _note(note)
    selected = None
    if predict_kwargs.get("classes") is not None:
        # --classes: the APs average over the selected classes only, not over all with the others
        # at 0. Checked before any image is predicted.
        wanted = model.class_ids(predict_kwargs["classes"]) if hasattr(model, "class_ids") else predict_kwargs["classes"]
        selected = [category_ids[i] for i in wanted if category_ids[i] is not None]
        if not selected:
            names = ", ".join(f"{i} ({class_names[i]})" if isinstance(i, int) else str(i) for i in wanted)
            raise YolactError(f"{ann_file}: the selected class(es) {names} are not in the file (its categories: "
                              f"{', '.join(str(c.get('name')) for c in data.get('categories', []))})")
    dataset = CocoDataset(ann_file, image_dir, model.cfg, train=False, data=data, verbose=progress,
                          size_mismatch="error")
    # Images without a size in the JSON take their file's (pycocotools needs one to score masks).
    sized = {img["id"]: img for img, _ in dataset.items}
    # The metrics cover the images that were evaluated: a skipped image (missing or unreadable
    # file, invalid entry) must not count its objects as misses.
    left_out = [i for i in data["images"] if not (isinstance(i, dict) and i.get("id") in sized)]
    if left_out:
        # named here: without progress (validation during training) the reader's own lines are off
        names = [str(i.get("file_name", f"id {i.get('id')}")) if isinstance(i, dict) else repr(i)[:40]
                 for i in left_out[:3]]
        more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
        warn(f"{ann_file}: {len(left_out)} of {len(data['images'])} image(s) could not be evaluated "
             f"({', '.join(names)}{more}{'; reasons above' if progress else ''}); the metrics cover the other "
             "images only")
    data = {**data, "images": [sized[i["id"]] for i in data["images"] if isinstance(i, dict) and i.get("id") in sized],
            "annotations": [a for a in data.get("annotations", []) if isinstance(a, dict) and a.get("image_id") in sized]}
    results = predict_dataset(model, dataset, score_threshold, top_k, batch_size, progress, category_ids,
                              **predict_kwargs)
    if not rank0:
        return {}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(results))
    max_dets = int(predict_kwargs.get("max_det") or top_k)
    if max_dets > 100:
        _note(f"AP at maxDets={max_dets} (COCO's standard metrics count 100 detections per image)")
    metrics = coco_eval(ann_file, results, pr_score_threshold=pr_score_threshold, data=data, max_dets=max_dets,
                        cat_ids=selected)
    if plots_dir:
        from .metrics import save_eval_plots

        metrics["plots"] = [str(p) for p in save_eval_plots(metrics, plots_dir)]
    return metrics
