"""ONNX opsets are checked before anything is exported (issue #26 item 12): one line, exit 2;
an exporter failure is one line too, with the exporter's dump only under --debug."""
import os
import sys

import pytest
import torch

from yolact.cli import main
from yolact.deploy.onnx import CORE_OPSETS, POSTPROCESS_OPSETS, check_opset, export_onnx
from yolact.errors import YolactError

from conftest import make_tiny_model

pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'yolact[onnx]'")


@pytest.mark.parametrize("args, needle", [
    (["--opset", "5"], "--opset 5: the core graph exports at opsets 11..23"),
    (["--opset", "30"], "--opset 30: the core graph exports at opsets 11..23"),
    (["--opset", "11", "--include-postprocess"], "opsets 14..23 (Fast NMS needs Trilu, opset 14)"),
])
def test_cli_refuses_an_opset_in_one_line_before_loading(args, needle, tmp_path, capsys):
    # the weights file does not exist: the opset is refused before the model is looked at
    code = main(["export", "-w", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.onnx"), *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_the_range_ends_export(tmp_path):
    model = make_tiny_model()
    for opset, post in ((CORE_OPSETS[0], False), (POSTPROCESS_OPSETS[0], True)):
        path = export_onnx(model, tmp_path / f"m{opset}.onnx", include_postprocess=post, opset=opset)
        import onnx
        assert [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")] == [opset]
    with pytest.raises(YolactError, match="opsets 14..23"):
        check_opset(13, include_postprocess=True)
    check_opset(13)


def test_an_exporter_failure_is_one_line_with_the_dump_behind_debug(tmp_path, monkeypatch, capsys):
    def failing_export(*args, **kwargs):
        os.write(2, b"Torch IR graph at exception: graph(%images : Float(1, 3, 64, 64)...\n" * 300)
        raise RuntimeError("first line\nUnsupported: ONNX export of operator frobnicate")

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    model = make_tiny_model()
    with pytest.raises(YolactError) as info:
        export_onnx(model, tmp_path / "m.onnx")
    err = info.value
    assert str(err).startswith("ONNX export failed: Unsupported: ONNX export of operator frobnicate")
    assert "\n" not in str(err)
    assert "Torch IR graph at exception" in err.__notes__[0]
    assert "Torch IR graph" not in capsys.readouterr().err  # the exporter's stderr was kept back
    os.write(2, b"")  # fd 2 is usable again
    print("after", file=sys.stderr)
    assert "after" in capsys.readouterr().err
