"""What COCO AP does not say: per-class precision, recall and F1 at a score threshold, a
confusion matrix, precision-recall curves, and their pictures.

Precision, recall and F1 use COCOeval's own matching (IoU >= 0.5, area "all", up to 100
detections an image, crowd regions ignored), keeping the detections scored at or above the
threshold. The confusion matrix matches detections of any class to ground truth one to one,
greedily by mask IoU (>= 0.5), so a right object with the wrong class is counted as such; its
last row and column are "background": detections that match nothing (false positives, last
row) and objects nothing detected (missed, last column). Rows are the true classes, columns the
predicted ones.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np


def precision_recall_at(ev, score_threshold: float) -> Dict[int, Dict[str, float]]:
    """Per category id, from an evaluated (``evaluate()``, before or after ``accumulate()``)
    COCOeval: tp, fp, gt (counts), precision, recall, f1 (0..1; nan where undefined) of the
    detections scored >= ``score_threshold`` at IoU 0.5."""
    p = ev.params
    t50 = int(np.argmin(np.abs(np.asarray(p.iouThrs) - 0.5)))
    n_area, n_img = len(p.areaRng), len(p.imgIds)
    out = {}
    for k, cat_id in enumerate(p.catIds):
        tp = fp = n_gt = 0
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]  # area index 0: "all"
            if e is None:
                continue
            n_gt += int((np.asarray(e["gtIgnore"]) == 0).sum())
            if not len(e["dtScores"]):
                continue
            keep = (np.asarray(e["dtScores"]) >= score_threshold) & (e["dtIgnore"][t50] == 0)
            matched = e["dtMatches"][t50] > 0
            tp += int((keep & matched).sum())
            fp += int((keep & ~matched).sum())
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / n_gt if n_gt else float("nan")
        f1 = 2 * prec * rec / (prec + rec) if tp else (0.0 if n_gt else float("nan"))
        out[cat_id] = {"tp": tp, "fp": fp, "gt": n_gt, "precision": prec, "recall": rec, "f1": f1}
    return out


def pr_curves(ev, names: Sequence[str]) -> Dict:
    """Precision at COCO's 101 recall points, IoU 0.5, area all, 100 detections, per class
    (from an accumulated COCOeval): {"recall": [...], "precision": {name: [...]}} (nan where
    the recall is never reached)."""
    prec = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    t50 = int(np.argmin(np.abs(np.asarray(ev.params.iouThrs) - 0.5)))
    curves = {}
    for k, name in enumerate(names):
        p = prec[t50, :, k, 0, -1].astype(float)
        curves[name] = [float(v) if v > -1 else float("nan") for v in p]
    return {"recall": [float(r) for r in ev.params.recThrs], "precision": curves}


def confusion_matrix(gt, results: List[Dict], cat_ids: Sequence[int], score_threshold: float,
                     iou_threshold: float = 0.5) -> np.ndarray:
    """int64 [K + 1, K + 1]: rows true class, columns predicted class, index K background.
    ``gt`` a pycocotools COCO, ``results`` COCO result dicts with RLE 'segmentation' and 'score'."""
    from pycocotools import mask as mask_utils

    index = {c: i for i, c in enumerate(cat_ids)}
    K = len(cat_ids)
    m = np.zeros((K + 1, K + 1), np.int64)
    dets_by_image: Dict = {}
    for r in results:
        if r["score"] >= score_threshold and r["category_id"] in index:
            dets_by_image.setdefault(r["image_id"], []).append(r)
    for img_id in gt.getImgIds():
        gts = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id)) if not a.get("iscrowd", 0)
               and a["category_id"] in index]
        dts = dets_by_image.get(img_id, [])
        g_cls = [index[a["category_id"]] for a in gts]
        d_cls = [index[d["category_id"]] for d in dts]
        pairs = []
        if gts and dts:
            iou = np.asarray(mask_utils.iou([d["segmentation"] for d in dts], [gt.annToRLE(a) for a in gts],
                                            [0] * len(gts)))
            pairs = sorted(((iou[i, j], i, j) for i in range(len(dts)) for j in range(len(gts))
                            if iou[i, j] >= iou_threshold), reverse=True)
        used_d, used_g = set(), set()
        for _, i, j in pairs:
            if i in used_d or j in used_g:
                continue
            used_d.add(i)
            used_g.add(j)
            m[g_cls[j], d_cls[i]] += 1
        for i in set(range(len(dts))) - used_d:
            m[K, d_cls[i]] += 1
        for j in set(range(len(gts))) - used_g:
            m[g_cls[j], K] += 1
    return m


def save_eval_plots(metrics: Dict, out_dir, prefix: str = "") -> List[Path]:
    """Write ``confusion_matrix.png`` and ``pr_curve.png`` (mask results) from what
    :func:`yolact.evaluation.coco.coco_eval` returned, into ``out_dir``; -> the paths written.
    Training calls it for its best checkpoint."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    segm = metrics.get("segm", {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    conf = segm.get("confusion")
    if conf:
        names = list(conf["names"]) + ["background"]
        mat = np.asarray(conf["matrix"], np.float64)
        n = len(names)
        fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.6 + 0.6 * n))
        ax.imshow(mat / max(mat.max(), 1), cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                if mat[i, j]:
                    ax.text(j, i, f"{int(mat[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if mat[i, j] > 0.5 * mat.max() else "black")
        ax.set_xticks(range(n))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n))
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"confusion (mask IoU >= {conf['iou']:g}, score >= {conf['score_threshold']:g})")
        fig.tight_layout()
        path = out / f"{prefix}confusion_matrix.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    curves = segm.get("pr_curve")
    if curves:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        rec = np.asarray(curves["recall"])
        stack = []
        for name, prec in curves["precision"].items():
            prec = np.asarray(prec, np.float64)
            stack.append(prec)
            ap50 = segm.get("per_class_ap50", {}).get(name, float("nan"))
            ax.plot(rec, prec, linewidth=1, label=f"{name} {ap50:.3f}" if ap50 >= 0 else f"{name} n/a")
        if stack:
            with np.errstate(all="ignore"):
                mean = np.nanmean(np.stack(stack), axis=0) if np.isfinite(np.stack(stack)).any() else None
            if mean is not None:
                ax.plot(rec, mean, color="black", linewidth=2.5, label=f"all classes {segm.get('AP50', 0):.3f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("mask precision-recall, IoU 0.5 (legend: AP50)")
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        path = out / f"{prefix}pr_curve.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
