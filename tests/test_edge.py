"""Edge formats against PyTorch: an ExecuTorch program (.pte, XNNPACK) and a LiteRT model
(.tflite), each with the whole pipeline inside (NMS and masks: the default), and an NCNN model
folder (pnnx, core graph) of the tiny model give the same detections as the fp32 PyTorch predictor;
``yolact.load`` and ``yolact export --format executorch|litert|ncnn`` reach them through the formats
table; what they cannot do is refused in one line. Each format's tests skip without its extra."""
from types import SimpleNamespace

import numpy as np
import pytest

import yolact  # noqa: E402
from yolact.checkpoint import save_checkpoint  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.data.synth import make_image  # noqa: E402
from yolact.deploy.executorch import export_executorch, export_executorch_file  # noqa: E402
from yolact.deploy.litert import export_litert, export_litert_file  # noqa: E402
from yolact.deploy.ncnn import export_ncnn, export_ncnn_file  # noqa: E402
from yolact.deploy.coreml import export_coreml_file  # noqa: E402
from yolact.errors import YolactError  # noqa: E402
from yolact.formats import format_for  # noqa: E402

from conftest import make_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model()


# format -> (modules its extra brings, export function, suffix)
FORMATS = {
    "executorch": (("executorch.runtime",), export_executorch, ".pte", "executorch"),
    "litert": (("litert_torch", "ai_edge_litert.interpreter"), export_litert, ".tflite", "litert"),
    "ncnn": (("pnnx", "ncnn"), export_ncnn, "_ncnn", "ncnn"),  # a folder (tests/test_ncnn.py: its own checks)
}


def need(fmt):
    for module in FORMATS[fmt][0]:
        pytest.importorskip(module, reason=f"needs the {fmt} extra: pip install 'yolact[{FORMATS[fmt][3]}]'")


@pytest.fixture(scope="module", params=list(FORMATS))
def exported(request, tiny, tmp_path_factory):
    """(format, path of the tiny model exported in it)."""
    fmt = request.param
    need(fmt)
    _, export, suffix, _ = FORMATS[fmt]
    return fmt, export(tiny, tmp_path_factory.mktemp(fmt) / f"tiny{suffix}")


def mask_ious(a, b):
    """Per detection, IoU of two binary masks [D, H, W]; two empty masks agree (1.0)."""
    inter = (a & b).sum((1, 2))
    union = (a | b).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def assert_same(want, got):
    """Same detections: the same count and classes, each PyTorch detection matched by one of the
    program's of the same class with its box within 1.5 px and its score within 1e-3 (near-equal
    scores may swap places), and the matched masks' IoU 0.97 or more on average."""
    assert len(got) == len(want)
    assert sorted(got.labels.tolist()) == sorted(want.labels.tolist())
    if not len(want):
        return
    diff = np.abs(want.boxes[:, None, :] - got.boxes[None, :, :]).max(-1)  # [D_want, D_got] px
    diff[want.labels[:, None] != got.labels[None, :]] = np.inf
    match = diff.argmin(1)
    assert diff[np.arange(len(want)), match].max() <= 1.5
    np.testing.assert_allclose(got.scores[match], want.scores, atol=1e-3)
    assert mask_ious(got.masks[match], want.masks).mean() >= 0.97


def assert_raw_outputs(tiny, model):
    """The file's raw outputs against the PyTorch graph it was made from, on the same input: the
    whole pipeline's (EDGE_OUTPUTS: same count and labels, boxes, scores and masks within
    rounding) or the core graph's (boxes, scores, coefs, prototypes)."""
    import torch
    from yolact.deploy.graph import EDGE_OUTPUTS, CoreGraph, GraphPredictor, edge_graph, export_copy
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    got = model.run_each(x)[0]
    with torch.no_grad():
        if model.edge_outputs:
            want = [t.numpy() for t in edge_graph(tiny, None)[0](torch.from_numpy(GraphPredictor.edge_input(x[0])))]
            names = EDGE_OUTPUTS
            assert want[-1][0] > 0 and got[-1].tolist() == want[-1].tolist()  # count
            assert got[3].dtype == np.int32 and got[3].tolist() == want[3].tolist()  # labels
        else:
            want = [t[0].numpy() for t in CoreGraph(export_copy(tiny, None), 128)(torch.from_numpy(x))]
            names = ("boxes", "scores", "coefs", "proto")
    for name, w, g in zip(names, want, got):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, atol=1e-3, rtol=1e-3, err_msg=name)


