"""The edge formats side by side with PyTorch fp32 (issue #28): file size, end-to-end latency on
a 640x480 image (interleaved rounds, median), parity of the detections on synthetic images, and
mask AP on a generated synthetic val set, for each format that runs here.

    python benchmarks/edge_formats.py [--weights demo] [--val 50] [--rounds 5] [--json out.json]
    python benchmarks/edge_formats.py --weights random:yolact_resnet50 --logit-std 2 --conf 0.7 --no-ap

Rows whose extra is missing are skipped; Core ML is written and its size given (it runs on
macOS only). LiteRT rows (fp32, int8) need the litert extra; the NCNN int8 row needs ncnn's
tools built by ``third_party/ncnn_quantize/build.sh``.
int8 rows (LiteRT: ai-edge-quantizer static int8 of the whole-pipeline file) are calibrated on a
folder of generated synthetic images of another seed than the val set (as ``--calib DIR``).

Each format that can holds the whole pipeline (``-full`` rows: NMS and masks inside the file,
the default export) and the core graph (``-core`` rows: NMS and masks on the host); parity is
given on 8 synthetic images at 320x240 (the host resizes and rounds to uint8 for the full
graph) and on 8 at the model's size (``exact_*``: the full graph's uint8 input is PyTorch's).

``--weights random:<preset>`` (e.g. yolact_resnet50): the preset with random weights and the
class bias of ``benchmarks/latency.py``'s ``busy_model`` (many detections), so the real
network's latency and the formats' agreement with PyTorch can be measured without trained
weights; its mask AP means nothing and is not computed. Its class scores are its bias's alone
(yolact_resnet50: 0.19-0.196 on every prior of two classes, near-tied to 1e-8, the same on a
blank image), so at 0.3 the parity check compares empty lists and at any threshold under 0.19
it compares 100 arbitrary picks among ties. ``--logit-std 2`` scales the class-logit weights
so that the scores follow the image (0.5-0.9; about 60 detections per synthetic image above
0.7, one on a blank image); give it with ``--conf 0.7``. The table's "ref dets/img" column
says how many detections each check compared.

Parity matches each format's detections to PyTorch's by class and box IoU >= 0.5 (not by rank:
random weights give near-tied scores whose order, and whether they cross the threshold, can
flip on a 1e-6 difference); it reports images where everything matched both ways, matched
pairs / PyTorch's detections (and the format's unmatched ones), the worst box difference in
pixels and worst score difference of a matched pair, and their mean mask IoU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [n, m] of boxes a [n, 4] and b [m, 4] (x1, y1, x2, y2 pixels)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_detections(a, b, min_iou: float = 0.5) -> list:
    """Pairs (i, j) of detections of ``a`` (the reference) and ``b`` with the same label and box
    IoU >= ``min_iou``, greedy: ``a``'s in descending score take ``b``'s unmatched one of highest
    IoU. By class and box, not by rank, so near-tied scores (random weights) that come out in
    another order, or that cross the threshold on one side only, do not misalign the rest."""
    if not len(a) or not len(b):
        return []
    iou = box_iou(np.asarray(a.boxes, np.float64), np.asarray(b.boxes, np.float64))
    iou[np.asarray(a.labels)[:, None] != np.asarray(b.labels)[None, :]] = -1.0
    pairs, taken = [], np.zeros(len(b), bool)
    for i in np.argsort(-np.asarray(a.scores), kind="stable"):
        cand = np.where(taken, -1.0, iou[i])
        j = int(cand.argmax())
        if cand[j] >= min_iou:
            taken[j] = True
            pairs.append((int(i), j))
    return pairs


def parity(ref_results, model, images, conf: float = 0.3) -> dict:
    """Detections of ``model`` against the reference's (``ref_results``, one Results per image,
    predicted at the same ``conf``), matched by class and box IoU >= 0.5 (:func:`match_detections`).

    ``same_detections``: images where every detection of each side has its match (same count,
    labels and boxes); ``matched``: matched pairs / the reference's detections, and
    ``unmatched_other``: the model's detections without a match; ``max_box_px``: worst absolute
    box coordinate difference of a matched pair (pixels of the image); ``max_score``: worst
    score difference of a matched pair; ``mask_iou``: mean mask IoU of the matched pairs;
    ``ref_dets_per_image``: the reference's mean count (0 makes the check vacuous)."""
    same, box, score, ious, n_ref, n_other, n_pairs = 0, 0.0, 0.0, [], 0, 0, 0
    for a, img in zip(ref_results, images):
        b = model.predict(img, score_threshold=conf)
        pairs = match_detections(a, b)
        n_ref, n_other, n_pairs = n_ref + len(a), n_other + len(b), n_pairs + len(pairs)
        same += int(len(pairs) == len(a) == len(b))
        for i, j in pairs:
            box = max(box, float(np.abs(a.boxes[i].astype(np.float64) - b.boxes[j]).max()))
            score = max(score, abs(float(a.scores[i]) - float(b.scores[j])))
            u = (a.masks[i] | b.masks[j]).sum()
            ious.append(1.0 if u == 0 else float((a.masks[i] & b.masks[j]).sum() / u))
    return {"same_detections": f"{same}/{len(images)}",
            "matched": f"{n_pairs}/{n_ref}", "matched_fraction": n_pairs / n_ref if n_ref else float("nan"),
            "unmatched_other": n_other - n_pairs, "ref_dets_per_image": n_ref / max(len(images), 1),
            "max_box_px": box, "max_score": score,
            "mask_iou": float(np.mean(ious)) if ious else float("nan")}


