"""Training step side by side with the original implementation (github.com/dbolya/yolact).

    git clone https://github.com/dbolya/yolact /path/to/original
    python benchmarks/train_vs_original.py --original /path/to/original [--samples 4000]

Nothing of the original is imported by the package or shipped with it; this script only runs a
checkout the user points it at, with the CPU shims of ``vs_original.py`` (plus a stub for
``torchvision.transforms``, which the original's augmentation module imports and never uses,
and its random-crop modes as a numpy object array, which NumPy >= 1.24 needs for
``np.random.choice``; the draw is the same).

Three comparisons, each printed as a markdown table:

1. **Loss.** The same prediction tensors and targets (a crowded 550 px image: a few hundred
   positives, one crowd region) go through the original's ``MultiBoxLoss`` and ours, each after
   ``torch.manual_seed(seed)`` so both draw the same ``masks_to_train`` subset from the global
   RNG. Every loss term and the gradient with respect to every prediction tensor (and, for
   YOLACT++, the mask re-scoring net's weights) are compared.
2. **Augmentation, sample by sample.** The original's ``SSDAugmentation`` after
   ``np.random.seed(s)`` against ours with ``np.random.RandomState(s)``: image, masks, boxes,
   labels and crowd count must be equal.
3. **Augmentation, distributions.** Each pipeline with its own seeds over ``--samples`` draws of a
   scene with a large object, a 3x3 px object and a crowd region: per-object survival, crowd
   survival, box geometry, mask fill, brightness and contrast.
"""
from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_original import shim_original_for_cpu  # noqa: E402

from yolact.config import get_config  # noqa: E402
from yolact.data import augment  # noqa: E402
from yolact.data.coco import to_tensors  # noqa: E402
from yolact.loss import YolactCriterion  # noqa: E402
from yolact.model.heads import MaskIoUNet  # noqa: E402
from yolact.model.yolact import HeadOutputs  # noqa: E402
from yolact.ops.priors import make_priors  # noqa: E402


def import_original(root: Path):
    shim_original_for_cpu()
    if "torchvision.transforms" not in sys.modules:
        tv = sys.modules.get("torchvision") or types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tv.transforms
    sys.path.append(str(root))  # appended: the original's yolact.py must not shadow our package
    from data.config import MEANS, cfg, set_cfg
    from layers.modules.multibox_loss import MultiBoxLoss
    from utils.augmentations import RandomSampleCrop, SSDAugmentation
    # numpy >= 1.24 refuses np.random.choice over the original's ragged tuple of crop modes; an
    # object array of the same six options draws the same single randint(0, 6) as old numpy did.
    init = RandomSampleCrop.__init__

    def init_with_object_modes(self):
        init(self)
        modes = np.empty(len(self.sample_options), dtype=object)
        modes[:] = list(self.sample_options)
        self.sample_options = modes

    RandomSampleCrop.__init__ = init_with_object_modes
    return types.SimpleNamespace(cfg=cfg, set_cfg=set_cfg, MultiBoxLoss=MultiBoxLoss,
                                 SSDAugmentation=SSDAugmentation, MEANS=MEANS)


