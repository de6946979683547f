"""NCNN int8 (yolact.deploy.ncnn_int8): ncnn's own ncnn2table (KL calibration on a folder of
images) and ncnn2int8 on an exported NCNN folder: the convolutions really are int8, the input
and outputs stay float32, ``yolact.load`` runs it with NCNN's int8 inference and says int8, the
CLI writes it with ``export --format ncnn --int8 --calib DIR``, missing tools are one line, and
the demo model keeps its mask AP on the synthetic val set within 3.0 points of PyTorch fp32.

The tools are built by third_party/ncnn_quantize/build.sh (CI runs it before the tests); without
them the tests that need them skip, saying so."""
import json
import os
import shutil
import stat
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pnnx", reason="needs the ncnn extra: pip install 'yolact[ncnn]'")
pytest.importorskip("ncnn", reason="needs the ncnn extra: pip install 'yolact[ncnn]'")

import yolact  # noqa: E402
from yolact.checkpoint import save_checkpoint  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.deploy import ncnn_int8  # noqa: E402
from yolact.deploy.ncnn import BIN, META, PARAM, export_ncnn, export_ncnn_file  # noqa: E402
from yolact.errors import YolactError  # noqa: E402

from conftest import (assert_int8_core_graph_near, assert_mask_ap_within_3_points, demo_int8_case,  # noqa: E402
                      make_tiny_model)


def need_tools():
    try:
        ncnn_int8.find_tools()
    except YolactError as e:
        pytest.skip(f"NCNN int8 tools not built ({ncnn_int8.BUILD}): {str(e)[:120]}")


def test_build_script_and_module_agree():
    """The exporter looks where third_party/ncnn_quantize/build.sh builds (same ncnn tag)."""
    from pathlib import Path
    script = (Path(__file__).parents[1] / ncnn_int8.BUILD).read_text()
    assert f"TAG={ncnn_int8.TOOLS_TAG}" in script and 'OUT="${1:-$BASE/ncnn-tools-$TAG}"' in script
    assert ncnn_int8.tools_cache().parts[-2:] == (f"ncnn-tools-{ncnn_int8.TOOLS_TAG}", "bin")


def test_int8_layers_reads_the_scale_terms(tmp_path):
    param = tmp_path / "m.param"
    param.write_text("7767517\n5 5\nInput in0 0 1 in0\n"
                     "Convolution conv_0 1 1 in0 1 0=8 1=3 5=1 6=216 8=102 9=1\n"
                     "ConvolutionDepthWise convdw_1 1 1 1 2 0=8 1=3 6=72 7=8 8=1\n"
                     "Convolution conv_2 1 1 2 3 0=8 1=1 5=1 6=64\n"
                     "Convolution conv_3 1 1 3 out0 0=8 1=1 5=1 6=64 8=0 -23310=1,2.0\n")
    assert ncnn_int8.int8_layers(param) == (2, 4)
    param.write_text("not a param\n")
    with pytest.raises(YolactError, match="7767517"):
        ncnn_int8.int8_layers(param)


