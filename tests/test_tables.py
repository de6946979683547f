"""The extension tables: weights formats (yolact/formats.py) and backbones (yolact/backbones.py).
Every row is consistent with what reads it, and a row registered at run time is picked up by
every reader without another edit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import yolact
from yolact.backbones import BACKBONES, Backbone, register_backbone, unregister_backbone
from yolact.checkpoint import infer_config_from_shapes
from yolact.config import MEANS_BGR, PRECISIONS, PRESETS, STD_BGR
from yolact.errors import YolactError
from yolact.formats import FORMATS, WeightsFormat, format_for, register_format, unregister_format


# ---------------------------------------------------------------- weights formats
def test_builtin_format_rows():
    assert list(FORMATS) == ["torch", "onnxruntime", "openvino", "executorch", "litert", "ncnn", "coreml"]
    from yolact.deploy import BACKENDS, SUFFIX_BACKENDS, backend_for
    assert BACKENDS == ("torch", "onnxruntime", "openvino", "executorch", "litert", "ncnn", "coreml")
    assert SUFFIX_BACKENDS == {".pth": "torch", ".pt": "torch", ".onnx": "onnxruntime", ".xml": "openvino",
                               ".pte": "executorch", ".tflite": "litert", "_ncnn": "ncnn", ".param": "ncnn",
                               ".mlpackage": "coreml"}
    assert [backend_for(f"m{s}") for s in (".pth", ".PT", ".onnx", ".xml", ".bin", "", "_ncnn", "_NCNN/", ".pte")] == \
        ["torch", "torch", "onnxruntime", "openvino", "torch", "torch", "ncnn", "ncnn", "executorch"]
    assert backend_for("yolact_ncnn/model.ncnn.param") == "ncnn" and backend_for("m.mlpackage") == "coreml"
    with pytest.raises(YolactError, match="unknown backend 'tflite' \\(torch, onnxruntime, openvino, executorch, litert, ncnn, coreml\\)"):
        backend_for("m.pth", "tflite")
    for f in FORMATS.values():
        assert set(f.precisions) <= set(PRECISIONS) and set(f.benchmark_precisions) <= set(f.precisions)
        assert all(s[0] in "._" and s == s.lower() for s in f.suffixes)  # a suffix, or a folder's ending
    from yolact.deploy.benchmark import ROWS
    assert ROWS == (("torch", "fp32"), ("torch", "fp32-fused"), ("torch", "bf16"), ("onnxruntime", "fp32"),
                    ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"),
                    ("executorch", "fp32"), ("litert", "fp32"), ("litert", "int8"), ("ncnn", "fp32"),
                    ("ncnn", "int8"))


def test_format_extras_are_pyproject_extras():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert all(f.extra is None or f.extra in extras for f in FORMATS.values())


def test_loading_a_pth_does_not_import_the_runtimes():
    import subprocess
    import sys
    code = ("import sys, yolact; yolact.load('demo'); "
            "print(sorted(m for m in ('onnxruntime', 'openvino', 'onnx', 'executorch', 'litert_torch', 'ai_edge_litert', "
            "'ncnn', 'pnnx', 'coremltools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_choices_and_help_come_from_the_table():
    from yolact.cli import build_parser
    actions = _actions(build_parser())
    export, bench = actions["export"], actions["benchmark"]
    assert export["--format"].choices == ["coreml", "executorch", "litert", "ncnn", "onnx", "openvino", "torch-fp16"] and export["--format"].default == "onnx"
    assert export["--format"].help == \
        "Core ML program (.mlpackage, NMS and masks inside; runs on macOS), ExecuTorch program (.pte, XNNPACK, NMS and masks inside), " \
        "LiteRT / TFLite model (.tflite, NMS and masks inside), NCNN model folder (NAME_ncnn/: .param + .bin, pnnx, core graph), " \
        "onnx graph, OpenVINO IR (.xml + .bin), or a compact PyTorch checkpoint with fp16 weights"
    assert export["--out"].help == "output path (.mlpackage, .pte, .tflite, _ncnn/, .onnx, .xml or .pt)"
    backends = ["torch", "onnxruntime", "openvino", "executorch", "litert", "ncnn", "coreml"]
    assert bench["--backend"].choices == backends + ["all"] and actions["predict"]["--backend"].choices == backends


def _actions(parser):
    """verb -> {option string -> argparse action}."""
    import argparse
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {verb: {o: a for a in p._actions for o in a.option_strings} for verb, p in sub.choices.items()}


class FakePredictor:
    """A stand-in runtime: the file's text is its preset name."""
    backend = "fake"

    def __init__(self, path, precision):
        self.path, self.precision, self.tracker = Path(path), precision, None
        self.cfg = PRESETS[self.path.read_text().strip()]


