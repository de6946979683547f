import numpy as np
import pytest
import torch

from yolact.checkpoint import save_checkpoint
from yolact.cli import main
from yolact.errors import YolactError
from yolact.compat import set_precision
from yolact.deploy.timing import gemm_rate, stage_times
from yolact.model.flops import count_flops
from yolact.model.fuse import fold_batchnorm
from yolact.deploy.onnx import OnnxPredictor as OnnxModel, export_onnx

from conftest import make_tiny_model

ort = pytest.importorskip("onnxruntime")


def mask_ious(a, b):
    out = []
    for x, y in zip(a, b):
        union = (x | y).sum()
        out.append(1.0 if union == 0 else (x & y).sum() / union)
    return np.array(out)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(5)
    img = (rng.random((90, 120, 3)) * 255).astype(np.uint8)
    img[20:70, 30:100] = (30, 160, 220)
    return img


@pytest.mark.parametrize("post", [False, True])
def test_onnxruntime_matches_pytorch(tmp_path, image, post):
    model = make_tiny_model()
    ref = model.predict(image, score_threshold=0.0)
    path = export_onnx(make_tiny_model(), tmp_path / "m.onnx", include_postprocess=post, dynamic_batch=not post)
    om = OnnxModel(path)
    got = om.predict(image, score_threshold=0.0)
    assert len(got) == len(ref) > 0
    assert np.array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.box_scores, ref.box_scores, atol=1e-4)
    assert np.abs(got.boxes - ref.boxes).max() <= 1
    assert mask_ious(got.masks, ref.masks).min() >= 0.98
    if not post:  # dynamic batch: two images in one run
        both = om.predict([image, image[::-1].copy()], score_threshold=0.0)
        assert len(both) == 2 and np.array_equal(both[0].labels, ref.labels)


def test_onnx_graph_outputs_documented_names(tmp_path):
    import onnx
    path = export_onnx(make_tiny_model(), tmp_path / "p.onnx", include_postprocess=True)
    g = onnx.load(str(path)).graph
    assert [o.name for o in g.output] == ["det_boxes", "det_scores", "det_classes", "det_box_scores", "det_masks"]
    assert [i.name for i in g.input] == ["images"]


def test_fold_batchnorm_keeps_outputs(image):
    model = make_tiny_model()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        before = model(x)
        n = fold_batchnorm(model)
        after = model(x)
    assert n > 10
    assert torch.allclose(before.conf, after.conf, atol=1e-4) and torch.allclose(before.proto, after.proto, atol=1e-3)


def test_bf16_close_to_fp32(image):
    ref = make_tiny_model().predict(image, score_threshold=0.2)
    fast = set_precision(make_tiny_model(), "bf16").predict(image, score_threshold=0.2)
    assert fast.masks.shape[1:] == ref.masks.shape[1:]
    # same leading detections; masks agree closely
    k = min(5, len(ref), len(fast))
    assert k > 0 and np.array_equal(fast.labels[:k], ref.labels[:k])
    assert mask_ious(fast.masks[:k], ref.masks[:k]).mean() > 0.8


def test_stage_times_and_flops(image):
    model = make_tiny_model()
    st = stage_times(model, image)
    assert set(st) == {"preprocess", "backbone", "fpn", "protonet", "heads", "nms", "masks"}
    assert all(v >= 0 for v in st.values())
    flops = count_flops(model)
    assert flops > 1e8
    assert gemm_rate(n=256, repeats=2) > 1e8


def test_export_and_benchmark_cli(tmp_path, image, capsys):
    w = tmp_path / "w.pt"
    save_checkpoint(w, make_tiny_model())
    assert main(["export", "-w", str(w), "--out", str(tmp_path / "m.onnx"), "--include-postprocess"]) == 0
    assert (tmp_path / "m.onnx").exists()
    assert main(["benchmark", "-w", str(w), "--repeats", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "end-to-end median" in out and "backbone" in out and "floor" in out
    assert main(["benchmark", "-w", str(tmp_path / "m.onnx"), "--backend", "onnxruntime", "--repeats", "2"]) == 0
    assert "end-to-end" in capsys.readouterr().out


def test_int8_onnx_runs_and_stays_close(tmp_path, image):
    from yolact.deploy.onnx import quantize_onnx
    model = make_tiny_model()
    ref = model.predict(image, score_threshold=0.0)
    path = export_onnx(make_tiny_model(), tmp_path / "m.onnx", dynamic_batch=True)
    calib = [torch.from_numpy(np.ascontiguousarray(np.resize(image, (128, 128, 3)))).float().permute(2, 0, 1)[None].numpy()]
    q = quantize_onnx(path, tmp_path / "q.onnx", calib)
    got = OnnxModel(q).predict(image, score_threshold=0.0)
    assert len(got) > 0 and got.masks.shape[1:] == ref.masks.shape[1:]
    # int8 on random weights: scores stay in the same range as fp32
    assert abs(float(got.box_scores.max()) - float(ref.box_scores.max())) < 0.2


@pytest.mark.slow
def test_torch_compile_matches_eager():
    from yolact.compat import compile_model

    model = make_tiny_model().eval()
    x = torch.rand(1, 3, model.cfg.max_size, model.cfg.max_size)
    with torch.no_grad():
        ref = model(x)
        compile_model(model)
        out = model(x)
    for a, b in zip(ref[:4], out[:4]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_compile_mode_is_checked():
    from yolact.compat import compile_model

    with pytest.raises(YolactError, match="compile mode"):
        compile_model(make_tiny_model(), "fastest")


def test_fp32_fused_keeps_detections():
    import yolact
    from yolact.data.synth import make_image

    img, _ = make_image(np.random.default_rng(3), 240, 320)
    ref = yolact.load(yolact.demo_weights_path()).predict(img, score_threshold=0.05)
    fused = yolact.load(yolact.demo_weights_path(), precision="fp32-fused")
    assert fused.precision == "fp32-fused" and fused.backbone.conv1.bias is not None  # BN folded
    got = fused.predict(img, score_threshold=0.05)
    assert len(got) == len(ref) > 0
    assert np.array_equal(got.labels, ref.labels) and np.array_equal(got.boxes, ref.boxes)
    np.testing.assert_allclose(got.box_scores, ref.box_scores, atol=1e-5)
    assert mask_ious(got.masks, ref.masks).min() >= 0.99


def test_unknown_precision_is_one_line_error():
    with pytest.raises(YolactError, match="unknown precision 'fp64'"):
        set_precision(make_tiny_model(), "fp64")
    # an empty string is not "the default" (None is): it is refused as any other unknown name
    import yolact

    with pytest.raises(YolactError, match="unknown precision ''"):
        yolact.load(yolact.demo_weights_path(), precision="")
