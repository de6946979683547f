"""Run hints (yolact.prediction.hints): --slice suggested once for large images with small objects."""
import cv2
import numpy as np
import pytest

from yolact.cli import main
from yolact.prediction.hints import SliceHintSink
from yolact.prediction.sinks import Frame
from yolact.results import Results


def _results(h, w, boxes):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Results(boxes=boxes, scores=np.full(n, 0.9, np.float32), labels=np.zeros(n, np.int64),
                   masks=np.zeros((n, h, w), bool), class_names=("a",), box_scores=np.full(n, 0.9, np.float32),
                   image_shape=(h, w))


@pytest.mark.parametrize("h, w, boxes, said", [
    (4000, 6000, [], True),                                   # large, nothing found
    (4000, 6000, [[10, 10, 70, 70], [100, 100, 150, 160]], True),  # large, objects a few input pixels wide
    (4000, 6000, [[0, 0, 3000, 2000]], False),                # large, but its object is large
    (400, 8000, [[307, 18, 5098, 400]], True),                # panorama: a wide (false) detection
    (1000, 1000, [], False),                                  # 3.3x a 550 input: not much larger
    (480, 640, [], False),
])
def test_hint_only_for_large_images_with_small_or_no_objects(h, w, boxes, said):
    lines = []
    sink = SliceHintSink(550, write=lines.append)
    sink.add(_results(h, w, boxes), Frame(source="big.jpg"))
    assert bool(lines) == said
    if said:
        assert lines[0].startswith(f"note: big.jpg is {w}x{h}") and "--slice" in lines[0]


def test_hint_once_per_run():
    lines = []
    sink = SliceHintSink(550, write=lines.append)
    for k in range(3):
        sink.add(_results(4000, 6000, []), Frame(source=f"{k}.jpg"))
    assert len(lines) == 1


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("hint")
    rng = np.random.default_rng(0)
    big = np.full((900, 1200, 3), 90, np.uint8)
    for x, y in rng.integers(50, 850, (12, 2)):
        cv2.circle(big, (int(x), int(y)), 8, (40, 200, 240), -1)  # small shapes
    cv2.imwrite(str(root / "big.png"), big)
    cv2.imwrite(str(root / "small.png"), cv2.resize(big, (240, 180)))
    return root


