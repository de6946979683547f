"""LiteRT int8 (yolact.deploy.litert_int8): ai-edge-quantizer's static int8 of the network of an
exported ``.tflite``, calibrated on a folder of images: the convolutions really are int8, the
decoding, metadata and outputs stay float32, ``yolact.load`` runs it and says int8, the CLI
writes it with ``export --format litert --int8 --calib DIR``, and the demo model keeps its mask
AP on the synthetic val set within 3.0 points of PyTorch fp32. Skips without the litert extra."""
from types import SimpleNamespace

import numpy as np
import pytest

import yolact
from yolact.checkpoint import save_checkpoint
from yolact.cli import main
from yolact.data.synth import make_image
from yolact.deploy import litert_int8
from yolact.errors import YolactError

from conftest import assert_int8_core_graph_near, assert_mask_ap_within_3_points, demo_int8_case, make_tiny_model


def need_litert():
    for module in ("litert_torch", "ai_edge_litert.interpreter", "ai_edge_quantizer"):
        pytest.importorskip(module, reason="needs the litert extra: pip install 'yolact[litert]'")


def test_network_scope_matches_the_layers_only():
    import re
    rx = re.compile(litert_int8.network_scope(make_tiny_model(detections=False)))
    root = "yolact.deploy.litert._WithMeta"
    for name in (f"{root}/yolact.model.backbones.ResNetBackbone_backbone/torch.nn.modules.conv.Conv2d_conv1",
                 f"{root}/yolact.model.fpn.FPN_fpn;3",
                 f"{root}/torch.nn.modules.container.Sequential_proto_net/torch.nn.modules.activation.ReLU_1",
                 f"{root}/yolact.model.heads.PredictionHead_0/torch.nn.modules.conv.Conv2d_conf_layer;;x"):
        assert rx.search(name), name
    for name in (f"{root};12", "serving_default_output_0_output", f"{root}/yolact.model.postprocess.PostProcess_post;1",
                 f"{root}/yolact.model.fpn.FPN_fpnx;3"):
        assert not rx.search(name), name


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory, calib_dir):
    """(tiny model, its fp32 .tflite, the int8 one, (int8 convolutions, all convolutions))."""
    need_litert()
    from yolact.deploy.calibration import calibration_images
    from yolact.deploy.litert import export_litert
    tiny = make_tiny_model()
    d = tmp_path_factory.mktemp("litert_int8")
    # the core graph (float32 in and out), whose raw outputs can be compared with the fp32 file's
    fp32 = export_litert(tiny, d / "tiny.tflite", include_postprocess=False)
    calib = calibration_images(str(calib_dir), None, 12, tiny.cfg.max_size, progress=False)
    counts = litert_int8.quantize_litert(fp32, d / "tiny_int8.tflite", tiny, calib)
    return tiny, fp32, d / "tiny_int8.tflite", counts


def test_whole_pipeline_file_in_int8(tiny_int8, calib_dir, tmp_path):
    """The default export holds NMS and masks (uint8 image in, fixed-K rows out): the int8 file
    quantises its network only; the post-processing and the outputs stay as they were."""
    from ai_edge_litert.interpreter import Interpreter

    from yolact.deploy.calibration import calibration_images
    from yolact.deploy.litert import export_litert
    tiny = tiny_int8[0]
    full = export_litert(tiny, tmp_path / "full.tflite")
    calib = calibration_images(str(calib_dir), None, 12, tiny.cfg.max_size, progress=False)
    done, total = litert_int8.quantize_litert(full, tmp_path / "full_int8.tflite", tiny, calib)
    assert total > 10 and done == total - 1
    it = Interpreter(model_path=str(tmp_path / "full_int8.tflite"))
    assert [np.dtype(d["dtype"]) for d in it.get_input_details()] == [np.uint8]
    assert {np.dtype(d["dtype"]) for d in it.get_output_details()} <= {np.dtype(np.float32), np.dtype(np.int32)}
    model, ref = yolact.load(tmp_path / "full_int8.tflite"), yolact.load(full)
    assert model.precision == "int8" and ref.precision == "fp32"
    image = make_image(np.random.default_rng(3), 128, 128, style="simple")[0]
    got = model.predict(image)
    assert got.masks.shape[1:] == (128, 128) and len(got) <= 100
    blank = model.predict(np.zeros((128, 128, 3), np.uint8))
    assert len(blank) == len(ref.predict(np.zeros((128, 128, 3), np.uint8)))


def test_the_network_is_int8_and_the_rest_float(tiny_int8):
    tiny, fp32, int8, (done, total) = tiny_int8
    assert litert_int8.int8_convolutions(fp32) == (0, total)
    # every convolution but the last prototype layer (a graph output) is int8
    assert total > 10 and done == total - 1
    ops = litert_int8.op_dtypes(int8)
    assert ops.get(("SOFTMAX", "float32")) and ops.get(("EXP", "float32"))  # scores and box decoding
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(int8))
    assert all(np.dtype(d["dtype"]) == np.float32 for d in it.get_input_details() + it.get_output_details())


