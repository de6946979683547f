"""Training recipes side by side: ``--recipe fast`` against ``original`` and Ultralytics'
YOLO26n-seg, and an ablation of the fast recipe's parts, from scratch on a synthetic set.

    yolact data synth --out /tmp/synth400 --train 400 --val 60 --size 192 --style varied --seed 7
    python benchmarks/recipe_vs_yolo.py side --data /tmp/synth400 --out /tmp/rvy --minutes 20
    python benchmarks/recipe_vs_yolo.py ablation --data /tmp/synth400 --out /tmp/abl20 --minutes 20 --rows 1,5
    python benchmarks/recipe_vs_yolo.py table --out /tmp/rvy          # the tables again, from the run folders

Every run is its own process on one thread (OMP/MKL/torch threads = 1), started together.
CPU seconds are each process's own (user + system, from ``os.wait4``): on a shared machine
they are the fair unit, not wall-clock.

- ``side``: ``yolact_resnet18_slim`` under ``--recipe fast`` and under ``original`` (with
  AdamW 2e-3, as the issue's baseline), and YOLO26n-seg, all started together for the same
  wall-clock: YOLO with ``time=`` the minutes, ours with ``yolact train --time`` the same (each
  trainer re-estimates its length from its own pace, validation included). ``--epochs`` gives
  ours a fixed length instead; ``--probe`` sizes it as before session 22, from probes of 1 and 2
  epochs (they missed the early validations' cost: 43% over at 20 minutes).
- ``ablation``: the baseline (original recipe, AdamW 2e-3), each change of ``fast`` alone on
  top of it, and ``fast`` whole, each row for the same budget of one core (``--minutes``: its
  epochs from probes of 1 and 2 epochs of its own recipe, in CPU seconds, since mosaic and copy-paste
  cost more per epoch; on a quiet machine that is the issue's wall-clock on one thread, and on
  a busy one a row still gets its minutes of CPU) or for the same ``--epochs``. Rows run ``--jobs`` at a time and are kept in ``ablation.json``
  as they finish; a later call runs only the rows not done, so the table can be filled over
  several sittings (``--rows`` picks them).

Scoring is the same for every model: its detections on the val images (score >= 0.001, at
most 100 per image) as COCO result dicts, scored by pycocotools (yolact.evaluation.coco_eval)
on the same val json; calibration = detections per image at score >= 0.05 and the precision
of those at score >= 0.5 (pycocotools' own segm matching at IoU 0.5: mask IoU >= 0.5 with an
unmatched object of the same class, highest score first).

YOLO (AGPL) is never imported here: it runs in its own virtual environment (``--yolo-python``,
default /work/venvs/ultralytics/bin/python) through a subprocess, only when that exists. Its
model comes from the YAML (``yolo26n-seg.yaml``, no download; the newest ``-seg`` YAML of the
installed version otherwise), ``plots=False``, ``workers=0``, ``device=cpu``, its defaults
otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
YOLO_PYTHON = "/work/venvs/ultralytics/bin/python"
CONFIG = "yolact_resnet18_slim"


# ---------------------------------------------------------------------------- ours
def ablation_recipes():
    """The baseline, each change of ``fast`` alone on it, and ``fast``: name -> Recipe."""
    from yolact.training.recipes import FAST, ORIGINAL

    base = replace(ORIGINAL, name="baseline", optimizer="adamw", lr=2e-3)
    modern = dict(augment="modern", mosaic=0.0, copy_paste=0.0, scale=FAST.scale, translate=FAST.translate,
                  hsv=FAST.hsv, flip=FAST.flip)
    rows = {
        "baseline (original, AdamW 2e-3)": base,
        "+ linear decay, warm-up 3 ep": replace(base, schedule="linear", warmup_epochs=3.0),
        "+ EMA": replace(base, ema_decay=FAST.ema_decay, ema_tau=FAST.ema_tau),
        "+ scale/HSV/flip (modern, no mosaic)": replace(base, **modern),
        "+ mosaic (modern)": replace(base, **dict(modern, mosaic=1.0, close_mosaic=FAST.close_mosaic)),
        "+ copy-paste (modern)": replace(base, **dict(modern, copy_paste=FAST.copy_paste)),
        "+ focal loss": replace(base, conf_loss="focal"),
        "+ centre prior (top-4)": replace(base, center_topk=FAST.center_topk),
        "+ mask weight 1.5": replace(base, mask_weight=FAST.mask_weight),
        "fast (all)": FAST,
        # added after the 20-minute rows showed mosaic below scale/HSV/flip alone (0.319 vs 0.395);
        # run before soft mask targets joined fast
        "fast without mosaic, binary mask targets": replace(FAST, mosaic=0.0, mask_target="binary"),
        # added with soft mask targets (benchmarks/mask_gap.py: binary targets on the 48 x 48 grid
        # capped the mask AP at IoU >= 0.85); the last row is fast as it was before them
        "+ soft mask targets": replace(base, mask_target="soft"),
        "fast with binary mask targets": replace(FAST, mask_target="binary"),
        # a candidate after soft targets (session 15): a Dice term on each mask's overlap
        "fast + Dice 1.0": replace(FAST, mask_dice=1.0),
        # session 16: mosaic was neutral inside fast at 20 minutes (row 11, binary targets); at 60
        # minutes, where it has more epochs to pay off, against fast as it is (soft targets)
        "fast without mosaic": replace(FAST, mosaic=0.0),
    }
    # The rows measure training, so every row keeps the original's inference (class scores,
    # bilinear masks), as all rows did before fast gained its inference options (session 19,
    # measured apart in BENCHMARKS.md): a row re-run now stays comparable with the stored ones.
    return {k: replace(v, name=("fast" if v is FAST else "ablation:" + k), mask_score="class",
                       mask_interpolation="bilinear") for k, v in rows.items()}


def run_ours(args_json: str) -> None:
    """In a child process: one training run (``_run`` mode), the recipe given as its fields."""
    import torch

    torch.set_num_threads(1)
    from yolact.training import train

    a = json.loads(args_json)
    cpu0 = time.process_time()
    res = train(**a)
    res["train_cpu_s"] = time.process_time() - cpu0  # without the interpreter's start and imports
    Path(a["out"], "summary.json").write_text(json.dumps(res))


def start_ours(data: Path, out: Path, recipe, epochs, seed: int = 0, amp: bool = False,
               hours=None) -> subprocess.Popen:
    """One run of ours in a child process: ``epochs`` long, or ``hours`` of wall-clock (``--time``)."""
    kw = dict(train_ann=str(data / "train.json"), train_images=str(data / "train"), val_ann=str(data / "val.json"),
              val_images=str(data / "val"), config=CONFIG, epochs=None if hours else epochs, time=hours,
              batch_size=8, workers=0,
              backbone_weights="none", out=str(out), exist_ok=True, quiet=True, seed=seed, recipe=recipe.to_dict(),
              amp=amp)  # --amp: bf16 autocast on the CPU (fast where the CPU has AMX)
    if recipe.name in ("original",):
        kw.update(optimizer="adamw", lr=2e-3)  # the baseline (slim preset, AdamW 2e-3)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "stdout.txt", "w")
    return subprocess.Popen([sys.executable, __file__, "_run", json.dumps(kw)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **ONE_THREAD})


def predict_ours(weights: Path, data: Path) -> list:
    import torch

    torch.set_num_threads(1)
    import yolact
    from yolact.data.coco import CocoDataset
    from yolact.evaluation.predictions import predict_dataset

    model = yolact.load(str(weights), precision="fp32")  # as the rows scored before
    ds = CocoDataset(data / "val.json", data / "val", model.cfg, train=False, verbose=False)
    return predict_dataset(model, ds, score_threshold=0.001, top_k=100, progress=False)


# ---------------------------------------------------------------------------- YOLO (its own venv)
YOLO_TRAIN = r'''
import json, os, sys, torch
torch.set_num_threads(1)
import ultralytics
from ultralytics import YOLO
from pathlib import Path
a = json.loads(sys.argv[1])
cfgdir = Path(ultralytics.__file__).parent / "cfg" / "models"
yaml = "yolo26n-seg.yaml"
if not list(cfgdir.rglob("yolo26-seg.yaml")) and not list(cfgdir.rglob("yolo26n-seg.yaml")):
    segs = sorted(p.name for p in cfgdir.rglob("*-seg.yaml"))
    yaml = segs[-1].replace("-seg", "n-seg")
m = YOLO(yaml)
print(json.dumps({"ultralytics": ultralytics.__version__, "yaml": yaml, "torch": torch.__version__,
                  "params": sum(p.numel() for p in m.model.parameters())}), flush=True)
m.train(data=a["data"], epochs=1000, time=a["hours"], imgsz=a["imgsz"], workers=0, plots=False, device="cpu",
        project=a["project"], name="train", exist_ok=True, seed=a["seed"], pretrained=False, amp=False, verbose=False)
'''

YOLO_PREDICT = r'''
import json, sys, torch
torch.set_num_threads(1)
import numpy as np
from pycocotools import mask as mu
from ultralytics import YOLO
a = json.loads(sys.argv[1])
gt = json.load(open(a["val_json"]))
names = {c["name"]: c["id"] for c in gt["categories"]}
m = YOLO(a["weights"])
out = []
for img in gt["images"]:
    r = m.predict(a["images"] + "/" + img["file_name"], imgsz=a["imgsz"], conf=0.001, max_det=100, device="cpu",
                  verbose=False, retina_masks=True)[0]
    if r.masks is None:
        continue
    masks = r.masks.data.cpu().numpy() > 0.5
    for k in range(len(r.boxes)):
        x1, y1, x2, y2 = r.boxes.xyxy[k].tolist()
        rle = mu.encode(np.asfortranarray(masks[k].astype(np.uint8)))
        rle["counts"] = rle["counts"].decode()
        cid = names[m.names[int(r.boxes.cls[k])]]
        out.append({"image_id": img["id"], "category_id": cid, "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(r.boxes.conf[k]), "segmentation": rle})
json.dump(out, open(a["out"], "w"))
'''


def yolo_data(data: Path, out: Path) -> Path:
    """A YOLO-seg copy of the COCO split (``yolact data convert --to yolo``) and its data.yaml."""
    root = out / "yolo_data"
    if not (root / "data.yaml").exists():
        for split in ("train", "val"):
            subprocess.run([sys.executable, "-m", "yolact", "data", "convert", "--to", "yolo", str(data / f"{split}.json"),
                            "--images", str(data / split), "--out", str(root / split)], check=True)
        names = [c["name"] for c in json.loads((data / "train.json").read_text())["categories"]]
        (root / "data.yaml").write_text(f"path: {root}\ntrain: {root / 'train' / 'images'}\nval: {root / 'val' / 'images'}\n"
                                        f"names: {json.dumps(dict(enumerate(names)))}\n")
    return root / "data.yaml"


def start_yolo(py: str, data: Path, out: Path, minutes: float, seed: int = 0) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    a = {"data": str(yolo_data(data, out)), "hours": minutes / 60, "imgsz": 192, "project": str(out), "seed": seed}
    log = open(out / "stdout.txt", "w")
    return subprocess.Popen([py, "-c", YOLO_TRAIN, json.dumps(a)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **ONE_THREAD, "YOLO_OFFLINE": "1"}, cwd=str(out))


# ---------------------------------------------------------------------------- scoring
def calibration(results: list, segm: dict, n_img: int) -> dict:
    """Detections per image at score >= 0.05 and at >= 0.5, and the precision of those at >= 0.5
    (right: pycocotools' own segm matching at IoU 0.5, same class, highest score first), from
    ``coco_eval``'s ``segm`` metrics at ``pr_score_threshold`` 0.5 over ``n_img`` val images."""
    assert segm["pr_score_threshold"] == 0.5
    tp = sum(v["tp"] for v in segm["per_class_prf"].values())
    fp = sum(v["fp"] for v in segm["per_class_prf"].values())
    return {"dets_per_image_005": sum(r["score"] >= 0.05 for r in results) / n_img,
            "dets_per_image_05": sum(r["score"] >= 0.5 for r in results) / n_img,
            "precision_05": tp / (tp + fp) if tp + fp else float("nan")}  # of those COCOeval does not ignore


def score(results: list, val_json: Path) -> dict:
    from yolact.data.coco import read_coco_json
    from yolact.evaluation.coco import coco_eval

    data = read_coco_json(val_json)
    m = coco_eval(str(val_json), results, data=data)
    return {"mask_ap": m["segm"]["AP"], "mask_ap50": m["segm"]["AP50"], "box_ap": m["bbox"]["AP"],
            "box_ap50": m["bbox"]["AP50"], **calibration(results, m["segm"], len(data["images"]))}


def last_iteration(out: Path) -> int:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "metrics.jsonl").exists() else []
    return max((r.get("iteration", 0) for r in rows), default=0)