def load_fake(path, config=None, device=None, precision="fp32", strict=True, compile=None):
    if precision not in FAKE.precisions:
        raise YolactError(f"{path}: fake files run fp32")
    return FakePredictor(path, precision)


def export_fake(model, options, log=print):
    out = Path(options.out or Path(str(options.weights or "yolact")).with_suffix(".fake").name)
    out.write_text(model.cfg.name)
    log(f"wrote {out}")
    return out


FAKE = WeightsFormat("fake", (".fake",), load_fake, precisions=("fp32",), title="Fake runtime",
                     description="a fake file", export=export_fake, origin="made by the fake exporter")


@pytest.fixture
def fake_format():
    register_format(FAKE)
    try:
        yield FAKE
    finally:
        unregister_format(FAKE.name)


def test_a_registered_format_is_read_everywhere(fake_format, tmp_path, monkeypatch, capsys):
    from yolact.cli import build_parser, main
    from yolact.deploy import BACKENDS, SUFFIX_BACKENDS, backend_for
    from yolact.prediction.info import file_origin

    assert backend_for(tmp_path / "m.FAKE") == "fake" and backend_for("m.pth", "fake") == "fake"
    assert "fake" in BACKENDS and SUFFIX_BACKENDS[".fake"] == "fake"
    assert format_for("m.fake") is FAKE
    path = tmp_path / "m.fake"
    path.write_text("yolact_resnet18_slim")
    model = yolact.load(path)
    assert isinstance(model, FakePredictor) and model.cfg.name == "yolact_resnet18_slim"
    with pytest.raises(YolactError, match="fake files run fp32"):
        yolact.load(path, precision="bf16")
    assert file_origin(path) == "made by the fake exporter"

    actions = _actions(build_parser())  # built after registering
    assert "fake" in actions["export"]["--format"].choices
    assert "fake" in actions["predict"]["--backend"].choices and "fake" in actions["benchmark"]["--backend"].choices
    assert "a fake file" in actions["export"]["--format"].help and ".fake" in actions["export"]["--out"].help

    monkeypatch.chdir(tmp_path)
    assert main(["export", "--format", "fake", "--out", "exported.fake"]) == 0
    assert "wrote exported.fake" in capsys.readouterr().out
    assert yolact.load(tmp_path / "exported.fake").cfg.name == "yolact_resnet18_slim"
    with pytest.raises(ValueError, match="suffix .fake belongs to another format"):
        register_format(WeightsFormat("other", (".fake",), load_fake, ("fp32",), "Other", "other"))
    assert "fake" not in FORMATS or FORMATS["fake"] is FAKE


# ---------------------------------------------------------------- backbones
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101", "darknet53"])
def test_every_backbone_row_builds_and_round_trips_its_shapes(name):
    from yolact.model.yolact import Yolact

    assert set(BACKBONES) == {"resnet18", "resnet50", "resnet101", "darknet53"}
    for preset in [p for p in PRESETS.values() if p.backbone == name]:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            sd = Yolact(preset).state_dict()
        guessed = infer_config_from_shapes(sd)
        if preset.name not in ("yolact_im400", "yolact_im700"):  # input size is not in the shapes
            assert guessed.name == preset.name, preset.name
        assert guessed.backbone == name and guessed.num_classes == preset.num_classes


def test_declared_normalisation_is_the_transforms():
    from yolact.model.transform import YolactTransform

    img = torch.full((1, 3, 32, 32), 128.0)
    expected = {"imagenet": ((128.0 - torch.tensor(MEANS_BGR)) / torch.tensor(STD_BGR)).flip(0),
                "unit": torch.full((3,), 128.0 / 255)}
    for row in BACKBONES.values():
        cfg = PRESETS["yolact_base"].replace(backbone=row.name)
        assert cfg.normalize == row.normalize
        out = YolactTransform.from_config(cfg).normalize(img)[0, :, 0, 0]
        torch.testing.assert_close(out, expected[row.normalize].float(), rtol=0, atol=1e-6)


