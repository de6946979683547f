"""Options are checked before work starts (issue #27 items 2, 3, 6): one line, exit 2, and no run
folder left behind. The CLI runs in-process (yolact.cli.main)."""
import pytest

from yolact import checks
from yolact.cli import main
from yolact.errors import YolactError


def _refused(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("yolact: error:"), err
    for w in words:
        assert w in err, err
    return err


def test_checks_raise_usage_errors():
    with pytest.raises(YolactError, match="--iters 0"):
        checks.at_least("--iters", 0, 1)
    with pytest.raises(YolactError, match="--lr -1"):
        checks.positive("--lr", -1)
    with pytest.raises(YolactError, match="multiple of 32"):
        checks.img_size("--img-size", 100)
    with pytest.raises(YolactError, match="contradict"):
        checks.exclusive("--data", True, "--val-ann", True)
    checks.at_least("--iters", None, 1)  # not given: accepted
    checks.img_size("--img-size", 544)


@pytest.mark.parametrize("flags,words", [
    (["--batch-size", "0"], ["--batch-size 0"]),
    (["--lr", "-1"], ["--lr -1"]),
    (["--iters", "0"], ["--iters 0"]),
    (["--img-size", "100"], ["--img-size 100", "multiple of 32"]),
    (["--device", "cuda"], ["--device cuda"]),
    (["--device", "mps"], ["--device mps"]),
    (["--data", "x.yaml", "--val-ann", "v.json"], ["--data", "--val-ann"]),
    (["--data", "x.yaml", "--train-ann", "t.json"], ["--data", "--train-ann"]),
])
def test_train_refuses_before_any_run_folder(tmp_path, monkeypatch, capsys, flags, words):
    import torch

    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "mps" in flags and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--train-ann", "a.json", "--train-images", "imgs"] if "--data" not in flags else ["train"]
    _refused(capsys, argv + flags, *words)
    assert not (tmp_path / "runs").exists()  # refused before the run folder is made


def test_data_synth_refuses_zero_objects(tmp_path, capsys):
    _refused(capsys, ["data", "synth", "--out", str(tmp_path / "d"), "--max-objects", "0"], "--max-objects 0")
    assert not (tmp_path / "d").exists()


def test_predict_slice_overlap_needs_slice(tmp_path, capsys):
    _refused(capsys, ["predict", str(tmp_path), "--slice-overlap", "0.5"], "--slice-overlap", "--slice")


def test_tile_count_is_capped():
    from yolact.prediction.slicing import MAX_TILES, tile_windows

    assert len(tile_windows(1000, 1000, 256, 0.2)) < MAX_TILES
    with pytest.raises(YolactError, match="tiles"):
        tile_windows(4000, 4000, 32, 0.99)


@pytest.mark.parametrize("flags,words", [
    (["--format", "openvino", "--quantize", "int8"], ["--quantize", "openvino", "--int8"]),
    (["--format", "onnx", "--int8"], ["--int8", "--quantize int8"]),
    (["--format", "torch-fp16", "--include-postprocess"], ["--include-postprocess"]),
    (["--calib", "imgs"], ["--calib"]),
    (["--img-size", "100"], ["--img-size 100"]),
])
def test_export_refuses_ignored_options(tmp_path, capsys, flags, words):
    _refused(capsys, ["export", "--out", str(tmp_path / "m.onnx")] + flags, *words)


@pytest.mark.parametrize("fmt,out,words", [
    ("litert", "m.pte", ["an ExecuTorch name", "--format litert", ".tflite"]),
    ("onnx", "m.xml", ["an OpenVINO IR name", ".onnx"]),
    ("executorch", "m.tflite", ["a LiteRT name", ".pte"]),
    # new-user report: an unknown ending was written, then read back as a PyTorch checkpoint
    ("litert", "m.litert", ["read back as a PyTorch checkpoint", "NAME.tflite"]),
    ("executorch", "m.executorch", ["read back as a PyTorch checkpoint", "NAME.pte"]),
    ("ncnn", "m_folder", ["read back as a PyTorch checkpoint", "NAME_ncnn/"]),
])
def test_export_refuses_another_formats_name(tmp_path, capsys, fmt, out, words):
    """New-user report: `export --format litert --out m.pte` wrote a file no loader could read."""
    _refused(capsys, ["export", "--format", fmt, "--out", str(tmp_path / out)], *words)
    assert not (tmp_path / out).exists()


def test_export_refuses_an_exported_file_as_its_source(tmp_path, capsys):
    """New-user report: `export --weights x_ncnn` said `--backend torch runs .pth/.pt files`,
    though no --backend was given."""
    (tmp_path / "x_ncnn").mkdir()
    _refused(capsys, ["export", "--weights", str(tmp_path / "x_ncnn"), "--format", "onnx", "--out",
                      str(tmp_path / "m.onnx")], "x_ncnn: an NCNN file; export converts a PyTorch checkpoint")


def test_export_names_the_missing_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(checks.EXTRA_MODULES, "onnx", ("no_such_module_for_yolact_tests",))
    _refused(capsys, ["export", "--format", "onnx", "--out", str(tmp_path / "m.onnx")], "pip install 'yolact[onnx]'")


def test_predict_api_refuses_contradicting_aliases():
    import numpy as np
    import yolact

    model = yolact.load(yolact.demo_weights_path())
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="score_threshold=0.3 and conf=0.5"):
        model.predict(img, score_threshold=0.3, conf=0.5)
    with pytest.raises(ValueError, match="top_k=10 and max_det=5"):
        model.predict(img, top_k=10, max_det=5)
    assert model.predict(img, conf=0.5, score_threshold=0.5) is not None  # the same value: no contradiction
    assert model.predict(img, max_det=5) is not None