def epochs_reached(out: Path) -> int:
    """The epochs a run of ours trained (whole or begun), from its metrics.jsonl."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "metrics.jsonl").exists() else []
    return max((r["epoch"] + 1 for r in rows if "epoch" in r), default=0)


def curve_ours(out: Path) -> list:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["iteration"], r.get("epoch"), r["val_mask_ap"], r["val_box_ap"]) for r in rows if "val_mask_ap" in r]


def curve_yolo(out: Path) -> list:
    import csv

    path = out / "train" / "results.csv"
    if not path.exists():
        return []
    rows = list(csv.DictReader(path.open()))
    key = lambda r, k: float(next(v for kk, v in r.items() if kk.strip() == k))  # noqa: E731
    return [(int(key(r, "epoch")), key(r, "metrics/mAP50-95(M)"), key(r, "metrics/mAP50-95(B)")) for r in rows]


# ---------------------------------------------------------------------------- drivers
def wait_all(procs: dict) -> dict:
    """name -> (returncode, cpu seconds, wall seconds) for every process of ``procs``."""
    t0 = {k: v[1] for k, v in procs.items()}
    pending = {p.pid: k for k, (p, _) in procs.items()}
    done = {}
    while pending:
        pid, status, ru = os.wait4(-1, 0)
        if pid in pending:
            name = pending.pop(pid)
            done[name] = (os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, time.time() - t0[name])
    return done


def probe_epochs(data: Path, out: Path, minutes: float, amp: bool = False) -> int:
    """Epochs of the fast recipe that fit ``minutes`` of one core (:func:`probe_epochs_of`)."""
    from yolact.training.recipes import FAST

    return probe_epochs_of(FAST, data, out, minutes, amp)[0]


def side(args) -> None:
    from yolact.training.recipes import FAST, ORIGINAL

    out = Path(args.out)
    epochs = args.epochs or (probe_epochs(args.data, out, args.minutes, args.amp) if args.probe else None)
    hours = None if epochs else args.minutes / 60  # the same wall-clock as YOLO's time=
    runs = args.runs.split(",")
    procs = {}
    started = time.time()
    if "fast" in runs:
        procs["fast"] = (start_ours(args.data, out / "fast", FAST, epochs, args.seed, args.amp, hours), started)
    if "original" in runs:
        procs["original"] = (start_ours(args.data, out / "original", ORIGINAL, epochs, args.seed, args.amp, hours),
                             started)
    if "yolo" not in runs:
        pass
    elif Path(args.yolo_python).exists():
        procs["yolo"] = (start_yolo(args.yolo_python, args.data, out / "yolo", args.minutes, args.seed), started)
    else:
        print(f"{args.yolo_python} not found: YOLO26n-seg not run")
    done = wait_all(procs)
    meta = {"epochs": epochs, "time_hours": hours, "minutes": args.minutes, "seed": args.seed, "amp": args.amp, "runs": {k: list(v) for k, v in done.items()},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "machine": machine()}
    (out / "side.json").write_text(json.dumps(meta, indent=1))
    table(argparse.Namespace(out=str(out), data=args.data, yolo_python=args.yolo_python))


def probe_epochs_of(recipe, data: Path, folder: Path, minutes: float, amp: bool = False) -> tuple:
    """(epochs that fit ``minutes`` of one core, CPU seconds of one epoch): runs of 1 and 2
    epochs of ``recipe`` without validation, in the process's own CPU seconds (so a busy
    machine does not shrink the row); their difference is one epoch, the rest the fixed cost
    (start-up, the final evaluation and plots), which a 1-epoch probe alone counted as epoch
    time (session 13: rows sized so used 57-64% of their budget). A 1.1x margin on the epochs
    covers the real run's validations."""
    cpu = []
    for n in (1, 2):
        p = start_ours(data, folder / f"probe{n}", replace(recipe, val_every_epochs=None), n, amp=amp)
        p.wait()
        cpu.append(json.loads((folder / f"probe{n}" / "summary.json").read_text())["train_cpu_s"])
    per_epoch = max(cpu[1] - cpu[0], 0.25 * cpu[0])  # a noisy difference never below a quarter of the probe
    fixed = max(cpu[0] - per_epoch, 0.0)
    return max(2, int((minutes * 60 - fixed) / (per_epoch * 1.1))), per_epoch


