"""Where a model's mask AP goes: AP at each IoU threshold, what perfect masks would give, and
what the prototype grid can hold at all.

    python benchmarks/mask_gap.py --data /tmp/synth400 --ours /tmp/rvy/fast/best.pt \\
        --yolo-results /tmp/rvy/yolo/results.json --plot docs/mask_gap.png

(``--yolo-results``: the COCO result dicts ``recipe_vs_yolo.py`` writes for YOLO26n-seg; any
other model's results file can be given with ``--results NAME=FILE``.)

For each model, on the val split (``<data>/val.json``, ``<data>/val``), by pycocotools:

- **mask AP and box AP at each IoU threshold** 0.50 ... 0.95 (COCO's AP is their mean);
- **+ GT masks**: each detection's mask replaced by the GT mask of the same-class object its
  box overlaps best (box IoU >= 0.5); scores, boxes and classes kept. The mask AP this gives is
  what the detections allow with perfect masks: the gap to it is the masks' own;
- **+ GT masks cut to its box**: the same GT mask with everything outside the detection's box
  removed: what cropping to the predicted box (as YOLACT and YOLO do) costs;
- **mask AP per class**;
- **where the masks sit**: each detection with score >= 0.5 that the COCO evaluation matches to
  an object at mask IoU 0.5 (same class, highest score first), the mean offset of its mask's centroid
  from the object's (dx right, dy down, in pixels, with its standard error) and of its area. A
  model trained on masks misaligned with their images learns the offset (session 16: mosaic's
  mask resize had sat masks half a pixel down and right of the image; the model's masks sat
  dy = +0.48 px low).

And for the GT masks themselves, the **prototype-grid ceiling**: each GT mask taken to a G x G
grid (the model's input resized to the prototype size; 48 for the slim preset at 192 px) and
back as the pipeline does (bilinear, > 0.5), its IoU with itself. ``binary``: the grid holds
the original's training target (bilinear resize, > 0.5); ``soft``: each cell's covered fraction
(``LossOptions(mask_target="soft")``, :func:`yolact.loss.mask_coverage`). The fraction of objects whose round trip reaches IoU t
bounds the mask AP at t of a model that learns its target perfectly.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]


def per_threshold_ap(gt, results: list, iou_type: str) -> list:
    """AP at each of COCO's 10 IoU thresholds (area all, 100 detections), pycocotools."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return [0.0] * 10
    with contextlib.redirect_stdout(io.StringIO()):
        E = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        E.evaluate()
        E.accumulate()
    p = E.eval["precision"][:, :, :, 0, 2]  # [T, R, K]
    return [float(np.mean(p[t][p[t] > -1])) if (p[t] > -1).any() else 0.0 for t in range(p.shape[0])]


def per_class_ap(gt, results: list, iou_type: str) -> dict:
    """AP (0.50:0.95) of each category, by name (pycocotools)."""
    from pycocotools.cocoeval import COCOeval

    out = {}
    for cat in gt.loadCats(gt.getCatIds()):
        with contextlib.redirect_stdout(io.StringIO()):
            E = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
            E.params.catIds = [cat["id"]]
            E.evaluate()
            E.accumulate()
            E.summarize()
        out[cat["name"]] = float(E.stats[0])
    return out


def with_gt_masks(gt, results: list, cut_to_box: bool) -> list:
    """``results`` with each mask replaced by the GT mask of the same-class object its box
    overlaps best (box IoU >= 0.5), optionally cut to the detection's box."""
    from pycocotools import mask as mu

    cache, out = {}, []
    for r in results:
        if r["image_id"] not in cache:
            anns = gt.loadAnns(gt.getAnnIds(imgIds=[r["image_id"]], iscrowd=False))
            cache[r["image_id"]] = (anns, [gt.annToMask(a) for a in anns])
        anns, masks = cache[r["image_id"]]
        best, best_j = 0.5, None
        # pycocotools' box IoU (xywh), the same as the COCO evaluation's
        ious = mu.iou([r["bbox"]], [a["bbox"] for a in anns], [0] * len(anns))[0] if anns else []
        for j, (a, iou) in enumerate(zip(anns, ious)):
            if a["category_id"] == r["category_id"] and iou >= best:
                best, best_j = iou, j
        r = dict(r)
        if best_j is not None:
            m = masks[best_j].copy()
            if cut_to_box:
                x, y, w, h = r["bbox"]
                window = np.zeros_like(m)
                window[max(0, int(np.floor(y))):max(0, int(np.ceil(y + h))),
                       max(0, int(np.floor(x))):max(0, int(np.ceil(x + w)))] = 1  # no wrap-around below 0
                m *= window
            rle = mu.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            r["segmentation"] = rle
        out.append(r)
    return out