def test_failed_runs_leave_no_empty_run_folder(tmp_path, monkeypatch, capsys):
    from yolact.runs import removed_if_failed

    monkeypatch.chdir(tmp_path)
    # predict: a source that does not exist fails after the run folder is chosen
    assert main(["predict", str(tmp_path / "missing.jpg"), "--quiet"]) == 2
    assert not (tmp_path / "runs").exists()
    # train: a COCO file that does not exist
    assert main(["train", "--train-ann", "none.json", "--train-images", "none", "--iters", "1"]) == 2
    assert not (tmp_path / "runs").exists()
    # files already written are kept, with their folder
    with pytest.raises(RuntimeError):
        with removed_if_failed(tmp_path / "r") as out:
            (out / "sub").mkdir(parents=True)
            (out / "empty").mkdir()
            (out / "sub" / "a.txt").write_text("x")
            raise RuntimeError
    assert (tmp_path / "r" / "sub" / "a.txt").exists() and not (tmp_path / "r" / "empty").exists()


@pytest.mark.parametrize("argv", [["--debug", "data", "synth"], ["data", "synth", "--debug"]])
def test_debug_before_or_after_the_verb(tmp_path, capsys, argv):
    # a refused option with --debug: the traceback comes with the one line, wherever --debug stands
    assert main(argv + ["--out", str(tmp_path / "d"), "--max-objects", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "--max-objects 0" in err


def test_without_debug_no_traceback(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--max-objects", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def _options_of(parser, name="yolact"):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, child in action.choices.items():
                yield from _options_of(child, f"{name} {verb}")
        elif action.option_strings:
            yield name, action


def test_every_flag_has_help_and_defaults_show():
    import argparse
    from yolact.cli import build_parser

    parser = build_parser()
    missing = [f"{verb} {a.option_strings[0]}" for verb, a in _options_of(parser) if not a.help]
    assert not missing, missing
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["train"].format_help()
    assert "(default: 8)" in text  # --batch-size


@pytest.mark.parametrize("flags,words", [
    (["--port", "80000"], ["--port 80000"]),
    (["--port", "0"], ["--port 0"]),
    (["--timeout", "0"], ["--timeout"]),
    (["--classes", "no_such_class"], ["no_such_class"]),
    (["--iou", "2"], ["iou 2"]),
])
def test_serve_refuses_options_before_starting(capsys, flags, words):
    pytest.importorskip("fastapi", reason="serving needs the serve extra")
    _refused(capsys, ["serve"] + flags, *words)


def test_info_says_the_stored_precision(capsys):
    import yolact
    from yolact.prediction.info import stored_precision

    # the demo model is stored as fp16 and loads into float32: both said, each under its name
    assert main(["info"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["stored", "fp16"] in lines and ["runs", "in", "float32"] in lines, lines
    # and the precision predict uses by default: fused for the light presets, said as such
    assert any(line[:3] == ["predicts", "at", "fp32-fused"] for line in lines), lines
    assert stored_precision(yolact.demo_weights_path()) == "fp16"


def test_demo_weights_name_resolves_everywhere():
    # train, eval, export and predict all go through resolve_weights (train did not know 'demo')
    import yolact
    from yolact.hub import resolve_weights

    assert resolve_weights("demo") == yolact.demo_weights_path()


def test_eval_plots_without_out_is_one_line(capsys):
    _refused(capsys, ["eval", "--ann", "a.json", "--images", "imgs", "--plots"], "--plots", "--out")


def test_calibration_skips_a_corrupt_image_with_a_note(tmp_path, capsys):
    import cv2
    import numpy as np
    from yolact.deploy.calibration import calibration_images

    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 50, 3), 128, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    imgs = calibration_images(str(tmp_path), None, 10, 64, progress=False)
    assert len(imgs) == 1 and imgs[0].shape == (1, 3, 64, 64)
    assert "b.jpg" in capsys.readouterr().err
    (tmp_path / "a.png").unlink()
    with pytest.raises(YolactError, match="no readable calibration image"):
        calibration_images(str(tmp_path), None, 10, 64, progress=False)


def test_a_failed_data_check_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", "nope.json"]) == 2
    assert main(["data", "check", "nope.json", "--out", "a/b/c"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_nan_is_not_a_number_not_out_of_range():
    """#27 leftovers: `--lr nan` passed no comparison and got a range message (or none)."""
    for check, args in ((checks.positive, ()), (checks.at_least, (0,)), (checks.in_range, (0.0, 1.0))):
        with pytest.raises(YolactError, match=r"--x nan: not a number"):
            check("--x", float("nan"), *args)
    with pytest.raises(YolactError, match="not finite"):
        checks.positive("--x", float("inf"))


def test_train_lr_nan_is_refused_before_work(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--lr", "nan", "--out", str(tmp_path / "r")]) == 2
    assert "--lr nan: not a number" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, words", [
    (["eval", "--ann", "{tmp}/none.json", "--images", "{tmp}"], "--ann {tmp}/none.json: no such file"),
    (["eval", "--ann", "{tmp}/a.json", "--images", "{tmp}/a.json"], "--images {tmp}/a.json: is a file; a folder is meant"),
    (["eval", "--ann", "{tmp}/a.json", "--images", "{tmp}", "--pr-threshold", "2"], "--pr-threshold 2.0: must be in"),
    (["eval", "--ann", "{tmp}/a.json", "--images", "{tmp}", "--out", "{tmp}/a.txt"], "--out {tmp}/a.txt: is a file; a folder is meant"),
    (["eval", "--ann", "{tmp}/a.json", "--images", "{tmp}", "--out", "{tmp}/d.json"], "is a folder; a file is meant"),
    (["benchmark", "--repeats", "0"], "--repeats 0: must be at least 1"),
    (["benchmark", "--image", "{tmp}/none.jpg"], "--image {tmp}/none.jpg: no such file"),
    (["benchmark", "--ann", "{tmp}/a.json", "--images", "{tmp}"], "--ann has no effect without --backend all"),
    (["benchmark", "--json", "{tmp}/d.json"], "--json {tmp}/d.json: is a folder; a file is meant"),
    (["info", "--img-size", "100"], "--img-size 100: expected a multiple of 32"),
    (["data", "convert", "--to", "coco", "{tmp}/none", "--out", "{tmp}/o.json"], "{tmp}/none: no such file or folder"),
    (["data", "convert", "--to", "coco", "{tmp}", "--out", "{tmp}/d.json"], "--out {tmp}/d.json: is a folder"),
    (["data", "convert", "--to", "coco", "{tmp}", "--out", "{tmp}/o.json", "--val", "0.2"],
     "--val has no effect without --to yolo"),
    (["data", "check", "{tmp}/none"], "{tmp}/none: no such file or folder"),
    (["data", "check", "{tmp}/a.json", "--images", "{tmp}/nope"], "--images {tmp}/nope: no such folder"),
    (["predict", "{tmp}/a.json", "--out", "{tmp}/a.json"], "--out {tmp}/a.json: is a file; a folder is meant"),
])
def test_verbs_check_files_and_ranges_before_work(tmp_path, capsys, argv, words):
    """#27 item 3: eval, benchmark, info, data convert/check and --out are checked before any work,
    in one line with exit 2."""
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "d.json").mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words.format(tmp=tmp_path) in err[0], err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("flags, words", [(["--images", "0"], "--images 0: must be at least 1"),
                                          (["--val", "0"], "--val 0: must be at least 1"),
                                          (["--score-threshold", "nan"], "--score-threshold nan: not a number")])
def test_demo_refuses_before_any_folder(tmp_path, capsys, flags, words):
    assert main(["demo", "--out", str(tmp_path / "d")] + flags) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------------------------
# A bare 'cuda' is resolved to an indexed device once, where the device is parsed:
# torch.cuda.set_device(torch.device('cuda')) raises in torch 2.11 ("Expected a torch.device
# with a specified index"), which ended benchmarks/gpu.py --device cuda at its start.
# ---------------------------------------------------------------------------------------------


def _pretend_cuda(monkeypatch, count=2, current=1):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)


@pytest.mark.parametrize("given,want", [("cuda", "cuda:1"), ("cuda:0", "cuda:0"), (None, "cuda:1"),
                                        ("", "cuda:1"), ("auto", "cuda:1"), ("cpu", "cpu")])
def test_resolve_device_gives_cuda_an_index(monkeypatch, given, want):
    import torch

    _pretend_cuda(monkeypatch)
    dev = checks.resolve_device(given)
    assert dev == torch.device(want) and (dev.type != "cuda" or dev.index is not None)
    # and the indexed device is what torch.cuda.set_device accepts (its own index rule)
    from torch.cuda._utils import _get_device_index

    if dev.type == "cuda":
        assert _get_device_index(dev) == dev.index


def test_resolve_device_refuses_what_is_not_there(monkeypatch):
    import torch

    assert checks.resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(YolactError, match="--device gpu"):
        checks.resolve_device("gpu")
    if not torch.cuda.is_available():
        assert checks.resolve_device(None) == torch.device("cpu")
        with pytest.raises(YolactError, match="CUDA is not available"):
            checks.resolve_device("cuda")
    _pretend_cuda(monkeypatch, count=1, current=0)
    with pytest.raises(YolactError, match=r"--device cuda:3: no such CUDA device \(this machine has 1"):
        checks.resolve_device("cuda:3")


def test_every_device_parser_resolves_a_bare_cuda(monkeypatch):
    """The CLI's --device, the trainer's options and torchrun's setup all give an indexed device."""
    import torch

    from yolact.cli.common import device as cli_device
    from yolact.training.distributed import setup_distributed

    _pretend_cuda(monkeypatch, current=0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert cli_device("cuda") == torch.device("cuda:0")
    assert cli_device(None) == torch.device("cuda:0")
    assert setup_distributed("cuda") == torch.device("cuda:0")


def test_gpu_benchmark_parses_a_bare_cuda(monkeypatch):
    """benchmarks/gpu.py's device, before it touches CUDA (set_device needs the index)."""
    import torch

    from conftest import load_benchmark

    bench = load_benchmark("gpu")
    _pretend_cuda(monkeypatch, current=0)
    assert bench.parse_device("cuda") == torch.device("cuda:0")
    assert bench.parse_device("cpu") == torch.device("cpu")
