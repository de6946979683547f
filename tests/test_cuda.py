"""CUDA checks. Every test here is marked ``cuda`` and skips, with the reason, where
``torch.cuda.is_available()`` is False. On a GPU machine:

    PYTHONPATH=$PWD python3 -m pytest -q -m cuda tests/test_cuda.py            # all (max-autotune compiles for minutes)
    PYTHONPATH=$PWD python3 -m pytest -q -m "cuda and not slow" tests/test_cuda.py

Accuracy is checked on the built-in demo model (trained weights, crisp masks) and generated
shapes images; fp32 comparisons run with TF32 off, since cuDNN convolutions default to TF32.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import yolact
from yolact.config import get_config
from yolact.data.synth import make_image
from yolact.compat import detect, preprocess
from yolact.model import dcn

DEVICE = "cuda"
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="no CUDA device (torch.cuda.is_available() is False)")]

SCORE_THRESHOLD = 0.3
MARGIN = 0.02  # detections this close to the threshold may fall on either side of it


@pytest.fixture
def true_fp32():
    """TF32 off for one test: cuDNN's default TF32 convolutions are not fp32. The legacy
    flags set convolutions and RNNs alike (mixing them with the new API makes reads raise)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def images():
    """Generated shapes in the style the demo model's accuracy is measured on (benchmarks/accuracy.py)."""
    rng = np.random.default_rng(7)
    return [make_image(rng, 256, 256, 4, "simple")[0] for _ in range(8)]


def demo(device, precision="fp32", compile=None):
    return yolact.load(yolact.demo_weights_path(), device=device, precision=precision, compile=compile)


@torch.no_grad()
def detections(model, image):
    """``model.predict`` at SCORE_THRESHOLD, and the same detections' boxes in float pixels
    (before Results truncates them to integers): predict keeps detect's order, and a score
    threshold keeps a prefix of it."""
    res = model.predict(image, score_threshold=SCORE_THRESHOLD)
    x = preprocess([image], model.cfg, model.device).to(getattr(model, "input_dtype", torch.float32))
    out = model(x)
    boxes = detect(out.loc[0].float(), out.conf[0].float(), out.priors.float(), model.cfg)[0][:len(res)]
    h, w = image.shape[:2]
    return res, (boxes * torch.tensor([w, h, w, h], device=boxes.device)).cpu().double().numpy()