def test_imagenet_files_and_key_rules_come_from_the_table():
    from yolact import hub
    assert {k: e.filename for k, e in hub.IMAGENET.items()} == {
        "resnet101": "resnet101_reducedfc.pth", "resnet50": "resnet50-19c8e357.pth", "darknet53": "darknet53.pth"}
    rule = BACKBONES["resnet50"].key_rule
    assert rule("module.layer4.2.bn3.weight") == "layers.3.2.bn3.weight"
    assert rule("backbone.layers.0.0.conv1.weight") == "layers.0.0.conv1.weight"


def test_a_registered_backbone_is_built_inferred_and_fetched(tmp_path):
    from yolact import hub
    from yolact.model.backbones import build_backbone
    from yolact.model.yolact import Yolact

    calls = []

    def resnet34(**kwargs):  # any module's function: here the ResNet builder with other depths
        from yolact.model.backbones import resnet
        calls.append(kwargs)
        return resnet(**kwargs)

    def from_shapes(sd, presets):
        blocks = {int(k.split(".")[3]) for k in sd if k.startswith("backbone.layers.2.")}
        first = sd.get("backbone.layers.0.0.conv1.weight")
        return "test_resnet34" if first is not None and first.shape[-1] == 3 and len(blocks) == 6 else None

    row = Backbone("resnet34", resnet34, "imagenet", "ResNet-34", options={"block": "basic", "depths": (3, 4, 6, 3)},
                   imagenet="resnet34-b627a593.pth", imagenet_repo="someone/resnets", from_shapes=from_shapes)
    cfg = PRESETS["yolact_resnet18_slim"].replace(name="test_resnet34", backbone="resnet34")
    register_backbone(row)
    PRESETS[cfg.name] = cfg
    try:
        net = build_backbone("resnet34", width=32)
        assert calls and len(net.layers[2]) == 6 and net.channels == [32, 64, 128, 256]
        model = Yolact(cfg)
        assert infer_config_from_shapes({k: v for k, v in model.state_dict().items()}).name == "test_resnet34"
        assert cfg.normalize == "imagenet"
        entry = hub.imagenet_file(cfg)
        assert (entry.repo, entry.filename) == ("someone/resnets", "resnet34-b627a593.pth")
        assert "resnet34" in hub.IMAGENET
    finally:
        unregister_backbone("resnet34")
        del PRESETS[cfg.name]
    with pytest.raises(ValueError, match="unknown backbone 'resnet34'"):
        build_backbone("resnet34")


def test_benchmark_all_names_each_missing_extra_up_front(monkeypatch):
    """#27 item 6: a backend whose extra is missing is named with its extra before any timing,
    and its rows are skipped (the torch rows still run)."""
    import numpy as np

    import yolact
    from yolact import checks
    from yolact.deploy import benchmark as bench

    monkeypatch.setattr(checks, "missing_modules", lambda extra: ["onnxruntime"] if extra == "onnx" else [])
    monkeypatch.setattr("yolact.deploy.timing.gemm_rate", lambda *a, **k: 1e10)  # the floor is not under test
    assert bench.missing_extras(bench.ROWS) == {"onnxruntime": "needs onnxruntime: pip install 'yolact[onnx]'"}
    said = []
    rows = bench.compare_backends(str(yolact.demo_weights_path()), np.zeros((64, 64, 3), np.uint8), [],
                                  warmup=0, repeats=1, rows=[("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                                             ("torch", "fp32")], log=said.append)
    assert said[0] == "onnxruntime (fp32, int8): skipped, needs onnxruntime: pip install 'yolact[onnx]'"
    assert [(r["backend"], r["precision"]) for r in rows] == [("torch", "fp32")]


def test_help_lists_come_from_the_tables(capsys):
    """#27 item 7: `train --data`'s and `data convert`'s help name every data format of the data
    formats table, `export`'s every export format of the weights formats table (they were
    written by hand and listed too few)."""
    from yolact.cli import main
    from yolact.data.sources import FORMAT_SOURCES
    from yolact.formats import export_formats

    def help_of(argv):
        with pytest.raises(SystemExit):
            main(argv + ["--help"])
        return " ".join(capsys.readouterr().out.split())

    train = help_of(["train"])
    assert all(" ".join(v.split()) in train for v in FORMAT_SOURCES.values())
    convert = help_of(["data", "convert"])
    assert all(" ".join(v.split()) in convert for k, v in FORMAT_SOURCES.items() if k != "coco")
    top = help_of([])
    assert all(name in top for name in export_formats())
