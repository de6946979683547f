"""NCNN model folders (yolact/deploy/ncnn.py): the folder's layout and metadata, loading by the
folder or its .param file, the NCNN-runnable core graph computing what the core graph does,
bad folders refused in one line, atomic replacement, and the CLI (export's default folder
name, info, benchmark). Parity with PyTorch on the synthetic images: tests/test_edge.py."""
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("pnnx", reason="needs the ncnn extra: pip install 'yolact[ncnn]'")
pytest.importorskip("ncnn", reason="needs the ncnn extra: pip install 'yolact[ncnn]'")

import yolact  # noqa: E402
from yolact.checkpoint import save_checkpoint  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.deploy import ncnn as ncnn_format  # noqa: E402
from yolact.deploy.graph import CoreGraph, export_copy  # noqa: E402
from yolact.deploy.ncnn import BIN, META, PARAM, NcnnGraph, export_ncnn, export_ncnn_file  # noqa: E402
from yolact.errors import YolactError  # noqa: E402
from yolact.formats import format_for  # noqa: E402

from conftest import make_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model()


@pytest.fixture(scope="module")
def folder(tiny, tmp_path_factory):
    return export_ncnn(tiny, tmp_path_factory.mktemp("ncnn") / "tiny_ncnn")


def test_ncnn_graph_is_the_core_graph(tiny):
    """The slices-and-concat channel swap changes nothing: bit-identical outputs."""
    net = export_copy(tiny, None)
    x = torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        for want, got in zip(CoreGraph(net, 128)(x), NcnnGraph(net, 128)(x)):
            assert torch.equal(want, got)


def test_folder_layout(folder, tiny):
    assert sorted(p.name for p in folder.iterdir()) == sorted([PARAM, BIN, META])
    assert not list(folder.parent.glob("*.part"))
    meta = json.loads((folder / META).read_text())
    assert meta["input"] == "in0" and meta["input_shape"] == [3, 128, 128]
    assert meta["output_shapes"]["proto"] == [32, 32, 32] and meta["output_shapes"]["boxes"][1] == 4
    assert yolact.load(folder).cfg.to_dict() == tiny.cfg.to_dict()  # the config travels in the folder
    layers = {line.split()[0] for line in (folder / PARAM).read_text().splitlines()[2:]}
    assert "Tensor.index" not in layers and "Convolution" in layers  # only NCNN's own layers


def test_load_by_folder_and_param(folder, bgr_image, tiny):
    assert format_for(folder).name == "ncnn" and format_for(folder / PARAM).name == "ncnn"
    by_folder, by_param = yolact.load(folder), yolact.load(folder / PARAM)
    assert by_folder.backend == by_param.backend == "ncnn"
    a, b = by_folder.predict(bgr_image), by_param.predict(bgr_image)
    assert a.labels.tolist() == b.labels.tolist() and np.array_equal(a.masks, b.masks)
    assert a.labels.tolist() == tiny.predict(bgr_image).labels.tolist()
    # fp16: NCNN's fp16 storage/arithmetic where the CPU has them (on this x86 machine it has
    # none, so the same numbers); the predictor says which it was asked for
    half = yolact.load(folder, precision="fp16")
    assert half.precision == "fp16"
    assert half.predict(bgr_image).labels.tolist() == a.labels.tolist()
    with pytest.raises(YolactError, match="an fp32 NCNN model; export an int8 one"):
        yolact.load(folder, precision="int8")
    with pytest.raises(YolactError, match="fp32, fp16 or int8"):
        yolact.load(folder, precision="bf16")


def test_bad_folders(tmp_path, folder, capfd):
    with pytest.raises(YolactError, match="no such NCNN"):
        yolact.load(tmp_path / "missing_ncnn")
    empty = tmp_path / "empty_ncnn"
    empty.mkdir()
    with pytest.raises(YolactError, match="empty_ncnn: no yolact metadata"):
        yolact.load(empty)
    half = tmp_path / "half_ncnn"
    half.mkdir()
    shutil.copy(folder / META, half / META)
    with pytest.raises(YolactError, match="needs model.ncnn.param"):
        yolact.load(half)
    (half / PARAM).write_text("not a param file\n")
    (half / BIN).write_bytes(b"\0" * 64)
    with pytest.raises(YolactError, match="half_ncnn: model.ncnn.param is not the file this folder was exported"):
        yolact.load(half)
    meta = json.loads((half / META).read_text())
    del meta["files"]  # a folder from before the record: NCNN itself refuses the file
    (half / META).write_text(json.dumps(meta))
    capfd.readouterr()
    with pytest.raises(YolactError, match="half_ncnn: not a loadable NCNN model .*: "):  # NCNN's reason inside
        yolact.load(half)
    assert capfd.readouterr().err == ""  # new-user report: NCNN's own lines on stderr before ours
    (half / META).write_text("{")
    with pytest.raises(YolactError, match="not JSON"):
        yolact.load(half)


def test_failed_export_keeps_the_old_folder(tiny, tmp_path, monkeypatch):
    out = tmp_path / "m_ncnn"
    out.mkdir()
    for name in ("old.txt", PARAM, META):  # an earlier export: the only folder export replaces
        (out / name).write_text("old")
    monkeypatch.setattr(ncnn_format, "_pnnx_binary", lambda: "/bin/false")
    options = SimpleNamespace(weights=None, out=str(out), img_size=None, include_postprocess=False,
                              dynamic_batch=False, int8=None, quantize=None, max_det=None)
    with pytest.raises(YolactError, match="NCNN conversion .pnnx. failed"):
        export_ncnn_file(tiny, options)
    assert sorted(p.name for p in out.iterdir()) == sorted(["old.txt", PARAM, META])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_ncnn"]  # no .part left


@pytest.mark.slow  # a second export and a benchmark: about a minute on the shared 2-core machine
def test_cli_export_info_benchmark(tiny, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, tiny)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--weights", str(weights), "--format", "ncnn"]) == 0
    assert "wrote tiny_ncnn" in capsys.readouterr().out  # the default: <weights stem>_ncnn
    # a folder that exists is replaced whole
    assert main(["export", "--weights", str(weights), "--format", "ncnn", "--out", "tiny_ncnn"]) == 0
    capsys.readouterr()
    assert main(["info", "--weights", "tiny_ncnn"]) == 0
    assert "yolact export --format ncnn" in capsys.readouterr().out
    assert main(["benchmark", "--weights", "tiny_ncnn", "--repeats", "1", "--warmup", "0"]) == 0
    capsys.readouterr()
    assert main(["export", "--weights", str(weights), "--format", "ncnn", "--include-postprocess"]) != 0
    assert "--include-postprocess" in capsys.readouterr().err


def test_export_never_replaces_a_file_or_a_foreign_folder(tiny, tmp_path):
    """New-user report: `export --format ncnn --out PATH` replaced a file, or a folder of other
    files, whole and without a word."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for out, match in ((precious, "is a file"), (mine, "not an NCNN export")):
        with pytest.raises(YolactError, match=match):
            export_ncnn_file(tiny, SimpleNamespace(out=str(out), weights="w.pt", img_size=None, include_postprocess=False,
                                                   dynamic_batch=False, quantize=None, int8=None, max_det=None,
                                                   precision="fp32", opset=None, calib=None))
    assert precious.read_text() == "keep" and (mine / "notes.txt").read_text() == "keep"
    ncnn_format.check_replaceable(tmp_path / "new")  # a new folder, or an earlier export, is fine