def ablation_row(name: str, recipe, args) -> dict:
    """One ablation row: size its epochs to ``--minutes`` (or take ``--epochs``), train, and
    return rc, CPU and wall seconds of the training process (the probe not counted)."""
    folder = Path(args.out) / slug(name)
    epochs, per_epoch = (args.epochs, None) if args.epochs else probe_epochs_of(recipe, args.data, folder, args.minutes,
                                                                                args.amp)
    started = time.time()
    p = start_ours(args.data, folder, recipe, epochs, amp=args.amp)
    _, status, ru = os.wait4(p.pid, 0)
    return {"rc": os.waitstatus_to_exitcode(status), "cpu": ru.ru_utime + ru.ru_stime, "wall": time.time() - started,
            "epochs": epochs, "probe_cpu_s_per_epoch": per_epoch, "amp": args.amp, "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))}


def ablation(args) -> None:
    """Run the rows of ``--rows`` not already done (in ``ablation.json``) ``--jobs`` at a time,
    each sized to the same CPU time (``--minutes`` of one core) by probes of 1 and 2 epochs of its own recipe: a
    resumable table that several sessions can fill. ``table`` writes each row's scores into
    ``ablation.json``, so that file alone (kept in ``benchmarks/results/``) carries the table: copy
    it to a new ``--out`` to go on with the rows not run."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "ablation.json"
    budget = {"minutes": None if args.epochs else args.minutes, "epochs": args.epochs, "amp": args.amp}
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {**budget, "runs": {}}
    if {k: meta.get(k, False if k == "amp" else None) for k in budget} != budget:  # tables before --amp: fp32
        sys.exit(f"{meta_path}: holds a table for {meta.get('minutes')} minutes / {meta.get('epochs')} epochs"
                 f"{' under --amp' if meta.get('amp') else ''}, not {budget['minutes']} / {budget['epochs']}"
                 f"{' under --amp' if args.amp else ''}: use another --out")
    rows = list(ablation_recipes().items())
    wanted = range(1, len(rows) + 1) if args.rows == "all" else [int(r) for r in args.rows.split(",")]
    todo = [rows[i - 1] for i in wanted
            if args.redo or meta["runs"].get(rows[i - 1][0], {}).get("rc") != 0]
    print(f"ablation: {len(todo)} row(s) to run, {args.jobs} at a time:", ", ".join(n for n, _ in todo), flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(ablation_row, name, recipe, args): name for name, recipe in todo}
        for future in as_completed(futures):
            meta["runs"][futures[future]] = future.result()
            meta_path.write_text(json.dumps(meta, indent=1))  # after every row: a stop loses the running rows only
            print(f"done: {futures[future]}", flush=True)
    table(argparse.Namespace(out=str(out), data=args.data, yolo_python=args.yolo_python))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:40]


def machine() -> str:
    return f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start"


def evaluate_run(kind: str, folder: Path, data: Path, yolo_python: str) -> dict:
    cache = folder / "scores.json"
    if cache.exists():
        return json.loads(cache.read_text())
    val_json = data / "val.json"
    if kind == "yolo":
        weights = folder / "train" / "weights" / "best.pt"
        if not weights.exists():
            return {}
        a = {"weights": str(weights), "val_json": str(val_json), "images": str(data / "val"), "imgsz": 192,
             "out": str(folder / "results.json")}
        subprocess.run([yolo_python, "-c", YOLO_PREDICT, json.dumps(a)], check=True, env={**os.environ, **ONE_THREAD})
        results = json.loads((folder / "results.json").read_text())
    else:
        weights = folder / "best.pt" if (folder / "best.pt").exists() else folder / "last.pt"
        if not weights.exists():  # stopped before any evaluation: the last weights (no EMA)
            return {}
        results = predict_ours(weights, data)
    s = score(results, val_json)
    cache.write_text(json.dumps(s))
    return s


def table(args) -> None:
    out, data = Path(args.out), Path(args.data)
    for meta_name in ("side.json", "ablation.json"):
        if not (out / meta_name).exists():
            continue
        meta = json.loads((out / meta_name).read_text())
        amp = ", ours under --amp (bf16 autocast)" if meta.get("amp") else ""
        if meta_name == "side.json":
            length = f"{meta['epochs']} epochs" if meta.get("epochs") else f"--time {meta.get('minutes')} minutes"
            print(f"\n{meta_name}: {meta.get('date')}, {meta.get('machine')}, {length} of ours, seed {meta.get('seed', 0)}{amp}")
        else:
            print(f"\n{meta_name}: " + (f"{meta['minutes']} CPU minutes a row (epochs from probes of 1 and 2 epochs of each recipe)"
                                         if meta.get("minutes") else f"{meta.get('epochs')} epochs a row") + amp)
        print("| run | epochs | CPU s | wall s | mask AP | AP50 | box AP | AP50 | dets/img >= 0.05 | dets/img >= 0.5 "
              "| precision >= 0.5 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        order = list(ablation_recipes()) if meta_name == "ablation.json" else list(meta["runs"])
        for name, run in sorted(meta["runs"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
            if isinstance(run, dict):
                rc, cpu, wall, epochs = run["rc"], run["cpu"], run["wall"], run["epochs"]
            else:  # side.json, and ablation tables of fixed --epochs written before: [rc, cpu, wall]
                (rc, cpu, wall), epochs = run, meta.get("epochs") or ""
            if not epochs and name != "yolo":  # a --time run: the epochs it reached
                epochs = f"{epochs_reached(out / name)} (--time)"
            epochs = "" if name == "yolo" else epochs
            folder = out / (name if meta_name == "side.json" else slug(name))
            # an interrupted run (SIGINT: last.pt saved, rc != 0) is scored on its best.pt so far;
            # an ablation row keeps its scores in ablation.json, which then stands without its folders
            s = (run.get("scores") if isinstance(run, dict) else None) or \
                evaluate_run("yolo" if name == "yolo" else "ours", folder, data, args.yolo_python)
            if meta_name == "ablation.json" and s and isinstance(run, dict) and "scores" not in run:
                run["scores"] = s
                (out / meta_name).write_text(json.dumps(meta, indent=1))
            if not s:
                print(f"| {name} | {epochs} | {cpu:.0f} | {wall:.0f} | failed (rc {rc}) | | | | | | |")
                continue
            label = name if rc == 0 else f"{name} (stopped at {last_iteration(folder)} it.)"
            print(f"| {label} | {epochs} | {cpu:.0f} | {wall:.0f} | {s['mask_ap']:.3f} | {s['mask_ap50']:.3f} | {s['box_ap']:.3f} | "
                  f"{s['box_ap50']:.3f} | {s['dets_per_image_005']:.1f} | {s['dets_per_image_05']:.1f} | "
                  f"{s['precision_05']:.2f} |")
        if meta_name == "side.json":
            for name in ("fast", "original"):
                if (out / name / "metrics.jsonl").exists():
                    print(f"{name} curve (iteration, epoch, mask AP, box AP):",
                          [(i, e, round(m, 3), round(b, 3)) for i, e, m, b in curve_ours(out / name)])
            print("yolo curve (epoch, mask AP, box AP):", [(e, round(m, 3), round(b, 3)) for e, m, b in curve_yolo(out / "yolo")])
            plot_curves(out, meta)


def plot_curves(out: Path, meta: dict) -> None:
    """``curves.png``: val mask and box AP of every run against its CPU seconds (a run's CPU
    seconds spread evenly over its iterations or epochs), so runs of different speed compare at
    equal compute. Each side's own validation: ours pycocotools on val.json, YOLO its own metric
    on its converted labels (rings filled)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, (rc, cpu, wall) in meta["runs"].items():
        if name == "yolo":
            pts = curve_yolo(out / "yolo")
            last = max((e for e, _, _ in pts), default=1)
            xs, ms, bs = [e / last * cpu for e, _, _ in pts], [m for _, m, _ in pts], [b for _, _, b in pts]
            label = "YOLO26n-seg (its own val metric)"
        else:
            pts = curve_ours(out / name)
            last = max((i for i, *_ in pts), default=1)
            xs, ms, bs = [i / last * cpu for i, *_ in pts], [m for *_, m, _ in pts], [b for *_, b in pts]
            label = f"yolact_resnet18_slim --recipe {name}"
        axes[0].plot(xs, ms, label=label)
        axes[1].plot(xs, bs, label=label)
    for ax, what in zip(axes, ("mask AP", "box AP")):
        ax.set_xlabel("CPU seconds (one thread)")
        ax.set_title(f"val {what}, {meta.get('minutes')} minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AP (0.5:0.95)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)
    print(f"curves: {out / 'curves.png'}")


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "_run":
        run_ours(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["side", "ablation", "table"])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--probe", action="store_true", help="side: size ours from probes (epochs), not with --time")
    ap.add_argument("--jobs", type=int, default=2, help="ablation: rows at a time (one core each)")
    ap.add_argument("--rows", default="all", help="ablation: row numbers to run, e.g. 1,4,10 (done rows are skipped)")
    ap.add_argument("--redo", action="store_true", help="ablation: run the chosen rows again even if done")
    ap.add_argument("--runs", default="fast,original,yolo",
                    help="side: which of fast, original, yolo to run (one core each: on 2 cores, two of them)")
    ap.add_argument("--amp", action="store_true", help="ours with mixed precision (bf16 autocast on the CPU; "
                    "YOLO stays fp32, as Ultralytics trains on a CPU); an ablation table under --amp is its own --out")
    ap.add_argument("--seed", type=int, default=0, help="side: the seed of every run (ours and YOLO's), for a second sample")
    ap.add_argument("--yolo-python", default=YOLO_PYTHON)
    args = ap.parse_args(argv)
    {"side": side, "ablation": ablation, "table": table}[args.mode](args)


if __name__ == "__main__":
    main()