def mask_offsets(gt, results: list, min_score: float = 0.5) -> dict:
    """Mean centroid offset (``dx``, ``dy``: pixels, right and down) and relative area
    (``area``: predicted / GT - 1) of the detections with ``score >= min_score`` that
    pycocotools' segm evaluation matches at IoU 0.5 (same class, highest score first, as COCO AP
    and ``yolact.evaluation.metrics.precision_recall_at`` match); ``*_se``: standard errors;
    ``n``: matched detections."""
    from pycocotools import mask as mu
    from pycocotools.cocoeval import COCOeval

    d = {"dx": [], "dy": [], "area": []}
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(copy.deepcopy(results))
            E = COCOeval(gt, dt, "segm")
            E.params.iouThrs, E.params.areaRng, E.params.areaRngLbl = np.array([0.5]), [[0, 1e10]], ["all"]
            E.evaluate()
        for e in E.evalImgs:
            for dt_id, gt_id, score in zip(e["dtIds"], e["dtMatches"][0], e["dtScores"]) if e else ():
                if not gt_id or score < min_score:
                    continue
                m, g = mu.decode(dt.anns[dt_id]["segmentation"]) > 0, gt.annToMask(gt.anns[int(gt_id)]) > 0
                (ys, xs), (gy, gx) = np.nonzero(m), np.nonzero(g)
                d["dx"].append(xs.mean() - gx.mean())
                d["dy"].append(ys.mean() - gy.mean())
                d["area"].append(m.sum() / g.sum() - 1)
    n = len(d["dx"])
    out = {"n": n}
    for k, v in d.items():
        v = np.array(v, np.float64)
        out[k] = float(v.mean()) if n else float("nan")
        out[k + "_se"] = float(v.std() / math.sqrt(n)) if n > 1 else float("nan")
    return out


def grid_round_trip_ious(gt, input_size: int, grid: int, target: str) -> np.ndarray:
    """IoU of each GT mask with itself after the image is resized to ``input_size`` square,
    the mask taken to a ``grid`` x ``grid`` target (``binary`` or ``soft``) and upsampled back to
    the image (bilinear, align_corners=False, > 0.5)."""
    from yolact.loss import mask_coverage

    ious = []
    for img_id in gt.getImgIds():
        info = gt.loadImgs(img_id)[0]
        h, w = info["height"], info["width"]
        for a in gt.loadAnns(gt.getAnnIds(imgIds=[img_id], iscrowd=False)):
            m = torch.from_numpy(gt.annToMask(a)).float()[None, None]
            at_input = F.interpolate(m, (input_size, input_size), mode="bilinear", align_corners=False)
            if target == "binary":
                small = F.interpolate(at_input.gt(0.5).float(), (grid, grid), mode="bilinear",
                                      align_corners=False).gt(0.5).float()
            else:
                small = mask_coverage(at_input.gt(0.5).float()[0], grid, grid)[None]  # as the soft training target
            back = F.interpolate(small, (h, w), mode="bilinear", align_corners=False)[0, 0].gt(0.5).numpy()
            ref = m[0, 0].numpy() > 0
            union = (back | ref).sum()
            ious.append((back & ref).sum() / union if union else 1.0)
    return np.array(ious)


def predict_ours(weights: str, data: Path) -> tuple:
    """Our model's val detections (score >= 0.001, 100 per image, exact fp32), its input size
    and prototype grid size."""
    import yolact
    from yolact.data.coco import CocoDataset
    from yolact.evaluation.predictions import predict_dataset

    model = yolact.load(weights, precision="fp32")
    ds = CocoDataset(data / "val.json", data / "val", model.cfg, train=False, verbose=False)
    results = predict_dataset(model, ds, score_threshold=0.001, top_k=100, progress=False)
    size = model.cfg.max_size
    with torch.no_grad():
        grid = model.forward_heads(torch.zeros(1, 3, size, size)).proto.shape[1]
    return results, size, grid