def box_iou(a, b):
    x1, y1 = np.maximum(a[0], b[0]), np.maximum(a[1], b[1])
    x2, y2 = np.minimum(a[2], b[2]), np.minimum(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def pair(ref, ref_boxes, other, other_boxes, box_ok):
    """Greedy pairs (i, j): same label and ``box_ok(box_i, box_j)``, in ref's score order, each
    j at most once, the closest score first."""
    pairs, used = [], set()
    for i in range(len(ref)):
        cands = [j for j in range(len(other)) if j not in used and other.labels[j] == ref.labels[i]
                 and box_ok(ref_boxes[i], other_boxes[j])]
        if cands:
            j = min(cands, key=lambda j: abs(other.box_scores[j] - ref.box_scores[i]))
            used.add(j)
            pairs.append((i, j))
    return pairs


def confident(res):
    """Indices of the detections clear of the score threshold."""
    return [i for i in range(len(res)) if res.box_scores[i] > SCORE_THRESHOLD + MARGIN]


def assert_same_detections(ref_model, other_model, images, box_px=0.5, min_mask_iou=0.99, score_tol=1e-3):
    """Labels equal, boxes within ``box_px`` pixels and mask IoU >= ``min_mask_iou`` for every
    detection clear of the threshold, found in both directions."""
    total = 0
    for image in images:
        ref, ref_boxes = detections(ref_model, image)
        other, other_boxes = detections(other_model, image)

        def close(a, b):
            return np.abs(a - b).max() <= box_px

        pairs = dict(pair(ref, ref_boxes, other, other_boxes, close))
        for i in confident(ref):
            assert i in pairs, f"detection {i} (label {ref.labels[i]}, score {ref.box_scores[i]:.4f}) not found"
            j = pairs[i]
            assert abs(ref.box_scores[i] - other.box_scores[j]) <= score_tol
            assert mask_iou(ref.masks[i], other.masks[j]) >= min_mask_iou, i
        back = dict(pair(other, other_boxes, ref, ref_boxes, close))
        assert all(j in back for j in confident(other))
        total += len(confident(ref))
    assert total >= 3, "too few detections to compare: the check would be empty"


def test_fp32_on_cuda_matches_cpu(true_fp32, images):
    assert_same_detections(demo("cpu"), demo(DEVICE), images)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_masks_match_fp32(true_fp32, images, precision):
    """fp16 / bf16 (BN folded, channels-last) against fp32 on the GPU: mean mask IoU >= 0.98
    on the detections matched by label and box IoU, and most detections matched."""
    ref_model, half = demo(DEVICE), demo(DEVICE, precision)
    assert next(half.parameters()).dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    ious, wanted = [], 0
    for image in images:
        ref, ref_boxes = detections(ref_model, image)
        other, other_boxes = detections(half, image)
        pairs = dict(pair(ref, ref_boxes, other, other_boxes, lambda a, b: box_iou(a, b) >= 0.8))
        keep = [i for i in confident(ref) if ref.box_scores[i] > 0.5]
        wanted += len(keep)
        ious += [mask_iou(ref.masks[i], other.masks[pairs[i]]) for i in keep if i in pairs]
    assert wanted >= 3
    assert len(ious) >= 0.9 * wanted, f"{len(ious)} of {wanted} confident fp32 detections matched"
    assert np.mean(ious) >= 0.98, f"mean mask IoU {np.mean(ious):.4f}"


@pytest.mark.parametrize("mode", ["default", "reduce-overhead",
                                  pytest.param("max-autotune", marks=pytest.mark.slow)])
def test_compiled_and_cuda_graph_paths_equal_eager(true_fp32, images, mode):
    """torch.compile (Inductor kernels; reduce-overhead and max-autotune add CUDA graphs)
    against eager, fp32: the same detections, boxes within 0.5 px, mask IoU >= 0.99."""
    torch._dynamo.reset()
    compiled = demo(DEVICE, compile=mode)
    for _ in range(3):  # compile, warm up, record the graph: the comparison replays it
        compiled.predict(images[0])
    assert_same_detections(demo(DEVICE), compiled, images)
    torch._dynamo.reset()


def set_dcn_backend(model, backend):
    layers = [m for m in model.modules() if isinstance(m, dcn.DCNv2)]
    for m in layers:
        m.backend = backend
    return len(layers)


@pytest.mark.skipif(not dcn.torchvision_available(), reason="torchvision.ops.deform_conv2d does not import here")
def test_dcn_torchvision_equals_plain_layer():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 13, 11, generator=g, dtype=torch.float64)
    weight = torch.randn(6, 8, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(6, generator=g, dtype=torch.float64)
    for stride, pad, dil in [(1, 1, 1), (2, 1, 1), (1, 2, 2)]:
        ho = (13 + 2 * pad - 2 * dil - 1) // stride + 1
        wo = (11 + 2 * pad - 2 * dil - 1) // stride + 1
        offset = 3 * torch.randn(2, 18, ho, wo, generator=g, dtype=torch.float64)  # some taps leave the image
        mask = torch.rand(2, 9, ho, wo, generator=g, dtype=torch.float64)
        args = [t.to(DEVICE) for t in (x, offset, mask, weight, bias)]
        tv = dcn.deform_conv2d(*args, (stride, stride), (pad, pad), (dil, dil), backend="torchvision")
        plain = dcn.deform_conv2d(*args, (stride, stride), (pad, pad), (dil, dil), backend="torch")
        torch.testing.assert_close(tv, plain, rtol=0, atol=1e-10)


@pytest.mark.skipif(not dcn.torchvision_available(), reason="torchvision.ops.deform_conv2d does not import here")
def test_yolact_plus_with_torchvision_dcn_equals_plain(true_fp32):
    """The whole YOLACT++ network on the GPU, its DCN layers by torchvision or in plain PyTorch,
    with offsets and modulation made non-trivial (they start at zero)."""
    torch.manual_seed(0)
    cfg = get_config("yolact_plus_resnet50", class_names=("a", "b", "c")).replace(max_size=256)
    model = yolact.build(cfg).eval().to(DEVICE)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, dcn.DCNv2):
                m.conv_offset_mask.weight.normal_(0, 0.02)
                m.conv_offset_mask.bias.normal_(0, 0.5)
    x = torch.randn(2, 3, 256, 256, device=DEVICE)
    with torch.no_grad():
        assert set_dcn_backend(model, "torchvision") > 0
        tv = model(x)
        set_dcn_backend(model, "torch")
        plain = model(x)
    for name in ("loc", "conf", "coef", "proto"):
        a, b = getattr(tv, name), getattr(plain, name)
        scale = b.abs().max().item()
        assert (a - b).abs().max().item() <= 1e-4 * scale + 1e-6, name