def test_matches_pytorch(tiny, exported):
    fmt, path = exported
    et = yolact.load(path)
    assert et.backend == fmt and et.precision == "fp32"
    assert et.cfg.to_dict() == tiny.cfg.to_dict()  # the config travels inside the .pte
    rng = np.random.default_rng(28)
    # at the model's size: the whole pipeline's uint8 input is then exactly PyTorch's (another size
    # is resized on the host and rounded to uint8, which this chaotic random model notices)
    images = [make_image(rng, 128, 128, style="simple", max_objects=4)[0] for _ in range(8)]
    images.append(np.zeros((128, 128, 3), np.uint8))  # blank: whatever PyTorch finds, the program finds
    n = 0
    for img in images:
        want, got = tiny.predict(img, score_threshold=0.3), et.predict(img, score_threshold=0.3)
        assert_same(want, got)
        n += len(want)
    assert n > 0  # the comparison had detections to compare
    assert_raw_outputs(tiny, et)
    # several images at once (one batch-1 run each): the same answers, in order
    for img, r in zip(images[:3], et.predict(images[:3], score_threshold=0.3)):
        assert r.labels.tolist() == tiny.predict(img, score_threshold=0.3).labels.tolist()
    # prediction controls that run on the host: top_k, classes
    want, got = tiny.predict(images[0], top_k=3, classes=[1]), et.predict(images[0], top_k=3, classes=[1])
    assert_same(want, got)


def test_load_by_suffix(exported, bgr_image):
    fmt, pte = exported
    assert format_for(pte).name == fmt
    model = yolact.load(pte)
    assert model.backend == fmt
    r = model.predict(bgr_image)
    assert r.masks.shape[1:] == bgr_image.shape[:2]
    with pytest.raises(YolactError, match="runs fp32"):
        yolact.load(pte, precision="bf16")
    with pytest.raises(YolactError, match="--compile"):
        yolact.load(pte, compile="default")
    with pytest.raises(YolactError, match="exported at 128 px"):
        model.predict(bgr_image, img_size=160)


def test_controls_the_file_cannot_honour(exported, bgr_image, capsys):
    """The whole pipeline's NMS is inside: other NMS settings and prototypes are refused in one
    line; more detections than its K are said once (as for ONNX post-processing graphs)."""
    fmt, path = exported
    model = yolact.load(path)
    if fmt == "ncnn":  # NCNN keeps NMS and masks on the host: every control works
        assert not model.edge_outputs and model.predict(bgr_image, nms="classic", iou=0.3) is not None
        return
    assert model.edge_outputs
    for kwargs in ({"nms": "classic"}, {"agnostic_nms": True}, {"iou": 0.3}):
        with pytest.raises(YolactError, match="Fast NMS at IoU 0.5 inside; export the core graph "
                                              r"\(--no-include-postprocess\)"):
            model.predict(bgr_image, **kwargs)
    with pytest.raises(YolactError, match="no prototypes"):
        model.predict(bgr_image, keep_proto=True)
    capsys.readouterr()
    assert len(model.predict(bgr_image, score_threshold=0.0, max_det=300)) <= 100
    model.predict(bgr_image, score_threshold=0.0, max_det=300)
    assert capsys.readouterr().err.count("keeps at most 100 detections (asked: 300)") == 1


def test_info_says_graph_k_and_precision(exported, capsys):
    """New-user report: `yolact info` of a .tflite or .pte showed no K, graph kind or precision
    (the .onnx and .mlpackage ones did): read from the file (the Interpreter's tensors, the
    ExecuTorch method metadata), as JSON and as lines."""
    import json
    import re

    fmt, path = exported
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    if fmt == "ncnn":  # its core graph: NMS on the host, no K; blob shapes from metadata.json (no batch axis)
        assert info["graph"] == "core graph" and info["max_det"] is None and info["stored"] == "fp32"
        assert info["inputs"] == {"in0": [3, 128, 128]} and info["outputs"]["out3"] == [32, 32, 32]
        return
    assert info["graph"] == "whole pipeline" and info["max_det"] == 100 and info["stored"] == "fp32"
    assert info["inputs"] == {"image": [1, 128, 128, 3]}
    assert info["outputs"]["boxes"] == [100, 4] and info["outputs"]["masks"] == [100, 32, 32]
    assert info["outputs"]["count"] == [1]
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "whole pipeline (NMS and masks inside)" in out and re.search(r"^max det +100 \(K", out, re.M)
    assert re.search(r"^stored +fp32$", out, re.M) and "masks [100, 32, 32]" in out