def spread_class_logits(model, image: np.ndarray, target_std: float) -> float:
    """Scale the shared prediction head's class-logit weights (not its bias) so that the
    image-dependent part of the class logits has standard deviation ``target_std`` on ``image``
    (BGR uint8 [H, W, 3]); returns the factor. ``busy_model``'s random network gives that part a
    std of about 0.007 (yolact_resnet50 at 550), so every score is set by its bias alone (0.19
    everywhere, two classes, near-tied to 1e-8) and a parity check would compare noise."""
    import torch
    from yolact.model.transform import YolactTransform
    layer = model.prediction_layers[0].conf_layer
    transform = YolactTransform(model.cfg.max_size, model.cfg.normalize)
    with torch.no_grad():
        out = model.forward_heads(transform.normalize(transform.resize([image])))
        bias = layer.bias.view(model.cfg.anchors_per_location, -1)
        raw = out.conf.view(1, -1, *bias.shape) - bias
        factor = target_std / float(raw.std())
        layer.weight.mul_(factor)
    return factor


def peak_rss_mb() -> float:
    """Peak resident memory so far, MB, of this process or of its largest finished child (pnnx
    runs as one); a running maximum, so a row's export shows only where it raised it (Linux:
    ru_maxrss is in KiB)."""
    import resource
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="demo")
    ap.add_argument("--val", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calib", type=int, default=64, help="calibration images of the int8 rows")
    ap.add_argument("--conf", type=float, default=0.3,
                    help="score threshold of the parity check (random weights: lower, e.g. 0.1, or it is empty)")
    ap.add_argument("--logit-std", type=float, default=None,
                    help="random weights: scale the class-logit weights so that their image-dependent part has this "
                         "std (e.g. 2), making scores follow the image instead of the bias")
    ap.add_argument("--build-budget", type=float, default=None,
                    help="seconds from the start after which no further row is built (skipped, said so)")
    ap.add_argument("--parity", type=int, default=8, help="synthetic images of each parity set (plus a blank one)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-ap", action="store_true", help="skip the mask AP (latency and parity only)")
    ap.add_argument("--only", default=None, help="comma-separated rows to build, e.g. executorch-fp32-full,litert-fp32-core,ncnn-fp32,coreml-fp32-full")
    args = ap.parse_args()
    only = None if args.only is None else set(args.only.split(","))
    if args.logit_std is not None and not args.weights.startswith("random:"):
        ap.error("--logit-std is for --weights random:<preset> only")

    start = time.perf_counter()
    import yolact
    from yolact.data.synth import generate, make_image
    from yolact.evaluation.coco import evaluate

    if args.weights.startswith("random:"):
        import sys
        sys.path.insert(0, str(Path(__file__).parent))
        from latency import busy_model
        ref = busy_model(args.weights.split(":", 1)[1])
    else:
        ref = yolact.load(args.weights, device="cpu", precision="fp32")
    trained = not args.weights.startswith("random:")
    rng = np.random.default_rng(28)
    test_images = [make_image(rng, 240, 320, style="simple", max_objects=4)[0] for _ in range(args.parity)]
    if args.logit_std is not None:
        factor = spread_class_logits(ref, make_image(np.random.default_rng(2826), 480, 640, style="simple",
                                                     max_objects=4)[0], args.logit_std)
        print(f"class-logit weights x{factor:.0f} (image-dependent logit std {args.logit_std})", flush=True)
    test_images.append(np.zeros((240, 320, 3), np.uint8))
    side = ref.cfg.max_size
    exact_images = [make_image(rng, side, side, style="simple", max_objects=4)[0] for _ in range(args.parity)]
    exact_images.append(np.zeros((side, side, 3), np.uint8))
    timed = make_image(np.random.default_rng(0), 480, 640, style="simple", max_objects=4)[0]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        data = generate(d / "synth", 0, args.val, size=256, seed=4242, max_objects=4, style="simple")
        ann, val = str(data["val.json"]) if "val.json" in data else str(d / "synth" / "val.json"), str(d / "synth" / "val")
        models = {("torch", "fp32"): (ref, None, 0.0)}
        peaks = {("torch", "fp32"): peak_rss_mb()}

        def add(key, build):
            if only is not None and "-".join(key) not in only:
                return
            if args.build_budget is not None and time.perf_counter() - start > args.build_budget:
                print(f"{key}: skipped (build budget of {args.build_budget:.0f} s spent)", flush=True)
                return
            t = time.perf_counter()
            try:
                path, model = build()
            except Exception as e:  # noqa: BLE001 - a missing extra or a failed export: a skipped row
                print(f"{key}: skipped ({str(e).splitlines()[0][:200]})", flush=True)
                return
            models[key] = (model, path, time.perf_counter() - t)
            peaks[key] = peak_rss_mb()
            print(f"{key}: built in {time.perf_counter() - t:.0f} s, peak RSS of the process so far "
                  f"{peaks[key]:.0f} MB", flush=True)

        def exported(export, name, **kw):
            def build():
                p = export(ref, d / name, **kw)
                return p, yolact.load(p)
            return build

        def lazy(module, func):
            def export(*a, **kw):
                import importlib
                return getattr(importlib.import_module(module), func)(*a, **kw)
            return export

        export_executorch = lazy("yolact.deploy.executorch", "export_executorch")
        export_litert = lazy("yolact.deploy.litert", "export_litert")
        export_ncnn = lazy("yolact.deploy.ncnn", "export_ncnn")
        add(("executorch", "fp32-full"), exported(export_executorch, "full.pte"))
        add(("executorch", "fp32-core"), exported(export_executorch, "core.pte", include_postprocess=False))
        add(("litert", "fp32-full"), exported(export_litert, "full.tflite"))
        add(("litert", "fp32-core"), exported(export_litert, "core.tflite", include_postprocess=False))
        add(("ncnn", "fp32"), exported(export_ncnn, "m_ncnn"))  # core graph only: NCNN lacks TopK etc.

        def litert_int8():
            from yolact.deploy.calibration import calibration_images
            from yolact.deploy.litert import export_litert as _export
            from yolact.deploy.litert_int8 import quantize_litert
            fp32 = d / "full.tflite"  # the fp32 row's file when it was built
            if not fp32.exists():
                _export(ref, fp32)
            calib = generate(d / "calib", args.calib, 0, size=256, seed=2828, max_objects=4, style="simple")
            images = calibration_images(str(d / "calib" / "train"), None, args.calib, ref.cfg.max_size)
            done, total = quantize_litert(fp32, d / "full_int8.tflite", ref, images)
            print(f"litert int8: {done} of {total} convolutions int8, {len(images)} calibration images", flush=True)
            del calib
            return d / "full_int8.tflite", yolact.load(d / "full_int8.tflite")

        add(("litert", "int8-full"), litert_int8)

        def ncnn_int8():
            from yolact.deploy.calibration import calibration_images
            from yolact.deploy.ncnn import export_ncnn as _export
            from yolact.deploy.ncnn_int8 import quantize_ncnn
            fp32 = d / "m_for_int8_ncnn"
            if not fp32.exists():
                _export(ref, fp32)
            if not (d / "calib" / "train").exists():
                generate(d / "calib", args.calib, 0, size=256, seed=2828, max_objects=4, style="simple")
            images = calibration_images(str(d / "calib" / "train"), None, args.calib, ref.cfg.max_size)
            done, total = quantize_ncnn(fp32, d / "m_int8_ncnn", images)
            print(f"ncnn int8: {done} of {total} convolutions int8, {len(images)} calibration images", flush=True)
            return d / "m_int8_ncnn", yolact.load(d / "m_int8_ncnn")

        add(("ncnn", "int8"), ncnn_int8)  # ncnn2table (KL) + ncnn2int8: third_party/ncnn_quantize/build.sh
        for kind, full in (("full", True), ("core", False)):
            try:
                if only is not None and f"coreml-fp32-{kind}" not in only:
                    raise RuntimeError("not asked for")
                from yolact.deploy.coreml import export_coreml
                t = time.perf_counter()
                cm = export_coreml(ref, d / f"{kind}.mlpackage", include_postprocess=full)
                rows.append({"backend": "coreml", "precision": f"fp32-{kind}", "size_mb": size_mb(cm),
                             "export_s": time.perf_counter() - t, "note": "written here; runs on macOS only"})
            except Exception as e:  # noqa: BLE001
                print(f"coreml-{kind}: skipped ({str(e).splitlines()[0][:200]})")

        # latency: interleaved rounds, so that the shared machine's load hits every row alike
        times = {k: [] for k in models}
        for m, _, _ in models.values():
            m.predict(timed)  # warm-up
        for _ in range(args.rounds):
            for k, (m, _, _) in models.items():
                t = time.perf_counter()
                m.predict(timed, keep_image=False)
                times[k].append(time.perf_counter() - t)
        # the reference's detections once (not once per format)
        ref_test = [ref.predict(img, score_threshold=args.conf) for img in test_images]
        ref_exact = [ref.predict(img, score_threshold=args.conf) for img in exact_images]
        for k, (m, path, export_s) in models.items():
            row = {"backend": k[0], "precision": k[1], "latency_ms": 1000 * statistics.median(times[k]),
                   "size_mb": size_mb(path) if path is not None else None, "export_s": export_s,
                   "peak_rss_mb": peaks[k], "conf": args.conf}
            if path is not None:
                row.update(parity(ref_test, m, test_images, args.conf))
                row.update({f"exact_{k}": v for k, v in parity(ref_exact, m, exact_images, args.conf).items()})
            else:
                row["ref_dets_per_image"] = float(np.mean([len(r) for r in ref_test]))
                row["exact_ref_dets_per_image"] = float(np.mean([len(r) for r in ref_exact]))
            if trained and not args.no_ap:
                row["mask_ap"] = 100 * evaluate(m, ann, val, progress=False)["segm"]["AP"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = next(r for r in rows if r["backend"] == "torch")
    for r in rows:
        if "latency_ms" in r:
            r["vs_fp32"] = r["latency_ms"] / base["latency_ms"]
    print(f"score threshold of the parity check: {args.conf}")
    print("| format | precision | size MB | export s | latency ms (x fp32) | same detections 320x240 / model size | "
          "matched 320x240 / model size (extra) | ref dets/img | max box px | max score | mask IoU | mask AP |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = f"{r['latency_ms']:.0f} ({r['vs_fp32']:.2f}x)" if "latency_ms" in r else "-"
        size = f"{r['size_mb']:.1f}" if r.get("size_mb") else "-"
        print(f"| {r['backend']} | {r['precision']} | {size} | {r.get('export_s', 0):.0f} | {lat} | "
              f"{r.get('same_detections', '-')} / {r.get('exact_same_detections', '-')} | "
              f"{r.get('matched', '-')} / {r.get('exact_matched', '-')} "
              f"({r.get('unmatched_other', '-')} / {r.get('exact_unmatched_other', '-')}) | "
              f"{r.get('ref_dets_per_image', float('nan')):.1f} / {r.get('exact_ref_dets_per_image', float('nan')):.1f} | "
              f"{r.get('max_box_px', float('nan')):.2f} | {r.get('max_score', float('nan')):.4f} | "
              f"{r.get('mask_iou', float('nan')):.3f} | {r.get('mask_ap', float('nan')):.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