# ---------------------------------------------------------------------------------- loss
def crowded_scene(rng: np.random.Generator, size: int, n: int, classes: int):
    """n objects (ellipses of 30..300 px) and one crowd box; relative boxes and full-size masks."""
    boxes, masks, labels = [], [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(n):
        w, h = rng.uniform(30, 300, 2)
        cx, cy = rng.uniform(w / 2, size - w / 2), rng.uniform(h / 2, size - h / 2)
        m = (((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1).astype(np.float32)
        ys, xs = np.nonzero(m)
        boxes.append([xs.min() / size, ys.min() / size, (xs.max() + 1) / size, (ys.max() + 1) / size])
        masks.append(m)
        labels.append(int(rng.integers(0, classes)))
    boxes.append([0.05, 0.6, 0.35, 0.95])  # the crowd region, last
    crowd = np.zeros((size, size), np.float32)
    crowd[int(0.6 * size):int(0.95 * size), int(0.05 * size):int(0.35 * size)] = 1
    masks.append(crowd)
    labels.append(-1)
    return (torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), torch.from_numpy(np.stack(masks)))


def compare_loss(orig, name: str, seed: int = 0) -> list:
    cfg = get_config(name)
    orig.set_cfg(name + "_config")
    size = cfg.max_size
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    levels = [(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)]
    priors = make_priors(cfg, levels)
    p, k, c = priors.shape[0], cfg.mask_dim, cfg.num_classes
    boxes, labels, masks = crowded_scene(rng, size, 30, c)
    tensors = {
        "loc": 0.5 * torch.randn(1, p, 4),
        "conf": torch.randn(1, p, c + 1),
        "coef": torch.tanh(torch.randn(1, p, k)),
        "proto": torch.relu(torch.randn(1, 138, 138, k)),
        "segm": torch.randn(1, c, 69, 69),
    }
    maskiou_net = MaskIoUNet(c) if cfg.use_maskiou else None

    def leaves():
        return {key: v.clone().requires_grad_(True) for key, v in tensors.items()}

    # the original
    t = leaves()
    preds = {"loc": t["loc"], "conf": t["conf"], "mask": t["coef"], "priors": priors, "proto": t["proto"],
             "segm": t["segm"]}
    crit = orig.MultiBoxLoss(orig.cfg.num_classes, orig.cfg.positive_iou_threshold,
                             orig.cfg.negative_iou_threshold, orig.cfg.ohem_negpos_ratio)
    target = torch.cat([boxes, labels[:, None].float()], 1)
    torch.manual_seed(seed + 1)
    theirs = crit(types.SimpleNamespace(maskiou_net=maskiou_net), preds, [target], [masks.clone()], [1])
    sum(theirs.values()).backward()
    g_theirs = {key: v.grad.clone() for key, v in t.items()}
    if maskiou_net is not None:
        g_theirs["maskiou_net"] = torch.cat([q.grad.flatten() for q in maskiou_net.parameters()])
        maskiou_net.zero_grad(set_to_none=True)
    # ours
    t = leaves()
    out = HeadOutputs(t["loc"], t["conf"], t["coef"], t["proto"], priors, t["segm"])
    targets = [{"boxes": boxes, "labels": labels.clamp(min=0), "masks": masks, "num_crowds": 1}]
    torch.manual_seed(seed + 1)
    ours = YolactCriterion(cfg)(out, targets, maskiou_net)
    ours["total"].backward()
    g_ours = {key: v.grad.clone() for key, v in t.items()}
    if maskiou_net is not None:
        g_ours["maskiou_net"] = torch.cat([q.grad.flatten() for q in maskiou_net.parameters()])
    rows = []
    keys = {"B": "box", "C": "conf", "M": "mask", "S": "semantic", "I": "maskiou"}
    for ok, mk in keys.items():
        if ok in theirs or mk in ours:
            a = float(theirs[ok].detach()) if ok in theirs else float("nan")
            b = float(ours[mk].detach()) if mk in ours else float("nan")
            rows.append((name, f"loss {mk}", a, b, abs(a - b) / max(abs(a), 1e-12)))
    for key in g_theirs:
        a, b = g_theirs[key], g_ours[key]
        rel = float((a - b).norm() / a.norm().clamp(min=1e-12))
        rows.append((name, f"grad {key}", float(a.norm()), float(b.norm()), rel))
    return rows


# ---------------------------------------------------------------------------- augmentation
def scene(seed: int = 0):
    """640x480 BGR image: a large object (label 0), a 3x3 px object (label 1), two medium ones
    (labels 2, 3) and a crowd region (last)."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    specs = [(100, 80, 400, 330), (500, 60, 503, 63), (420, 300, 520, 420), (40, 380, 120, 460)]
    crowd = (200, 340, 330, 470)
    masks = np.zeros((len(specs) + 1, h, w), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(specs + [crowd]):
        masks[i, y1:y2, x1:x2] = 1
    boxes = np.array(specs + [crowd], np.float64)
    labels = np.array([0, 1, 2, 3, -1])
    return img, masks, boxes, labels


def original_augment(orig, aug, img, masks, boxes_abs, labels, seed):
    h, w = img.shape[:2]
    np.random.seed(seed)
    rel = boxes_abs / np.array([w, h, w, h])
    out_img, out_masks, out_boxes, lab = aug(img.copy(), masks.copy(), rel.copy(),
                                             {"num_crowds": int((labels < 0).sum()), "labels": labels.copy()})
    return out_img, out_masks, out_boxes, lab["labels"], int(lab["num_crowds"])


def ours_augment(cfg, img, masks, boxes_abs, labels, seed):
    n_crowd = int((labels < 0).sum())
    h, w = img.shape[:2]
    scale = np.array([w, h, w, h], np.float64)
    s = augment.Sample(img, masks.copy(), boxes_abs / scale * scale, labels.copy(), n_crowd)  # as CocoDataset
    image, target = to_tensors(augment.train_transform(s, cfg, np.random.RandomState(seed)), cfg)
    return (image.permute(1, 2, 0).numpy(), target["masks"].numpy(), target["boxes"].numpy(),
            target["labels"].numpy(), int(target["num_crowds"]))


def compare_samples(orig, cfg, n: int) -> dict:
    orig.set_cfg(cfg.name + "_config")
    aug = orig.SSDAugmentation(orig.MEANS)
    img, masks, boxes, labels = scene()
    equal = 0
    worst = 0.0
    for s in range(n):
        a = original_augment(orig, aug, img, masks, boxes, labels, s)
        b = ours_augment(cfg, img, masks, boxes, labels, s)
        same = (a[1].shape == b[1].shape and np.array_equal(a[1], b[1]) and a[2].shape == b[2].shape
                and np.allclose(a[2], b[2], atol=1e-6) and np.array_equal(a[3], b[3]) and a[4] == b[4])
        if same:
            worst = max(worst, float(np.abs(a[0] - b[0]).max()))
        equal += same
    return {"samples": n, "identical geometry": equal, "max image difference": worst}


def summarise(output) -> tuple:
    """What the statistics need of one augmented sample (keeping whole samples would take GBs)."""
    image, masks, boxes, labels, n_crowd = output
    labels = list(labels)
    big = labels.index(0) if 0 in labels else None
    return (set(labels), n_crowd, None if big is None else boxes[big].copy(),
            None if big is None else float(masks[big].mean()), float(image.mean()), float(image.std()))


def survival_stats(summaries) -> dict:
    n = len(summaries)
    stats = {}
    for lab, name in ((0, "large object"), (1, "3x3 px object"), (2, "medium object")):
        stats[f"{name} survives"] = sum(lab in o[0] for o in summaries) / n
    stats["crowd survives"] = sum(o[1] > 0 for o in summaries) / n
    big = [o[2] for o in summaries if o[2] is not None]
    stats["large box w (rel)"] = float(np.mean([b[2] - b[0] for b in big]))
    stats["large box h (rel)"] = float(np.mean([b[3] - b[1] for b in big]))
    stats["large mask fill"] = float(np.mean([o[3] for o in summaries if o[3] is not None]))
    stats["image mean"] = float(np.mean([o[4] for o in summaries]))
    stats["image std"] = float(np.mean([o[5] for o in summaries]))
    return stats


def compare_distributions(orig, cfg, n: int) -> dict:
    orig.set_cfg(cfg.name + "_config")
    aug = orig.SSDAugmentation(orig.MEANS)
    img, masks, boxes, labels = scene()
    theirs = survival_stats([summarise(original_augment(orig, aug, img, masks, boxes, labels, 10_000 + s))
                             for s in range(n)])
    ours = survival_stats([summarise(ours_augment(cfg, img, masks, boxes, labels, 20_000 + s)) for s in range(n)])
    return {k: (theirs[k], ours[k]) for k in theirs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--original", required=True, type=Path, help="a checkout of github.com/dbolya/yolact")
    ap.add_argument("--samples", type=int, default=4000, help="augmentation draws per pipeline")
    ap.add_argument("--exact-samples", type=int, default=300, help="seeds compared sample by sample")
    args = ap.parse_args()
    orig = import_original(args.original)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    print("## Loss and gradients on a crowded image\n")
    print("| config | quantity | original | ours | relative difference |\n|---|---|---|---|---|")
    for name in ("yolact_base", "yolact_plus_base"):
        for row in compare_loss(orig, name):
            print(f"| {row[0]} | {row[1]} | {row[2]:.6g} | {row[3]:.6g} | {row[4]:.2e} |")

    cfg = get_config("yolact_base")
    print("\n## Augmentation, same seed, sample by sample\n")
    res = compare_samples(orig, cfg, args.exact_samples)
    print(" | ".join(f"{k}: {v}" for k, v in res.items()))

    print(f"\n## Augmentation distributions ({args.samples} draws each)\n")
    print("| statistic | original | ours |\n|---|---|---|")
    for k, (a, b) in compare_distributions(orig, cfg, args.samples).items():
        print(f"| {k} | {a:.4f} | {b:.4f} |")


if __name__ == "__main__":
    main()