@pytest.mark.slow  # exports the demo model in each format: about a minute each on the shared 2-core machine
@pytest.mark.parametrize("fmt", ["executorch", "litert"])
def test_whole_pipeline_on_the_synthetic_set(fmt, tmp_path):
    """The demo model's whole-pipeline file against PyTorch on 8 images of the synthetic set at
    the model's size (so the uint8 input is exactly PyTorch's), and a blank image: 0 detections."""
    need(fmt)
    demo = yolact.load("demo")
    path = FORMATS[fmt][1](demo, tmp_path / f"demo{FORMATS[fmt][2]}", max_det=150)  # K raised, as for ONNX
    model = yolact.load(path)
    assert model.edge_outputs and model.cfg.max_num_detections == 150
    rng = np.random.default_rng(4242)
    n = 0
    for _ in range(8):
        img = make_image(rng, 192, 192, style="simple", max_objects=4)[0]
        want, got = demo.predict(img), model.predict(img)
        assert_same(want, got)
        n += len(want)
    assert n >= 8
    blank = np.zeros((192, 192, 3), np.uint8)
    assert len(demo.predict(blank)) == 0 and len(model.predict(blank)) == 0


@pytest.mark.slow  # a second export per format: about a minute each on the shared 2-core machine
@pytest.mark.parametrize("fmt", ["executorch", "litert"])
def test_core_graph_on_request(fmt, tiny, tmp_path, bgr_image):
    """--no-include-postprocess: the core graph, NMS and masks on the host (every control works)."""
    need(fmt)
    path = FORMATS[fmt][1](tiny, tmp_path / f"core{FORMATS[fmt][2]}", include_postprocess=False)
    model = yolact.load(path)
    assert not model.edge_outputs and not model.include_postprocess
    assert_raw_outputs(tiny, model)
    assert_same(tiny.predict(bgr_image, iou=0.3), model.predict(bgr_image, iou=0.3))


@pytest.mark.parametrize("fmt", ["executorch", "litert"])  # ncnn folders: tests/test_ncnn.py
def test_bad_files(tmp_path, fmt):
    need(fmt)
    suffix = FORMATS[fmt][2]
    with pytest.raises(YolactError, match="no such"):
        yolact.load(tmp_path / f"missing{suffix}")
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(b"not a program" * 10)
    with pytest.raises(YolactError, match="junk"):
        yolact.load(junk)


@pytest.mark.parametrize("flag, value", [("include_postprocess", True), ("dynamic_batch", True),
                                         ("quantize", "int8"), ("int8", "full"), ("max_det", 300)])
@pytest.mark.parametrize("export_file", [export_executorch_file, export_litert_file, export_ncnn_file,
                                         export_coreml_file])
def test_export_refuses_what_it_cannot_write(tiny, tmp_path, flag, value, export_file):
    options = dict(weights=None, out=str(tmp_path / "x.pte"), img_size=None, include_postprocess=None,
                   dynamic_batch=False, int8=None, quantize=None, max_det=None)
    if export_file in (export_litert_file, export_ncnn_file) and flag == "int8":
        value = "mixed"  # LiteRT and NCNN write --int8 (full): tests/test_litert_int8.py, test_ncnn_int8.py
    options[flag] = value
    if flag in ("include_postprocess", "max_det") and export_file is not export_ncnn_file:
        # the whole pipeline is the default there: --max-det is its K; the core graph refuses it
        if flag == "include_postprocess":
            return
        options["include_postprocess"] = False
    with pytest.raises(YolactError):
        export_file(tiny, SimpleNamespace(**options))
    assert not (tmp_path / "x.pte").exists()


@pytest.mark.slow  # a second export: about 35 s on the shared 2-core machine
def test_cli_export(tiny, tmp_path, capsys, bgr_image):
    need("executorch")
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, tiny)
    out = tmp_path / "cli.pte"
    assert main(["export", "--weights", str(weights), "--format", "executorch", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    img = np.concatenate([bgr_image, bgr_image[:32]], 0)  # 128 x 128: the file's uint8 input is PyTorch's
    assert_same(tiny.predict(img, score_threshold=0.3), yolact.load(out).predict(img, score_threshold=0.3))
    assert yolact.load(out).edge_outputs  # the whole pipeline by default
    # a flag the format cannot honour: one line, exit 2-style usage error, nothing written
    bad = tmp_path / "bad.pte"
    assert main(["export", "--weights", str(weights), "--format", "executorch", "--dynamic-batch",
                 "--out", str(bad)]) != 0
    assert "executorch" in capsys.readouterr().err
    assert not bad.exists()