def test_load_runs_it_as_int8(tiny_int8):
    tiny, fp32, int8, _ = tiny_int8
    model = yolact.load(int8)
    assert model.backend == "litert" and model.precision == "int8"
    assert model.cfg.to_dict() == tiny.cfg.to_dict()  # the metadata output survived quantisation
    assert yolact.load(int8, precision="int8").precision == "int8"
    assert yolact.load(fp32).precision == "fp32"
    with pytest.raises(YolactError, match="an fp32 LiteRT file"):
        yolact.load(fp32, precision="int8")
    assert_int8_core_graph_near(yolact.load(fp32), model)  # int8 is not bit-equal: near, same shapes


def test_refusals(tiny_int8, tmp_path, monkeypatch):
    tiny, fp32, _, _ = tiny_int8
    from yolact.deploy.calibration import calibration_images
    wrong = calibration_images(None, None, 2, 160, progress=False)
    with pytest.raises(YolactError, match="calibration images are"):
        litert_int8.quantize_litert(fp32, tmp_path / "x.tflite", tiny, wrong)
    with pytest.raises(YolactError, match="needs calibration"):
        litert_int8.quantize_litert(fp32, tmp_path / "x.tflite", tiny, [])
    # names that match no layer: an error, not an fp32 file called int8
    monkeypatch.setattr(litert_int8, "network_scope", lambda net: "/no-such-module_(?:[/;]|$)")
    right = calibration_images(None, None, 2, 128, progress=False)
    with pytest.raises(YolactError, match="no convolution"):
        litert_int8.quantize_litert(fp32, tmp_path / "x.tflite", tiny, right)
    assert not (tmp_path / "x.tflite").exists()
    from yolact.deploy.litert import export_litert_file
    options = SimpleNamespace(weights=None, out=str(tmp_path / "m.tflite"), img_size=None, include_postprocess=False,
                              dynamic_batch=False, int8="mixed", quantize=None, max_det=None, calib=None,
                              calib_images=None, calib_count=4)
    with pytest.raises(YolactError, match="--int8 mixed"):
        export_litert_file(tiny, options)
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.slow  # a tiny export and quantisation through the CLI: 241 s, shared 2-core machine, loaded
def test_cli_export_int8(tmp_path, calib_dir, capsys):
    need_litert()
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, make_tiny_model())
    out = tmp_path / "tiny_int8.tflite"
    assert main(["export", "--weights", str(weights), "--format", "litert", "--int8", "--calib", str(calib_dir),
                 "--calib-count", "6", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"wrote {out}" in said and "int8" in said and "calibrated on 6 images" in said
    assert yolact.load(out).precision == "int8"
    assert not list(tmp_path.glob("tmp*"))  # the temporary fp32 file is gone
    # --int8 on a format without int8: one line, nothing written
    assert main(["export", "--weights", str(weights), "--format", "executorch", "--int8", "--calib", str(calib_dir),
                 "--out", str(tmp_path / "x.pte")]) != 0
    assert "--int8 applies to --format openvino, litert and ncnn only" in capsys.readouterr().err


@pytest.mark.slow  # the demo model exported, quantised and evaluated: 186 s on the shared 2-core machine under load
def test_demo_mask_ap_within_3_points(tmp_path):
    need_litert()
    from yolact.deploy.litert import export_litert
    ref, calib, ann, val = demo_int8_case(tmp_path)
    fp32 = export_litert(ref, tmp_path / "demo.tflite")
    done, total = litert_int8.quantize_litert(fp32, tmp_path / "demo_int8.tflite", ref, calib)
    assert done == total - 1
    assert_mask_ap_within_3_points(ref, yolact.load(tmp_path / "demo_int8.tflite"), ann, val)


def test_info_says_core_graph_and_precision(tiny_int8, capsys):
    """New-user report: `yolact info` of a .tflite said neither its graph nor its precision. Both
    core-graph files: 'core graph', no K (NMS on the host), fp32 or int8 read from the file's
    tensors, and the input and outputs as the Interpreter reads them."""
    import json
    import re

    from yolact.cli import main

    _, fp32, int8, _ = tiny_int8
    for path, stored in ((fp32, "fp32"), (int8, "int8")):
        assert main(["info", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["graph"] == "core graph" and info["max_det"] is None and info["stored"] == stored
        assert info["inputs"] == {"images": [1, 3, 128, 128]} and info["outputs"]["proto"][:3] == [1, 32, 32]
        assert list(info["outputs"]) == ["boxes", "scores", "coefs", "proto", "yolact_meta"]
        assert main(["info", str(path)]) == 0
        out = capsys.readouterr().out
        assert "core graph (NMS and masks on the host)" in out and re.search(rf"^stored +{stored}$", out, re.M)
        assert "max det" not in out
