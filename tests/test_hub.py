"""The model zoo against a stand-in hub on 127.0.0.1 (tests/hub_helpers.py): first download,
cached offline load, corrupted transfer, 404, offline and not cached, the CLI and training.
Each test has its own cache; nothing here reaches the internet."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("huggingface_hub")
from huggingface_hub import constants  # noqa: E402

import yolact  # noqa: E402
from yolact import hub  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.data.synth import generate  # noqa: E402
from yolact.errors import YolactError  # noqa: E402

from hub_helpers import FakeHub  # noqa: E402

DEMO = yolact.demo_weights_path()
BASE = ("dbolya/yolact-base", "yolact_base_54_800000.pth")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A stand-in hub, and huggingface_hub pointed at it with a fresh cache. The client reads
    HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE once at import, so the running process gets its
    constants patched and subprocesses get the environment variables."""
    server = FakeHub().start()
    cache = tmp_path / "hf_home" / "hub"
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    if hasattr(constants, "AGENT_HARNESSES_PATH"):  # the client's own small cache: keep it in tmp too
        monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hf_home" / "agent_harnesses.json"))
    for var in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE",
                "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server.cache = cache
    yield server
    server.stop()


def offline(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_first_download_then_cached_offline_with_no_request(fake_hub, monkeypatch, capfd):
    sha = fake_hub.add(*BASE, DEMO.read_bytes())
    monkeypatch.setenv("TQDM_POSITION", "-1")  # the client draws its bar on terminals only; force it here
    path = hub.resolve_weights("yolact_base")
    err = capfd.readouterr().err
    assert "downloading yolact_base" in err and "100%" in err  # the announcement and the progress bar
    assert path.name == BASE[1] and str(path).startswith(str(fake_hub.cache))
    assert os.path.realpath(path).endswith(f"blobs/{sha}")  # the hub's cache layout: blob named by sha256
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert fake_hub.downloads() == 1

    offline(monkeypatch)
    fake_hub.requests.clear()
    model = yolact.load("yolact_base")
    assert fake_hub.requests == []  # offline and cached: no network request at all
    reference = yolact.load(DEMO)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_official_file_name_and_hf_url_fetch_the_same_way(fake_hub):
    fake_hub.add(*BASE, DEMO.read_bytes())
    fake_hub.add("someone/models", "sub/dir/model.pt", DEMO.read_bytes())
    assert hub.resolve_weights("yolact_base_54_800000.pth").name == BASE[1]
    p = hub.resolve_weights("hf://someone/models/sub/dir/model.pt")
    assert p.parts[-3:] == ("sub", "dir", "model.pt")
    assert yolact.load("hf://someone/models/sub/dir/model.pt").cfg.name == "yolact_resnet18_slim"


def test_local_paths_pass_through_and_unknown_names_are_named(tmp_path, fake_hub, monkeypatch):
    local = tmp_path / "yolact_base"  # a local file wins over the zoo name
    local.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert hub.resolve_weights("yolact_base") == Path("yolact_base")
    assert hub.resolve_weights(DEMO) == DEMO
    with pytest.raises(YolactError, match="yolact_bse: no such file, and not a model name; demo .built in. or a zoo model: yolact_resnet50"):
        hub.resolve_weights("yolact_bse")
    with pytest.raises(YolactError, match="yolact_im400: no hub copy"):
        hub.resolve_weights("yolact_im400")
    with pytest.raises(YolactError, match="yolact_resnet50_pascal: no hub copy"):
        hub.resolve_weights("yolact_resnet50_pascal")
    with pytest.raises(YolactError, match="yolact_resnet18: a light preset without official weights"):
        hub.resolve_weights("yolact_resnet18")
    with pytest.raises(YolactError, match="weights/yolact_base_54_800000.pth: no such file; pass 'yolact_base' instead"):
        hub.resolve_weights("weights/yolact_base_54_800000.pth")  # a path is never fetched silently
    with pytest.raises(YolactError, match="expected hf://owner/repo/path"):
        hub.resolve_weights("hf://owner/file.pth")
    assert fake_hub.requests == []


@pytest.mark.parametrize("lfs", [True, False], ids=["lfs-sha256", "git-sha1"])
def test_corrupted_transfer_is_refused_removed_and_fetched_again(fake_hub, lfs):
    fake_hub.add(*BASE, DEMO.read_bytes(), lfs=lfs)
    fake_hub.corrupt.add(BASE)
    with pytest.raises(YolactError) as e:
        hub.resolve_weights("yolact_base")
    msg = str(e.value)
    assert msg.startswith("yolact_base_54_800000.pth: downloaded file does not match the hub's ")
    assert ("sha256" if lfs else "git blob sha1") in msg and "removed it from the cache" in msg
    assert "\n" not in msg
    repo_dir = fake_hub.cache / "models--dbolya--yolact-base"
    assert not list(repo_dir.glob("blobs/*")) and not list(repo_dir.glob("snapshots/*/*"))

    fake_hub.corrupt.clear()  # the next run downloads again and succeeds
    path = hub.resolve_weights("yolact_base")
    assert path.read_bytes() == DEMO.read_bytes() and fake_hub.downloads() == 2


def test_recorded_sha256_is_checked_too(fake_hub, monkeypatch):
    fake_hub.add(*BASE, DEMO.read_bytes())
    entry = hub.ZOO["yolact_base"]
    monkeypatch.setitem(hub.ZOO, "yolact_base", hub.HubFile(entry.name, entry.repo, entry.filename, sha256="ab" * 32))
    with pytest.raises(YolactError, match="does not match the sha256 recorded in the zoo"):
        hub.resolve_weights("yolact_base")
    assert not list(fake_hub.cache.glob("models--dbolya--yolact-base/blobs/*"))


def test_missing_file_and_missing_repo(fake_hub, capsys):
    fake_hub.add("someone/models", "model.pt", b"x")
    with pytest.raises(YolactError, match=r"someone/models has no file nope\.pt \(HTTP 404 for http://127"):
        hub.resolve_weights("hf://someone/models/nope.pt")
    with pytest.raises(YolactError, match="repository dbolya/yolact-base not found on http://127"):
        hub.resolve_weights("yolact_base")
    capsys.readouterr()
    assert main(["predict", "--weights", "yolact_base", str(DEMO)]) == 2
    err = capsys.readouterr().err.splitlines()  # the announcement, then one error line
    assert len(err) == 2 and err[0].startswith("downloading yolact_base: ")
    assert err[1].startswith("yolact: error: yolact_base: repository dbolya/yolact-base not found")


def test_offline_and_not_cached_names_model_url_and_what_to_do(fake_hub, monkeypatch, capsys, tmp_path):
    offline(monkeypatch)
    with pytest.raises(YolactError) as e:
        hub.resolve_weights("yolact_plus_resnet50")
    msg = str(e.value)
    assert msg.startswith("yolact_plus_resnet50: not in the Hugging Face cache") and "HF_HUB_OFFLINE is set" in msg
    assert (f"download {fake_hub.url}/dbolya/yolact-plus-resnet50/resolve/main/yolact_plus_resnet50_54_800000.pth"
            " by hand and pass its path" in msg)
    assert "--weights path/to/yolact_plus_resnet50_54_800000.pth" in msg
    img = tmp_path / "img.png"
    img.write_bytes(b"")
    assert main(["predict", "--weights", "yolact_plus_resnet50", str(img)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("yolact: error: yolact_plus_resnet50: not in the Hugging Face cache")
    assert fake_hub.requests == []


def test_unreachable_hub_is_reported_as_such(fake_hub, monkeypatch):
    fake_hub.stop()  # connection refused: the client retries, then says so
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    import huggingface_hub.file_download as fd
    monkeypatch.setattr(fd, "_ETAG_RETRY_TIMEOUT", 1)
    monkeypatch.setattr("time.sleep", lambda s: None)  # the client's back-off between retries
    with pytest.raises(YolactError, match=r"yolact_base: not in the Hugging Face cache .* cannot be reached"):
        hub.resolve_weights("yolact_base")


def test_no_network_is_one_quick_line(fake_hub, monkeypatch):
    """A host name that does not resolve (no network): one line at once, not the client's
    retries; a cached copy is still used."""
    import time

    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.invalid")
    t0 = time.monotonic()
    with pytest.raises(YolactError, match=r"yolact_base: not in the Hugging Face cache .* does not resolve"):
        hub.resolve_weights("yolact_base")
    assert time.monotonic() - t0 < 20  # the client alone retries for ~25 s


def test_cli_weights_list_and_download(fake_hub, capsys):
    fake_hub.add(*BASE, DEMO.read_bytes())
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("yolact_base "))
    assert "dbolya/yolact-base/yolact_base_54_800000.pth" in row and "~201 MB" in row
    assert row.split()[-3:] == ["no", "29.8", "33.5"]
    assert "- (no hub copy)" in next(line for line in out.splitlines() if line.startswith("yolact_im400"))
    assert "resnet101_reducedfc.pth" in out

    assert main(["weights", "download", "yolact_base"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("yolact_base: ") and out.strip().endswith(BASE[1])
    main(["weights"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("yolact_base "))
    assert f"{DEMO.stat().st_size / 1e6:.1f} MB" in row and row.split()[-3] == "yes"


def test_cli_weights_verify_finds_a_copy_damaged_after_download(fake_hub, capsys):
    fake_hub.add(*BASE, DEMO.read_bytes())
    path = hub.resolve_weights("yolact_base")
    assert main(["weights", "verify"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [f"yolact_base: ok ({path})", "1 cached file(s) checked, 0 bad"]
    blob = Path(os.path.realpath(path))
    data = bytearray(blob.read_bytes())
    data[100] ^= 1  # e.g. a disk error, or a copy fetched by a tool that does not hash
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    assert main(["weights", "verify", "yolact_base"]) == 1
    out = capsys.readouterr().out
    assert "yolact_base: yolact_base_54_800000.pth: cached file does not match the hub's sha256" in out
    assert not blob.exists() and not path.exists() and hub.cached_file(hub.ZOO["yolact_base"]) is None


def test_cli_predict_export_with_a_zoo_name(fake_hub, tmp_path, monkeypatch):
    fake_hub.add(*BASE, DEMO.read_bytes())
    monkeypatch.chdir(tmp_path)
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "img.png"), np.full((64, 80, 3), 120, np.uint8))
    assert main(["predict", "--weights", "yolact_base", str(tmp_path / "img.png"), "-o", str(tmp_path / "out"),
                 "-q"]) == 0
    assert (tmp_path / "out" / "img.png").exists() or list((tmp_path / "out").rglob("*.png"))
    assert main(["export", "--weights", "hf://dbolya/yolact-base/yolact_base_54_800000.pth",
                 "--format", "torch-fp16"]) == 0
    assert (tmp_path / "yolact_base_54_800000_fp16.pt").exists()  # in the working folder, not the cache
    assert fake_hub.downloads() == 1  # the second command found the file in the cache


@pytest.fixture
def train_data(tmp_path):
    generate(tmp_path / "d", 4, 2, size=64, seed=1, max_objects=2)
    return tmp_path / "d"


def _train_args(data, out, *extra):
    return ["train", "--train-ann", str(data / "train.json"), "--train-images", str(data / "train"),
            "--iters", "1", "--batch-size", "2", "--img-size", "64", "--workers", "0", "--no-augment", "-q",
            "--out", str(out), *extra]


def _resnet50_imagenet_subset():
    """An official-shaped torchvision ResNet-50 file, cut to its stem and first stage to stay small."""
    torch.manual_seed(0)
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7), "fc.weight": torch.randn(1000, 2048)}
    for name in ("bn1",):
        sd.update({f"{name}.weight": torch.rand(64), f"{name}.bias": torch.randn(64),
                   f"{name}.running_mean": torch.randn(64), f"{name}.running_var": torch.rand(64)})
    for block in range(3):
        inp = 64 if block == 0 else 256
        for conv, shape in (("conv1", (64, inp, 1, 1)), ("conv2", (64, 64, 3, 3)), ("conv3", (256, 64, 1, 1))):
            sd[f"layer1.{block}.{conv}.weight"] = torch.randn(shape)
    sd["layer1.0.downsample.0.weight"] = torch.randn(256, 64, 1, 1)
    return sd


def _serve_resnet50_imagenet(fake_hub):
    import io
    buf = io.BytesIO()
    sd = _resnet50_imagenet_subset()
    torch.save(sd, buf)
    fake_hub.add(hub.INITIAL_WEIGHTS_REPO, "resnet50-19c8e357.pth", buf.getvalue())
    return sd


class _TrainerCalled(Exception):
    pass


@pytest.fixture
def trainer_args(monkeypatch):
    """Stop `yolact train` where it builds the Trainer and keep what the CLI passed it."""
    import yolact.training.api as training_api
    seen = {}

    def record(cfg, train_set, opts, val_ann=None, val_images=None, weights=None, backbone_weights=None, recipe=None):
        seen.update(cfg=cfg, weights=weights, backbone_weights=backbone_weights)
        raise _TrainerCalled

    monkeypatch.setattr(training_api, "Trainer", record)
    return seen


def test_train_cli_resolves_backbone_and_finetune_weights(fake_hub, train_data, tmp_path, monkeypatch, capsys,
                                                           trainer_args):
    _serve_resnet50_imagenet(fake_hub)
    fake_hub.add("dbolya/yolact-resnet50", "yolact_resnet50_54_800000.pth", DEMO.read_bytes())
    offline(monkeypatch)  # offline and not cached: one line, with both ways out
    assert main(_train_args(train_data, tmp_path / "r0", "--config", "yolact_resnet50")) == 2
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("warning:"))
    assert err.count("\n") == 1 and "resnet50-19c8e357.pth (ImageNet backbone of yolact_resnet50)" in err
    assert "--backbone-weights path/to/resnet50-19c8e357.pth, or pass --backbone-weights none" in err
    assert fake_hub.requests == []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    runs = {  # extra arguments -> (weights file, backbone file) the Trainer gets
        ("--config", "yolact_resnet50"): (None, "resnet50-19c8e357.pth"),  # the original's default
        ("--config", "yolact_resnet50", "--backbone-weights", "none"): (None, None),
        ("--config", "yolact_resnet18"): (None, None),  # light preset: as before
        ("--config", "yolact_resnet50", "--weights", "yolact_resnet50"): ("yolact_resnet50_54_800000.pth", None),
        ("--config", "yolact_resnet18", "--backbone-weights", "hf://dbolya/yolact-initial-weights/"
                                                             "resnet50-19c8e357.pth"): (None, "resnet50-19c8e357.pth"),
    }
    for extra, (weights, backbone) in runs.items():
        with pytest.raises(_TrainerCalled):
            main(_train_args(train_data, tmp_path / "r", *extra))
        got = [None if p is None else Path(p) for p in (trainer_args["weights"], trainer_args["backbone_weights"])]
        assert [p and p.name for p in got] == [weights, backbone], extra
        assert all(p is None or str(p).startswith(str(fake_hub.cache)) for p in got)
    assert fake_hub.downloads() == 2  # each file once


@pytest.mark.slow
def test_training_starts_official_presets_from_imagenet(fake_hub, train_data, tmp_path, capsys):
    sd = _serve_resnet50_imagenet(fake_hub)
    assert main(_train_args(train_data, tmp_path / "r1", "--config", "yolact_resnet50")) == 0
    out = capsys.readouterr().out
    assert f"backbone: loaded {len(sd) - 1} tensors" in out and "ignored: 1" in out  # all but fc.weight


def test_backbone_weights_choices(fake_hub):
    from yolact.config import get_config
    slim = get_config("yolact_resnet18_slim")
    assert hub.resolve_backbone_weights(None, slim) is None  # light presets start as before
    assert hub.resolve_backbone_weights(None, get_config("yolact_base"), finetune=True) is None
    with pytest.raises(YolactError, match="no ImageNet file for the resnet18 backbone"):
        hub.resolve_backbone_weights("imagenet", slim)
    assert hub.resolve_backbone_weights("none", get_config("yolact_base")) is None
    assert [hub.imagenet_file(n).filename for n in ("yolact_base", "yolact_plus_resnet50", "yolact_darknet53")] == \
        ["resnet101_reducedfc.pth", "resnet50-19c8e357.pth", "darknet53.pth"]
    assert fake_hub.requests == []


@pytest.mark.slow
def test_finetune_from_a_zoo_name(fake_hub, train_data, tmp_path, capsys):
    fake_hub.add("dbolya/yolact-resnet50", "yolact_resnet50_54_800000.pth", DEMO.read_bytes())
    assert main(_train_args(train_data, tmp_path / "ft", "--config", "yolact_resnet18_slim",
                            "--weights", "yolact_resnet50")) == 0
    out = capsys.readouterr().out
    assert "weights: loaded" in out and "backbone:" not in out  # fine-tuning: no ImageNet download
    assert [p for m, p in fake_hub.requests if m == "HEAD"] == \
        ["/dbolya/yolact-resnet50/resolve/main/yolact_resnet50_54_800000.pth"]


def test_environment_variables_in_a_fresh_process(fake_hub, tmp_path):
    """HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE as a user sets them (read at import by the client)."""
    fake_hub.add(*BASE, DEMO.read_bytes())
    env = dict(os.environ, PYTHONPATH=str(Path(yolact.__file__).parents[1]))
    run = [sys.executable, "-m", "yolact", "weights", "download", "yolact_base"]
    r = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "hf_home" / "hub") in r.stdout and fake_hub.downloads() == 1
    fake_hub.requests.clear()
    env["HF_HUB_OFFLINE"] = "1"  # cached: loads with no request; not cached: one line, exit 2
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))  # a real image: the weights are the problem
    script = ("import sys, yolact; from yolact.cli import main; print(yolact.load('yolact_base').cfg.name); "
              f"sys.exit(main(['predict', '--weights', 'yolact_im700', {str(image)!r}]))")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout.strip() == "yolact_resnet18_slim", r.stderr
    assert r.stderr.count("\n") == 1 and "yolact_im700: not in the Hugging Face cache" in r.stderr
    assert "HF_HUB_OFFLINE is set" in r.stderr
    assert fake_hub.requests == []