def shapes_data(root):
    """A four-image synthetic training set under ``root`` (written once)."""
    from yolact.data.synth import generate

    data = Path(root) / "data"
    if not (data / "train.json").exists():
        generate(data, 4, 0, size=80, seed=1, max_objects=3)
    return data


def tiny_trainer(root, device, iters=3, batch=2, amp=True, out="run"):
    pytest.importorskip("tqdm")  # the trainer imports it; the GPU image may lack it
    from yolact.data.coco import CocoDataset
    from yolact.training import Trainer, TrainOptions

    data = shapes_data(root)
    ds = CocoDataset(data / "train.json", data / "train", train=True, verbose=False)
    cfg = get_config("yolact_resnet18", class_names=ds.class_names).replace(max_size=64, fpn_channels=32)
    ds.cfg = cfg
    opts = TrainOptions(out=str(Path(root) / out), iters=iters, batch_size=batch, device=device, amp=amp,
                        progress=False, log_interval=1, freeze_bn=True)
    return Trainer(cfg, ds, opts)


def test_training_steps_with_amp(tmp_path):
    tr = tiny_trainer(tmp_path, DEVICE)
    assert tr.scaler.is_enabled()
    before = {k: v.clone() for k, v in tr.model.state_dict().items() if v.is_floating_point()}
    summary = tr.train()
    assert summary["iterations"] == 3
    losses = [h["total"] for h in tr.history if "total" in h]
    assert losses and all(np.isfinite(losses))
    after = tr.model.state_dict()
    assert all(v.device.type == "cuda" for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed"


def test_amp_step_after_an_overflow(tmp_path):
    """An fp16 overflow is routine under AMP: GradScaler skips that step and lowers its scale.
    The trainer must then go on training (the step after must run, with a smaller scale)."""
    tr = tiny_trainer(tmp_path, DEVICE)
    images, targets = next(iter(tr._loader(0, 0)))
    scale = tr.scaler.get_scale()
    hook = tr.model.prediction_layers[0].conf_layer.bias.register_hook(lambda g: g * float("inf"))
    assert tr._step(images, targets) is None  # the overflowing step is skipped
    hook.remove()
    assert tr._step(images, targets) is not None
    assert tr.scaler.get_scale() < scale


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nccl_worker(rank, world, port, tmp, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.cuda.set_device(rank)
    torch.distributed.init_process_group("nccl", rank=rank, world_size=world)
    try:
        tr = tiny_trainer(tmp, f"cuda:{rank}", iters=1, batch=2, amp=False, out="run_ddp")
        assert tr.ddp is not None
        tr.train()
        torch.save({k: v.cpu() for k, v in tr.model.state_dict().items()}, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP across processes needs 2 GPUs; this machine has "
                                                          f"{torch.cuda.device_count()}")
def test_ddp_nccl_two_gpus_keep_replicas_equal(tmp_path):
    shapes_data(tmp_path)  # written once, before the workers read it
    mp.spawn(_nccl_worker, args=(2, _free_port(), str(tmp_path), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k


def _ddp_gradient_worker(rank, port, result_dir):
    """A one-process NCCL group: DDP's all-reduced gradients equal the plain model's."""
    from conftest import make_tiny_model
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(0)
    torch.distributed.init_process_group("nccl", rank=0, world_size=1)
    try:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.allow_tf32 = False
        model = make_tiny_model(size=64).to(DEVICE).train()
        twin = make_tiny_model(size=64).to(DEVICE).train()
        ddp = DDP(twin, device_ids=[0])
        x = torch.randn(2, 3, 64, 64, device=DEVICE)
        targets = [{"boxes": torch.tensor([[0.1, 0.1, 0.6, 0.7]], device=DEVICE),
                    "labels": torch.tensor([1], device=DEVICE),
                    "masks": (torch.rand(1, 64, 64, device=DEVICE) > 0.5).float()} for _ in range(2)]
        for net in (model, ddp):
            torch.manual_seed(1)  # the same draws, should the loss sample anything
            net(x, targets)["total"].backward()
        grads = [(a.grad, b.grad) for a, b in zip(model.parameters(), twin.parameters()) if a.grad is not None]
        assert grads and all(b is not None for _, b in grads)
        scale = max(a.abs().max().item() for a, _ in grads)
        worst = max((a - b).abs().max().item() for a, b in grads)
        Path(result_dir, "worst.txt").write_text(f"{worst / scale}")
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_nccl_one_process_gradients(tmp_path):
    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch build has no NCCL")
    mp.spawn(_ddp_gradient_worker, args=(_free_port(), str(tmp_path)), nprocs=1, join=True)
    assert float((tmp_path / "worst.txt").read_text()) <= 1e-5  # relative to the largest gradient
