import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import yolact
from yolact.checkpoint import (apply_legacy_rules, infer_config_from_name,
                               infer_config_from_shapes, read_checkpoint, save_checkpoint)
from yolact.config import PRESETS
from yolact.errors import YolactError

OFFICIAL = json.loads((Path(__file__).parent / "data" / "original_checkpoints.json").read_text())


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_preset_consumes_exactly_the_official_keys(name):
    model = yolact.build(name)
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert own == OFFICIAL[name]["state_dict"]
    assert model.cfg.num_classes + 1 == OFFICIAL[name]["num_classes_with_background"]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_config_inferred_from_shapes(name):
    sd = {k: torch.empty(s) for k, s in OFFICIAL[name]["state_dict"].items()}
    cfg = infer_config_from_shapes(sd)
    # im400/im700 share yolact_base's shapes: the file name tells them apart
    expected = "yolact_base" if name in ("yolact_im400", "yolact_im700") else name
    assert cfg.name == expected


def test_slim_resnet18_width_and_inference():
    model = yolact.build("yolact_resnet18_slim", num_classes=5)
    assert model.backbone.channels == [32, 64, 128, 256]
    n = sum(p.numel() for p in model.parameters())
    assert 2e6 < n < 4e6  # a ~6 MB fp16 file
    cfg = infer_config_from_shapes(model.state_dict())
    assert cfg.name == "yolact_resnet18_slim" and cfg.num_classes == 5


def test_config_from_official_file_name():
    assert infer_config_from_name("weights/yolact_base_54_800000.pth") == "yolact_base"
    assert infer_config_from_name("yolact_plus_resnet50_54_800000.pth") == "yolact_plus_resnet50"
    assert infer_config_from_name("yolact_im700_54_800000.pth") == "yolact_im700"
    assert infer_config_from_name("yolact_base_10_1000_interrupt.pth") == "yolact_base"
    assert infer_config_from_name("mystery.pth") is None


def test_legacy_rules_drop_old_keys():
    cfg = PRESETS["yolact_base"]
    sd = {"backbone.layer1.0.conv1.weight": 1, "backbone.layers.0.0.conv1.weight": 2,
          "fpn.downsample_layers.1.weight": 3, "fpn.downsample_layers.2.weight": 4}
    assert set(apply_legacy_rules(sd, cfg)) == {"backbone.layers.0.0.conv1.weight", "fpn.downsample_layers.1.weight"}


def official_file(tmp_path, name="yolact_resnet50", fname=None):
    torch.manual_seed(0)
    model = yolact.build(name)
    sd = model.state_dict()
    sd["fpn.downsample_layers.2.weight"] = torch.zeros(1)  # v1.0 extra layer: ignored on load
    path = tmp_path / (fname or f"{name}_54_800000.pth")
    torch.save(sd, path)
    return path, model


def test_load_official_checkpoint_as_is(tmp_path):
    path, ref = official_file(tmp_path)
    model = yolact.load(path)
    assert model.cfg.name == "yolact_resnet50" and not model.training
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_load_infers_from_shapes_when_name_unknown(tmp_path):
    path, _ = official_file(tmp_path, "yolact_resnet50_pascal", fname="my_weights.pth")
    model = yolact.load(path)
    assert model.cfg.name == "yolact_resnet50_pascal" and model.cfg.num_classes == 20


def test_missing_and_mismatched_keys_are_named(tmp_path):
    path, ref = official_file(tmp_path)
    sd = torch.load(path, weights_only=True)
    del sd["proto_net.0.bias"]
    sd["fpn.lat_layers.0.bias"] = torch.zeros(7)
    sd["extra.thing"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(YolactError) as e:
        yolact.load(path)
    msg = str(e.value)
    assert "proto_net.0.bias" in msg and "fpn.lat_layers.0.bias" in msg and "extra.thing" in msg
    assert "\n" not in msg


def test_project_checkpoint_is_self_describing(tmp_path, tiny_model):
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_model)
    model = yolact.load(path)
    assert model.cfg == tiny_model.cfg and model.class_names == ("a", "b", "c")
    assert not list(tmp_path.glob("*.tmp"))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(YolactError, match="refused"):
        read_checkpoint(path)


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"not a zip at all" * 10, "not a PyTorch checkpoint")])
def test_corrupt_files(tmp_path, content, match):
    p = tmp_path / "bad.pth"
    p.write_bytes(content)
    with pytest.raises(YolactError, match=match):
        read_checkpoint(p)


@pytest.mark.parametrize("name,content,what", [
    ("notes.txt", b"hello\nworld\n", "a text file: 'hello'"),
    ("photo.jpg", b"\xff\xd8\xff\xe0" + bytes(100), "a JPEG image"),
    ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
])
def test_a_text_file_or_image_as_weights_is_named_for_what_it_is(tmp_path, name, content, what):
    """New-user report: a .txt passed as --weights said 'corrupt data: KeyError'."""
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(YolactError) as err:
        read_checkpoint(p)
    assert str(err.value) == f"{p}: not a PyTorch checkpoint ({what})"


def test_not_a_state_dict(tmp_path):
    p = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], p)
    with pytest.raises(YolactError, match="expected a state dict"):
        read_checkpoint(p)
    p2 = tmp_path / "mixed.pth"
    torch.save({"a": torch.zeros(1), "b": 3}, p2)
    with pytest.raises(YolactError, match="not a state dict"):
        yolact.load(p2)


@pytest.mark.parametrize("change,match", [
    ({"mask_score": "foo"}, "mask_score 'foo': expected one of class, maskness"),
    ({"mask_interpolation": "nearest"}, "mask_interpolation 'nearest': expected one of bilinear, bicubic"),
    ({"no_such_field": 1}, "unknown config fields: \\['no_such_field'\\]"),
    ({"category_ids": [1]}, "category_ids has 1 ids for 3 classes"),
])
def test_a_stored_config_the_package_refuses_is_one_error_naming_the_file(tmp_path, tiny_model, change, match,
                                                                         capsys):
    """New-user report: an edited config in a .pt crashed every command with a ValueError."""
    from yolact.cli import main

    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_model)
    obj = torch.load(path, weights_only=True)
    obj["config"] = dict(obj["config"], **change)
    torch.save(obj, path)
    with pytest.raises(YolactError, match=f"^{path}: its stored config is not valid: {match}"):
        yolact.load(path)
    assert main(["info", "--weights", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "Traceback" not in err


def test_missing_file():
    with pytest.raises(YolactError, match="no such"):
        yolact.load("/nonexistent/yolact_base_1_1.pth")


def test_compact_fp16_checkpoint(tmp_path, tiny_model, bgr_image):
    from yolact.checkpoint import save_compact
    save_checkpoint(tmp_path / "full.pt", tiny_model)
    save_compact(tmp_path / "small.pt", tiny_model)
    assert (tmp_path / "small.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    model = yolact.load(tmp_path / "small.pt")
    assert next(model.parameters()).dtype == torch.float32
    a = tiny_model.predict(bgr_image, score_threshold=0.3)
    b = model.predict(bgr_image, score_threshold=0.3)
    k = min(3, len(a), len(b))
    assert k > 0 and np.array_equal(a.labels[:k], b.labels[:k])