def test_missing_tools_are_one_line(tmp_path, monkeypatch, capsys):
    """No tools: export --int8 stops in one line (exit 2) naming the tools and the build script,
    before any export; an empty $YOLACT_NCNN_TOOLS is searched alone."""
    monkeypatch.setenv("YOLACT_NCNN_TOOLS", str(tmp_path / "none"))
    with pytest.raises(YolactError, match="ncnn2table and ncnn2int8 .*third_party/ncnn_quantize/build.sh"):
        ncnn_int8.find_tools()
    # one of the two present: the other is named
    (tmp_path / "half").mkdir()
    tool = tmp_path / "half" / "ncnn2int8"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("YOLACT_NCNN_TOOLS", str(tmp_path / "half"))
    with pytest.raises(YolactError, match="tools ncnn2table \\("):
        ncnn_int8.find_tools()
    monkeypatch.setenv("YOLACT_NCNN_TOOLS", str(tmp_path / "none"))
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, make_tiny_model())
    out = tmp_path / "tiny_ncnn"
    assert main(["export", "--weights", str(weights), "--format", "ncnn", "--int8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "NCNN int8 needs ncnn's C++ tools" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.part")) and not list(tmp_path.glob("tmp*"))


def test_refusals_without_the_tools(tmp_path):
    tiny = make_tiny_model()
    options = SimpleNamespace(weights=None, out=str(tmp_path / "m_ncnn"), img_size=None, include_postprocess=False,
                              dynamic_batch=False, int8="mixed", quantize=None, max_det=None, calib=None,
                              calib_images=None, calib_count=4)
    with pytest.raises(YolactError, match="--int8 mixed"):
        export_ncnn_file(tiny, options)
    assert not (tmp_path / "m_ncnn").exists()


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory, calib_dir):
    """(tiny model, its fp32 folder, the int8 one, (int8 layers, quantisable layers))."""
    need_tools()
    from yolact.deploy.calibration import calibration_images
    tiny = make_tiny_model()
    d = tmp_path_factory.mktemp("ncnn_int8")
    fp32 = export_ncnn(tiny, d / "tiny_ncnn")
    calib = calibration_images(str(calib_dir), None, 12, tiny.cfg.max_size, progress=False)
    counts = ncnn_int8.quantize_ncnn(fp32, d / "tiny_int8_ncnn", calib, progress=False)
    return tiny, fp32, d / "tiny_int8_ncnn", counts


def test_the_convolutions_are_int8(tiny_int8):
    tiny, fp32, int8, (done, total) = tiny_int8
    assert ncnn_int8.int8_layers(fp32 / PARAM) == (0, total)
    assert total > 10 and done == total  # every convolution got int8 scales
    assert ncnn_int8.int8_layers(int8 / PARAM) == (done, total)
    assert sorted(p.name for p in int8.iterdir()) == sorted([PARAM, BIN, META, ncnn_int8.TABLE])
    assert not list(int8.parent.glob("*.part"))
    meta = json.loads((int8 / META).read_text())
    assert meta["precision"] == "int8" and meta["int8"]["int8_layers"] == done
    assert meta["input"] == "in0" and meta["outputs"] == json.loads((fp32 / META).read_text())["outputs"]
    assert (int8 / BIN).stat().st_size < 0.4 * (fp32 / BIN).stat().st_size  # int8 weights, fp16 rest


def test_load_runs_it_as_int8(tiny_int8):
    tiny, fp32, int8, _ = tiny_int8
    model = yolact.load(int8)
    assert model.backend == "ncnn" and model.precision == "int8"
    assert model.cfg.to_dict() == tiny.cfg.to_dict()
    assert yolact.load(int8, precision="int8").precision == "int8"
    assert yolact.load(int8 / PARAM).precision == "int8"
    assert yolact.load(fp32).precision == "fp32"
    with pytest.raises(YolactError, match="an fp32 NCNN model"):
        yolact.load(fp32, precision="int8")
    want, got = assert_int8_core_graph_near(yolact.load(fp32), model)
    assert not np.array_equal(got[3], want[3])  # it really ran other arithmetic


def test_blank_image_as_fp32(tiny_int8):
    """The tiny model is biased to find things; on a blank image int8 finds what fp32 finds (the
    demo model's blank image gives 0: test_demo_mask_ap_within_3_points)."""
    blank = np.zeros((128, 128, 3), np.uint8)
    assert len(yolact.load(tiny_int8[2]).predict(blank)) == len(yolact.load(tiny_int8[1]).predict(blank))


def test_quantize_refusals(tiny_int8, tmp_path, monkeypatch):
    tiny, fp32, _, _ = tiny_int8
    from yolact.deploy.calibration import calibration_images
    wrong = calibration_images(None, None, 2, 160, progress=False)
    with pytest.raises(YolactError, match="calibration images are"):
        ncnn_int8.quantize_ncnn(fp32, tmp_path / "x_ncnn", wrong)
    with pytest.raises(YolactError, match="needs calibration"):
        ncnn_int8.quantize_ncnn(fp32, tmp_path / "x_ncnn", [])
    # a table that quantises nothing: an error, not an fp32 folder called int8
    real = ncnn_int8.find_tools()
    fake = tmp_path / "tools"
    fake.mkdir()
    table = fake / "ncnn2table"
    table.write_text("#!/bin/sh\necho 'nothing_param_0 1.0' > \"$4\"\n")  # a table naming no layer
    table.chmod(0o755)
    os.symlink(real["ncnn2int8"], fake / "ncnn2int8")
    monkeypatch.setenv("YOLACT_NCNN_TOOLS", str(fake))
    right = calibration_images(None, None, 2, 128, progress=False)
    with pytest.raises(YolactError, match="no layer of .* was quantised"):
        ncnn_int8.quantize_ncnn(fp32, tmp_path / "x_ncnn", right, progress=False)
    assert not (tmp_path / "x_ncnn").exists() and not (tmp_path / "x_ncnn.part").exists()
    # a failing tool: its last line, one line
    table.write_text("#!/bin/sh\necho 'load_param failed' >&2\nexit 3\n")
    with pytest.raises(YolactError, match="ncnn2table failed \\(exit 3\\): load_param failed"):
        ncnn_int8.quantize_ncnn(fp32, tmp_path / "x_ncnn", right, progress=False)


def test_a_mismatched_param_and_bin_are_refused(tiny_int8, tmp_path):
    """New-user report: the int8 .param with the fp32 .bin ran and gave 100 junk detections;
    the fp32 .param with the int8 .bin crashed the process. metadata.json records the files."""
    tiny, fp32, int8, _ = tiny_int8
    for name, param_from, bin_from, what in (("a_ncnn", int8, fp32, BIN), ("b_ncnn", fp32, int8, BIN)):
        shutil.copytree(param_from, tmp_path / name)
        shutil.copy(bin_from / BIN, tmp_path / name / BIN)
        with pytest.raises(YolactError, match=f"{name}: {what} is not the file this folder was exported with"):
            yolact.load(tmp_path / name)
    shutil.copytree(int8, tmp_path / "c_ncnn")  # same size, another .param
    text = (tmp_path / "c_ncnn" / PARAM).read_text()
    (tmp_path / "c_ncnn" / PARAM).write_text(text.replace(" 0=", " 0 =", 1) if " 0=" in text else text + " ")
    with pytest.raises(YolactError, match="c_ncnn: model.ncnn.param is not the file"):
        yolact.load(tmp_path / "c_ncnn")
    assert json.loads((int8 / META).read_text())["files"][BIN]["bytes"] == (int8 / BIN).stat().st_size


def test_cli_export_int8(tmp_path, calib_dir, capsys, monkeypatch):
    """Through the CLI from the user's folder, with a relative --out and with none (new-user
    report: the tools run in a temporary folder, where the relative model path was lost)."""
    need_tools()
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "tiny.pth", make_tiny_model())
    for out in (["--out", "tiny_int8_ncnn"], []):
        assert main(["export", "--weights", "tiny.pth", "--format", "ncnn", "--int8", "--calib", str(calib_dir),
                     "--calib-count", "6", *out]) == 0
        folder = tmp_path / (out[1] if out else "tiny_ncnn")
        said = capsys.readouterr().out
        assert f"wrote {folder.name}" in said and "NCNN int8" in said and "calibrated on 6 images" in said
        assert yolact.load(folder).precision == "int8"
    assert not list(tmp_path.glob("tmp*")) and not list(tmp_path.glob("*.part"))  # the fp32 folder is gone


@pytest.mark.slow  # the demo model exported, quantised and evaluated
def test_demo_mask_ap_within_3_points(tmp_path):
    need_tools()
    ref, calib, ann, val = demo_int8_case(tmp_path)
    fp32 = export_ncnn(ref, tmp_path / "demo_ncnn")
    done, total = ncnn_int8.quantize_ncnn(fp32, tmp_path / "demo_int8_ncnn", calib, progress=False)
    assert done == total
    assert_mask_ap_within_3_points(ref, yolact.load(tmp_path / "demo_int8_ncnn"), ann, val)
    model = yolact.load(tmp_path / "demo_int8_ncnn")
    assert model.precision == "int8"
    assert len(model.predict(np.zeros((192, 192, 3), np.uint8))) == 0
