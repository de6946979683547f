"""COCO box and mask AP through pycocotools, with optional sharding across DDP ranks."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Dict, List, Optional

import torch.distributed as dist
from tqdm import tqdm

from ..data.coco import CocoDataset, read_coco_json
from ..errors import YolactError

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def predict_dataset(model, dataset: CocoDataset, score_threshold: float = 0.0, top_k: int = 100,
                    batch_size: int = 1, progress: bool = True, **predict_kwargs) -> List[Dict]:
    """COCO result dicts (one per detection, 'bbox' and 'segm' fields) for this rank's share.
    ``predict_kwargs`` go to ``model.predict`` (classes, iou, agnostic_nms, max_det, img_size)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if _is_dist() else (0, 1)
    indices = list(range(rank, len(dataset), world))
    results = []
    bar = tqdm(total=len(indices), desc="eval", unit="img", disable=not progress or rank != 0, leave=False)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        imgs = [dataset.load_sample(i)[0] for i in chunk]
        preds = model.predict(imgs, score_threshold=score_threshold, top_k=top_k, keep_image=False, **predict_kwargs)
        for i, res in zip(chunk, preds):
            results += res.to_coco(dataset.image_info(i)["id"], dataset.category_ids, kind="both")
        bar.update(len(chunk))
    bar.close()
    if world > 1:
        gathered: List[Optional[List[Dict]]] = [None] * world
        dist.all_gather_object(gathered, results)
        results = [r for part in gathered for r in part]
    return results


def coco_eval(gt_json, results: List[Dict], iou_types=("bbox", "segm")) -> Dict[str, Dict]:
    """Run COCOeval; returns {'bbox': {...}, 'segm': {...}} with AP metrics (0..1) and
    per-class AP, plus the printed summary text."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
    gt.dataset.setdefault("info", {})
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
        if not dets:
            out[iou_type] = {**{k: 0.0 for k in METRIC_NAMES}, "per_class": {}, "summary": "no detections"}
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [max(float(s), 0.0) for s in ev.stats[:6]]
        per_class = {}
        prec = ev.eval["precision"]  # [T, R, K, A, M]
        for k, cat_id in enumerate(ev.params.catIds):
            p = prec[:, :, k, 0, -1]
            p = p[p > -1]
            per_class[gt.cats[cat_id]["name"]] = float(p.mean()) if p.size else float("nan")
        out[iou_type] = {**dict(zip(METRIC_NAMES, stats)), "per_class": per_class, "summary": buf.getvalue()}
    return out


def format_metrics(metrics: Dict[str, Dict], per_class: bool = True) -> str:
    lines = [f"{'':6}" + "".join(f"{m:>8}" for m in METRIC_NAMES)]
    for t in ("bbox", "segm"):
        if t in metrics:
            name = "box" if t == "bbox" else "mask"
            lines.append(f"{name:6}" + "".join(f"{100 * metrics[t][m]:8.2f}" for m in METRIC_NAMES))
    if per_class and "segm" in metrics and metrics["segm"].get("per_class"):
        lines.append("")
        lines.append(f"{'class':20}{'box AP':>8}{'mask AP':>9}")
        for name, ap in metrics["segm"]["per_class"].items():
            bap = metrics.get("bbox", {}).get("per_class", {}).get(name, float("nan"))
            lines.append(f"{name[:20]:20}{100 * bap:8.2f}{100 * ap:9.2f}")
    return "\n".join(lines)


def evaluate(model, ann_file, image_dir, score_threshold: float = 0.0, top_k: int = 100,
             out_json: Optional[str] = None, progress: bool = True, batch_size: int = 1,
             **predict_kwargs) -> Dict[str, Dict]:
    """COCO box and mask metrics of ``model`` on ``ann_file``; ``predict_kwargs`` go to
    ``model.predict`` (classes, iou, agnostic_nms, max_det, img_size)."""
    data = read_coco_json(ann_file)
    dataset = CocoDataset(ann_file, image_dir, model.cfg, train=False, data=data, verbose=progress)
    if len(dataset.category_ids) != model.cfg.num_classes:
        raise YolactError(f"{ann_file}: {len(dataset.category_ids)} categories but the model has "
                          f"{model.cfg.num_classes} classes")
    results = predict_dataset(model, dataset, score_threshold, top_k, batch_size, progress, **predict_kwargs)
    if _is_dist() and dist.get_rank() != 0:
        return {}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(results))
    return coco_eval(ann_file, results)