def test_cli_predict_notes_slice_once_and_not_when_sliced(images, tmp_path, capsys):
    """New-user report: a large image predicted without --slice gave no hint."""
    assert main(["predict", str(images / "big.png"), str(images / "big.png"), "--out", str(tmp_path / "a")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "1200x900" in notes[0] and "--slice" in notes[0]
    assert main(["predict", str(images / "big.png"), "--slice", "640", "--out", str(tmp_path / "b")]) == 0
    assert "--slice 640 predicts" not in capsys.readouterr().out
    assert main(["predict", str(images / "small.png"), "--out", str(tmp_path / "c")]) == 0
    assert "note:" not in capsys.readouterr().out


# ---------------------------------------------------------------- hints that print a command
def _valid_slice(h, w, line):
    """The --slice of a hint line passes predict's own checks for an h x w image."""
    import re

    from yolact.cli import build_parser
    from yolact.cli.common import predict_options
    from yolact.prediction.slicing import tile_windows

    tile = int(re.search(r"--slice (\d+)", line).group(1))
    args = build_parser().parse_args(["predict", "x.jpg", "--slice", str(tile)])
    options = predict_options(args)  # the CLI's checks
    assert tile_windows(h, w, *options["slice"])  # the library's: tile size and count
    assert tile < max(h, w)  # a tile as large as the image would slice nothing
    return tile


@pytest.mark.parametrize("h, w, side", [
    (4000, 6000, 550), (400, 8000, 550),
    (20, 100000, 64),      # a thin panorama: its short side is under --slice's 32 px
    (60000, 60000, 550),   # 640 px tiles would be over MAX_TILES
    (300, 300, 64),        # larger than the input, smaller than a 640 px tile
])
def test_slice_hint_suggests_a_tile_predict_accepts(h, w, side):
    """New-user report (the kind of `--img-size 100`): a hint's command must be one the package
    takes. The --slice of the hint passes predict's checks for that image."""
    lines = []
    SliceHintSink(side, write=lines.append).add(_results(h, w, []), Frame(source="big.jpg"))
    assert len(lines) == 1
    _valid_slice(h, w, lines[0])


class _Reached(Exception):
    """The export got past every check of its flags to the writer."""


_WRITERS = {"onnxruntime": "yolact.deploy.onnx:export_onnx", "openvino": "yolact.deploy.openvino:export_openvino",
            "litert": "yolact.deploy.litert:export_litert", "executorch": "yolact.deploy.executorch:export_executorch",
            "coreml": "yolact.deploy.coreml:export_coreml", "ncnn": "yolact.deploy.ncnn:export_ncnn"}

# (backend, include_postprocess, edge_outputs, precision)
_FILES = [("onnxruntime", False, False, "fp32"), ("onnxruntime", True, False, "fp32"),
          ("onnxruntime", False, False, "int8"), ("onnxruntime", True, False, "int8"),
          ("openvino", False, False, "fp32"), ("openvino", False, False, "int8"),
          ("openvino", True, False, "fp32"), ("openvino", True, False, "int8"),
          ("litert", True, True, "fp32"), ("litert", True, True, "int8"), ("litert", False, False, "fp32"),
          ("litert", False, False, "int8"), ("executorch", True, True, "fp32"), ("executorch", False, False, "fp32"),
          ("coreml", True, True, "fp32"), ("coreml", False, False, "fp32"), ("ncnn", False, False, "fp32")]


def _graph_file(backend, post, edge, precision, k=100):
    """A GraphPredictor as loaded from such a file (128 px, K rows), without a file."""
    from pathlib import Path

    from yolact.config import get_config
    from yolact.deploy.graph import GraphPredictor

    class File(GraphPredictor):
        def __init__(self):
            self.backend, self.include_postprocess, self.edge_outputs, self.precision = backend, post, edge, precision
            self.cfg = get_config("yolact_resnet18").replace(max_size=128, max_num_detections=k)
            self.path = Path(f"m.{backend}")

    return File()


@pytest.mark.parametrize("backend, post, edge, precision", _FILES)
def test_export_hints_print_commands_export_accepts(backend, post, edge, precision, tmp_path, monkeypatch):
    """New-user report: predicting an exported graph with --img-size 100 suggested
    `export again with --img-size 100`, which export refuses. A size no export takes is now
    refused as such, and every export hint (another input size, more rows than K) prints a
    whole `yolact export` command that the parser and the format's exporter accept, writing
    the same kind of file (graph, precision) with the change."""
    import importlib
    import shlex
    from types import SimpleNamespace

    from yolact.cli import build_parser
    from yolact.cli.deploy import check_export_args
    from yolact.errors import YolactError
    from yolact.formats import FORMATS, resolve

    monkeypatch.chdir(tmp_path)
    seen = {}

    def writer(model, path, **kwargs):
        seen.update(kwargs)
        raise _Reached

    module, name = _WRITERS[backend].split(":")
    monkeypatch.setattr(importlib.import_module(module), name, writer)
    monkeypatch.setattr("yolact.deploy.calibration.calibration_images", lambda *a, **k: [None])
    model = _graph_file(backend, post, edge, precision, k=5 if post else 100)
    with pytest.raises(YolactError, match="image size 100: expected a multiple of 32"):
        model.transform(100)
    changes = [{"img_size": 160}] + ([{"max_det": 300}] if post else [])
    for change in changes:
        if "img_size" in change:
            with pytest.raises(YolactError) as e:
                model.transform(160)
            assert model.export_command(**change) in str(e.value)
            assert "(WEIGHTS: the .pt/.pth it was exported from" in str(e.value)  # new-user report
            assert ("--calib DIR" in str(e.value)) == (precision == "int8")
        command = model.export_command(**change)
        words = shlex.split(command)
        assert words[:2] == ["yolact", "export"]
        args = build_parser().parse_args(words[1:])
        fmt = check_export_args(args)
        assert fmt.name == backend
        seen.clear()
        with pytest.raises(_Reached):
            resolve(fmt.export)(SimpleNamespace(cfg=model.cfg), args, log=lambda *a: None)
        assert seen["img_size"] == change.get("img_size", 128)
        assert seen.get("max_det") == (change.get("max_det", 5) if post else None)
        if backend in ("onnxruntime", "openvino"):
            assert bool(seen["include_postprocess"]) == post
        elif backend != "ncnn":
            assert seen["include_postprocess"] == post
        assert (args.quantize == "int8" or args.int8 is not None) == (precision == "int8")


def test_the_openvino_post_processing_graph_is_a_command_too():
    """New-user report: the README says `yolact export --format openvino` writes either graph,
    but the CLI refused --include-postprocess for it (the library always wrote it), and the hint
    for such a file pointed to the library. Both are a command now."""
    model = _graph_file("openvino", True, False, "fp32")
    command = model.export_command(max_det=300)
    assert "--format openvino --include-postprocess" in command and "--max-det 300" in command
    assert model.export_hint(max_det=300).startswith("export it again: yolact export ")