def row(name: str, aps: list) -> str:
    return f"| {name} | **{np.mean(aps):.3f}** | " + " | ".join(f"{x:.2f}" for x in aps) + " |"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder with val.json and val/")
    ap.add_argument("--ours", help="our weights (.pt)")
    ap.add_argument("--yolo-results", help="YOLO26n-seg's COCO results (recipe_vs_yolo.py's results.json)")
    ap.add_argument("--results", action="append", default=[], help="NAME=FILE: another model's COCO results")
    ap.add_argument("--input-size", type=int, default=192, help="for the grid ceiling without --ours")
    ap.add_argument("--grids", default="", help="grid sizes for the ceiling (default: the model's, and twice it)")
    ap.add_argument("--plot", help="a PNG of AP against the IoU threshold")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(args.data / "val.json"))
    # without our model: YOLACT's grid, P3 (stride 8) upsampled twice
    models, size, grid = {}, args.input_size, 2 * math.ceil(args.input_size / 8)
    if args.ours:
        models["ours"], size, grid = predict_ours(args.ours, args.data)
    if args.yolo_results:
        models["YOLO26n-seg"] = json.loads(Path(args.yolo_results).read_text())
    for spec in args.results:
        name, _, path = spec.partition("=")
        models[name] = json.loads(Path(path).read_text())

    header = "| | AP | " + " | ".join(f"{t:.2f}" for t in THRESHOLDS) + " |"
    rule = "|---|---|" + "---|" * 10
    curves = {}
    print(f"\nAP at each IoU threshold ({args.data / 'val.json'}, pycocotools)\n\n{header}\n{rule}")
    for name, results in models.items():
        curves[f"{name}: mask"] = per_threshold_ap(gt, results, "segm")
        curves[f"{name}: box"] = per_threshold_ap(gt, results, "bbox")
        curves[f"{name}: + GT masks"] = per_threshold_ap(gt, with_gt_masks(gt, results, False), "segm")
        curves[f"{name}: + GT masks cut to its box"] = per_threshold_ap(gt, with_gt_masks(gt, results, True), "segm")
        for what in ("mask", "box", "+ GT masks", "+ GT masks cut to its box"):
            print(row(f"{name}: {what}", curves[f"{name}: {what}"]))

    names = [c["name"] for c in gt.loadCats(gt.getCatIds())]
    print("\nMask AP per class\n\n| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for name, results in models.items():
        per = per_class_ap(gt, results, "segm") if results else {}
        print(f"| {name} | " + " | ".join(f"{per[n]:.3f}" if per.get(n, -1) >= 0 else "n/a" for n in names) + " |")

    print("\nWhere the masks sit: detections >= 0.5 matched by mask IoU >= 0.5, mean centroid offset from "
          "the object (px, right and down) and relative area\n\n| | matched | dx | dy | area |\n|---|---|---|---|---|")
    for name, results in models.items():
        o = mask_offsets(gt, results)
        print(f"| {name} | {o['n']} | {o['dx']:+.2f} ± {o['dx_se']:.2f} | {o['dy']:+.2f} ± {o['dy_se']:.2f} | "
              f"{o['area']:+.1%} |")

    grids = [int(g) for g in args.grids.split(",") if g] or [grid, 2 * grid]
    print(f"\nGT masks through the prototype grid and back (input {size} px): fraction of objects reaching "
          f"each IoU\n\n{header.replace('| AP |', '| mean IoU |')}\n{rule}")
    ceilings = {}
    for g in grids:
        for target in ("binary", "soft"):
            ious = grid_round_trip_ious(gt, size, g, target)
            frac = [float(np.mean(ious >= t - 1e-9)) for t in THRESHOLDS]
            ceilings[f"{g}x{g} {target}"] = frac
            print(f"| {g} x {g}, {target} target | {ious.mean():.3f} | " + " | ".join(f"{x:.2f}" for x in frac) + " |")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5))
        for name, aps in curves.items():
            if name.endswith("cut to its box"):
                continue
            ax.plot(THRESHOLDS, aps, marker="o", linestyle="--" if "GT masks" in name else ":" if "box" in name else "-",
                    label=f"{name} (AP {np.mean(aps):.3f})")
        for name, frac in ceilings.items():
            if name.startswith(f"{grids[0]}x"):
                ax.plot(THRESHOLDS, frac, color="grey", linestyle="-." if "binary" in name else (0, (1, 1)),
                        label=f"GT through {name} grid: fraction of objects")
        ax.set_xlabel("IoU threshold")
        ax.set_ylabel("AP (or fraction of objects)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title("Where the mask AP goes")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
