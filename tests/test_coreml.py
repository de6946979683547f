"""Core ML packages (yolact/deploy/coreml.py). Core ML runs on macOS only, so on Linux these
tests check what can be checked here: the .mlpackage that coremltools writes reads back with
the documented inputs, outputs, shapes and yolact metadata; it is written atomically; and
``yolact.load`` of it stops with one line saying that Core ML needs macOS."""
import json
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("coremltools", reason="needs the coreml extra: pip install 'yolact[coreml]'")

import yolact  # noqa: E402
from yolact.checkpoint import save_checkpoint  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.config import YolactConfig  # noqa: E402
from yolact.deploy.coreml import export_coreml, export_coreml_file, read_spec  # noqa: E402
from yolact.errors import YolactError  # noqa: E402
from yolact.formats import format_for  # noqa: E402

from conftest import make_tiny_model  # noqa: E402

linux_only = pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal outside macOS")


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model()


@pytest.fixture(scope="module")
def package(tiny, tmp_path_factory):
    return export_coreml(tiny, tmp_path_factory.mktemp("coreml") / "tiny.mlpackage")


def test_spec_reads_back(package, tiny):
    """The whole pipeline (the default): the README's I/O contract, read back from the package."""
    spec = read_spec(package)
    assert spec["inputs"] == {"image": [1, 3, 128, 128]}
    assert spec["outputs"] == {"boxes": [100, 4], "scores": [100], "class_scores": [100], "labels": [100],
                               "masks": [100, 32, 32], "count": [1]}
    assert spec["types"] == {"image": "imageType", "boxes": "multiArray:FLOAT32", "scores": "multiArray:FLOAT32",
                             "class_scores": "multiArray:FLOAT32", "labels": "multiArray:INT32",
                             "masks": "multiArray:FLOAT32", "count": "multiArray:INT32"}
    assert spec["spec_version"] >= 7  # an ML Program (iOS 16 / macOS 13)
    meta = spec["metadata"]
    assert meta["include_postprocess"] is True and meta["edge_graph"] is True
    assert YolactConfig.from_dict(meta["yolact_config"]).to_dict() == tiny.cfg.to_dict()
    assert (package / "Manifest.json").exists()
    assert not list(package.parent.glob(".*part*"))  # the temp folder is gone


@linux_only
def test_load_says_macos_only(package):
    assert format_for(package).name == "coreml"
    with pytest.raises(YolactError, match=r"tiny.mlpackage: Core ML runs on macOS only"):
        yolact.load(package)
    with pytest.raises(YolactError, match="no such Core ML package"):
        yolact.load(package.parent / "missing.mlpackage")


def test_bad_out_and_refusals(tiny, tmp_path):
    with pytest.raises(YolactError, match="written as a .mlpackage"):
        export_coreml(tiny, tmp_path / "x.mlmodel")
    options = SimpleNamespace(weights=None, out=str(tmp_path / "y.mlpackage"), img_size=None, include_postprocess=None,
                              dynamic_batch=True, int8=None, quantize=None, max_det=None)
    with pytest.raises(YolactError, match="batch-1"):
        export_coreml_file(tiny, options)
    assert not list(tmp_path.iterdir())
    with pytest.raises(YolactError, match="not a readable Core ML package"):
        (tmp_path / "junk.mlpackage").mkdir()
        read_spec(tmp_path / "junk.mlpackage")


@pytest.mark.slow  # a second conversion: about a minute on the shared 2-core machine
def test_cli_export(tiny, tmp_path, capsys, monkeypatch):
    """The core graph on request (--no-include-postprocess), at another size."""
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, tiny)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--weights", str(weights), "--format", "coreml", "--img-size", "160",
                 "--no-include-postprocess"]) == 0
    assert "wrote tiny.mlpackage" in capsys.readouterr().out
    spec = read_spec(tmp_path / "tiny.mlpackage")
    num_priors = sum(s * s for s in (20, 10, 5, 3, 2)) * 3  # 160 px: P3..P7 grids, 3 anchors each
    assert spec["inputs"] == {"images": [1, 3, 160, 160]}
    assert spec["outputs"] == {"boxes": [1, num_priors, 4], "scores": [1, num_priors, 4],
                               "coefs": [1, num_priors, 32], "proto": [1, 40, 40, 32]}
    assert spec["metadata"]["include_postprocess"] is False
    if sys.platform != "darwin":
        import cv2
        import numpy as np
        cv2.imwrite(str(tmp_path / "a.png"), np.zeros((32, 32, 3), np.uint8))
        assert main(["predict", "a.png", "--weights", "tiny.mlpackage"]) != 0
        err = capsys.readouterr().err
        assert "macOS" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_info_describes_a_package_from_its_spec(package, tiny, capsys):
    """New-user report: `yolact info model.mlpackage` refused (Core ML runs on macOS only);
    info reads the package's spec and metadata instead, on any system."""
    assert main(["info", "--weights", str(package)]) == 0
    out = capsys.readouterr().out
    assert "exported by `yolact export --format coreml`" in out
    assert f"preset   {tiny.cfg.name}" in out and "3: a, b, c" in out and "128 x 128 pixels" in out
    # the whole pipeline (the default): the image in, fixed-K rows out
    assert "image [1, 3, 128, 128]" in out and "masks [100, 32, 32]" in out and "count [1]" in out
    assert "macOS only" in out
    assert main(["info", "--weights", str(package), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == ["a", "b", "c"] and info["input_size"] == 128 and info["parameters"] is None
    assert main(["info", "--weights", str(package), "--img-size", "160"]) == 2
    assert "drop --img-size" in capsys.readouterr().err
