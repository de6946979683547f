"""The edge formats side by side with PyTorch fp32 (issue #28): file size, end-to-end latency on
a 640x480 image (interleaved rounds, median), parity of the detections on synthetic images, and
mask AP on a generated synthetic val set, for each format that runs here.

    python benchmarks/edge_formats.py [--weights demo] [--val 50] [--rounds 5] [--json out.json]
    python benchmarks/edge_formats.py --weights random:yolact_resnet50   # detections only

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
weights; its mask AP means nothing and is not computed.
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


def parity(ref, model, images) -> dict:
    """Detections of ``model`` against ``ref`` (score > 0.3): images with the same count and
    labels, worst box difference (px), worst score difference, mean mask IoU of matched pairs."""
    same, box, score, ious = 0, 0.0, 0.0, []
    for img in images:
        a, b = ref.predict(img, score_threshold=0.3), model.predict(img, score_threshold=0.3)
        if len(a) != len(b) or sorted(a.labels.tolist()) != sorted(b.labels.tolist()):
            continue
        same += 1
        if not len(a):
            continue
        diff = np.abs(a.boxes[:, None, :] - b.boxes[None, :, :]).max(-1)
        diff[a.labels[:, None] != b.labels[None, :]] = np.inf
        match = diff.argmin(1)
        box = max(box, float(diff[np.arange(len(a)), match].max()))
        score = max(score, float(np.abs(a.scores - b.scores[match]).max()))
        for i, j in enumerate(match):
            u = (a.masks[i] | b.masks[j]).sum()
            ious.append(1.0 if u == 0 else float((a.masks[i] & b.masks[j]).sum() / u))
    return {"same_detections": f"{same}/{len(images)}", "max_box_px": box, "max_score": score,
            "mask_iou": float(np.mean(ious)) if ious else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="demo")
    ap.add_argument("--val", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calib", type=int, default=64, help="calibration images of the int8 rows")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-ap", action="store_true", help="skip the mask AP (latency and parity only)")
    ap.add_argument("--only", default=None, help="comma-separated rows to build, e.g. executorch-fp32-full,litert-fp32-core,ncnn-fp32,coreml-fp32-full")
    args = ap.parse_args()
    only = None if args.only is None else set(args.only.split(","))

    import yolact
    from yolact.data.synth import generate, make_image
    from yolact.evaluation.coco import evaluate

    if args.weights.startswith("random:"):
        import sys
        sys.path.insert(0, str(Path(__file__).parent))
        from latency import busy_model
        ref = busy_model(args.weights.split(":", 1)[1])
    else:
        ref = yolact.load(args.weights, device="cpu")
    trained = not args.weights.startswith("random:")
    rng = np.random.default_rng(28)
    test_images = [make_image(rng, 240, 320, style="simple", max_objects=4)[0] for _ in range(8)]
    test_images.append(np.zeros((240, 320, 3), np.uint8))
    side = ref.cfg.max_size
    exact_images = [make_image(rng, side, side, style="simple", max_objects=4)[0] for _ in range(8)]
    exact_images.append(np.zeros((side, side, 3), np.uint8))
    timed = make_image(np.random.default_rng(0), 480, 640, style="simple", max_objects=4)[0]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        data = generate(d / "synth", 0, args.val, size=256, seed=4242, max_objects=4, style="simple")
        ann, val = str(data["val.json"]) if "val.json" in data else str(d / "synth" / "val.json"), str(d / "synth" / "val")
        models = {("torch", "fp32"): (ref, None, 0.0)}

        def add(key, build):
            if only is not None and "-".join(key) not in only:
                return
            t = time.perf_counter()
            try:
                path, model = build()
            except Exception as e:  # noqa: BLE001 - a missing extra or a failed export: a skipped row
                print(f"{key}: skipped ({str(e).splitlines()[0][:200]})", flush=True)
                return
            models[key] = (model, path, time.perf_counter() - t)
            print(f"{key}: built in {time.perf_counter() - t:.0f} s", flush=True)

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
            fp32 = d / "full_for_int8.tflite"
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
        for k, (m, path, export_s) in models.items():
            row = {"backend": k[0], "precision": k[1], "latency_ms": 1000 * statistics.median(times[k]),
                   "size_mb": size_mb(path) if path is not None else None, "export_s": export_s}
            if path is not None:
                row.update(parity(ref, m, test_images))
                row.update({f"exact_{k}": v for k, v in parity(ref, m, exact_images).items()})
            if trained and not args.no_ap:
                row["mask_ap"] = 100 * evaluate(m, ann, val, progress=False)["segm"]["AP"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = next(r for r in rows if r["backend"] == "torch")
    for r in rows:
        if "latency_ms" in r:
            r["vs_fp32"] = r["latency_ms"] / base["latency_ms"]
    print("| format | precision | size MB | latency ms (x fp32) | same detections 320x240 / model size | "
          "max box px | max score | mask IoU | mask AP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = f"{r['latency_ms']:.0f} ({r['vs_fp32']:.2f}x)" if "latency_ms" in r else "-"
        size = f"{r['size_mb']:.1f}" if r.get("size_mb") else "-"
        print(f"| {r['backend']} | {r['precision']} | {size} | {lat} | {r.get('same_detections', '-')} / "
              f"{r.get('exact_same_detections', '-')} | "
              f"{r.get('max_box_px', float('nan')):.2f} | {r.get('max_score', float('nan')):.4f} | "
              f"{r.get('mask_iou', float('nan')):.3f} | {r.get('mask_ap', float('nan')):.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
