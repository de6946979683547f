"""model_info / `yolact info`: counts checked against independent sums, origins of each kind of file."""
import json

import torch

import yolact
from yolact.checkpoint import FORMAT_TAG, atomic_save, save_checkpoint, save_compact
from yolact.cli import main
from yolact.prediction.info import file_origin, format_info, model_info

from conftest import make_tiny_model


def _conv_flops(model, size):
    """2 x multiply-adds of every Conv2d, counted from the shapes seen by forward hooks."""
    total = []

    def hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total.append(2 * k * out.numel())

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return sum(total)


def test_model_info_of_the_demo_model():
    model = yolact.load(yolact.demo_weights_path(), precision="fp32")  # as `yolact info` loads it
    info = model_info(model, yolact.demo_weights_path())
    assert info["preset"] == model.cfg.name and info["classes"] == list(model.cfg.class_names)
    assert info["input_size"] == model.cfg.max_size
    sd = torch.load(yolact.demo_weights_path(), weights_only=True)["model"]
    trainable = {n for n, _ in model.named_parameters()}
    assert info["parameters"] == sum(v.numel() for k, v in sd.items() if k in trainable)
    convs = _conv_flops(model, model.cfg.max_size)
    assert 0.97 * info["gflops"] * 1e9 <= convs <= info["gflops"] * 1e9  # convolutions are nearly all of it
    bigger = model_info(model, img_size=model.cfg.max_size + 64)
    ratio = ((model.cfg.max_size + 64) / model.cfg.max_size) ** 2
    assert 0.97 * ratio < bigger["gflops"] / info["gflops"] < 1.03 * ratio  # all convolutional: FLOPs ~ pixels
    assert "origin" not in bigger
    assert "fp16" in info["origin"]
    text = format_info(info)
    for word in ("preset", "classes", "parameters", "GFLOPs", "origin", model.cfg.name):
        assert word in text
    assert "masks        scored by class score, upsampled bilinearly" in text
    fast = dict(info, mask_score="maskness", mask_interpolation="bicubic")
    assert "scored by class score x maskness, upsampled bicubicly" not in format_info(fast)
    assert "scored by class score x maskness, upsampled bicubically" in format_info(fast)


def test_file_origins(tmp_path):
    model = make_tiny_model(classes=("a", "b"))
    official = tmp_path / "yolact_resnet18_12_3400.pth"
    torch.save(model.state_dict(), official)
    assert file_origin(official).startswith("official YOLACT release")
    other = tmp_path / "weights.pth"
    torch.save(model.state_dict(), other)
    assert file_origin(other).startswith("original-format state dict")
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, model)
    assert file_origin(plain).startswith("yolact checkpoint")
    compact = tmp_path / "compact.pt"
    save_compact(compact, model)
    assert "torch-fp16" in file_origin(compact)
    trained = tmp_path / "last.pt"
    atomic_save({"format": FORMAT_TAG, "config": model.cfg.to_dict(), "model": model.state_dict(),
                 "iteration": 1200, "best_ap": 0.4567}, trained)
    assert file_origin(trained) == "trained by `yolact train` (iteration 1200; the run's best val mask AP 0.457)"
    for saved_as, whose in (("last", "the run's best (best.pt)"), ("best", "this file's")):
        atomic_save({"format": FORMAT_TAG, "config": model.cfg.to_dict(), "model": model.state_dict(),
                     "iteration": 1200, "best_ap": 0.4567, "recipe": '{"name": "fast", "lr": 0.002}',
                     "saved_as": saved_as}, trained)
        assert file_origin(trained) == f"trained by `yolact train` --recipe fast (iteration 1200; {whose} val mask AP 0.457)"
    assert file_origin(tmp_path / "m.onnx").startswith("exported by `yolact export`")


def test_info_cli(tmp_path, capsys):
    model = make_tiny_model(classes=("cat", "dog"))
    w = tmp_path / "m.pt"
    save_checkpoint(w, model)
    assert main(["info", "--weights", str(w), "--json", "--img-size", "96"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == ["cat", "dog"] and info["input_size"] == 96 and info["gflops"] > 0
    assert info["origin"].startswith("yolact checkpoint")
    assert main(["info", "--weights", str(w)]) == 0
    out = capsys.readouterr().out
    assert "yolact_resnet18" in out and "GFLOPs" in out and "origin" in out and "cat, dog" in out
    assert main(["info", "--weights", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_info_says_the_category_ids_a_model_writes():
    """#27 item 4: the ids every output writes, when they are not the class index + 1."""
    from yolact.prediction.info import format_info

    model = yolact.load(yolact.demo_weights_path())
    assert model_info(model)["category_ids"] == [1, 2, 3, 4, 5]
    assert "category ids" not in format_info(model_info(model))
    model.cfg = model.cfg.replace(category_ids=(3, 7, 12, 13, 20))
    info = model_info(model)
    assert info["category_ids"] == [3, 7, 12, 13, 20] and "category ids  3, 7, 12, 13, 20" in format_info(info)


def test_info_takes_the_file_as_a_positional_argument(tmp_path, capsys):
    """New-user report: `yolact info model.pt` needed -w; the file may now be given either way,
    and two different files at once is one line, exit 2."""
    model = make_tiny_model(classes=("cat", "dog"))
    w = tmp_path / "m.pt"
    save_checkpoint(w, model)
    assert main(["info", str(w), "--json", "--img-size", "96"]) == 0
    positional = json.loads(capsys.readouterr().out)
    assert main(["info", "-w", str(w), "--json", "--img-size", "96"]) == 0
    assert json.loads(capsys.readouterr().out) == positional and positional["file"] == str(w)
    assert main(["info", str(w), "--weights", str(w), "--json", "--img-size", "96"]) == 0  # the same file twice
    assert json.loads(capsys.readouterr().out) == positional
    other = tmp_path / "n.pt"
    save_checkpoint(other, model)
    assert main(["info", str(w), "--weights", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "give the file once" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["info", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
