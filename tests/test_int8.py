"""``--precision int8`` on a PyTorch checkpoint (yolact.deploy.int8): the runtime chosen, the
one line saying which, the cache, calibration on the user's images, and the refusals."""
import os

import numpy as np
import pytest

import yolact
import yolact.deploy
from yolact.cli import main
from yolact.data.synth import make_image
from yolact.deploy import int8
from yolact.errors import YolactError

from conftest import write_calibration_images


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLACT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "int8"


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    return write_calibration_images(tmp_path_factory.mktemp("calib"), 4)


def test_the_runtime_order_and_the_missing_extras():
    assert [rt.name for rt in int8.INT8_RUNTIMES] == ["openvino", "onnxruntime"]  # fastest first
    assert int8.pick_runtime(lambda m: True).name == "openvino"
    assert int8.pick_runtime(lambda m: m == "onnxruntime").name == "onnxruntime"
    # nncf without openvino is not enough
    assert int8.pick_runtime(lambda m: m in ("nncf", "onnxruntime")).name == "onnxruntime"
    with pytest.raises(YolactError, match=r"yolact\[openvino\].*yolact\[onnx\]"):
        int8.pick_runtime(lambda m: False)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("YOLACT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert int8.cache_root() == tmp_path / "yolact" / "int8"
    monkeypatch.setenv("YOLACT_CACHE_DIR", str(tmp_path / "mine"))
    assert int8.cache_root() == tmp_path / "mine" / "int8"


def test_refusals(cache):
    with pytest.raises(YolactError, match="--calib .*is for --precision int8"):
        yolact.load("demo", calib="somewhere")
    with pytest.raises(YolactError, match="runs on the CPU"):
        yolact.load("demo", precision="int8", device="cuda")
    with pytest.raises(YolactError, match="--compile"):
        yolact.load("demo", precision="int8", compile="default")
    # another format's runtime on a checkpoint: named, not a protobuf parse error
    with pytest.raises(YolactError, match="a PyTorch file; --backend onnxruntime runs .onnx files"):
        yolact.deploy.load_predictor("demo", precision="int8", backend="onnxruntime")
    assert not cache.exists()  # nothing was made


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'yolact[openvino]'")
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("YOLACT_CACHE_DIR", str(tmp_path / "afile"))
    with pytest.raises(YolactError, match="cannot be written .*YOLACT_CACHE_DIR"):
        yolact.load("demo", precision="int8", calib=str(tmp_path))


def _matched_mask_iou(a, b):
    """Mean mask IoU of ``b``'s detections matched to ``a``'s by class and best box IoU."""
    ious = []
    for box, label, mask in zip(a.boxes, a.labels, a.masks):
        same = np.flatnonzero(b.labels == label)
        if not len(same):
            ious.append(0.0)
            continue
        m = b.masks[same]
        inter = (m & mask).sum((1, 2))
        union = (m | mask).sum((1, 2))
        ious.append(float((inter / np.maximum(union, 1)).max()))
    return float(np.mean(ious)) if ious else 1.0


def test_openvino_int8_made_once_then_from_the_cache(cache, calib_dir, capsys):
    pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'yolact[openvino]'")
    pytest.importorskip("nncf", reason="needs the openvino extra: pip install 'yolact[openvino]'")
    model = yolact.load("demo", precision="int8", calib=str(calib_dir))
    err = capsys.readouterr().err
    assert "note: int8: OpenVINO (measured faster than ONNX Runtime int8 on CPU)" in err
    assert f"calibrated on images of {calib_dir}" in err and "cached:" in err
    assert (model.backend, model.precision) == ("openvino", "int8")
    files = list(cache.glob("*/model_int8_post.xml"))  # post-processing inside: the faster IR
    assert len(files) == 1 and not list(cache.glob("*.tmp*"))  # written whole, no leftovers
    assert model.include_postprocess and not list(cache.glob("*/model_int8.xml"))
    mtime = files[0].stat().st_mtime_ns

    again = yolact.load("demo", precision="int8", calib=str(calib_dir))
    assert "from the cache" in capsys.readouterr().err
    assert files[0].stat().st_mtime_ns == mtime and len(list(cache.iterdir())) == 1

    # a damaged entry names the folder to delete; one without its model is made again
    (files[0].with_suffix(".bin")).write_bytes(b"")
    with pytest.raises(YolactError, match="damaged int8 cache entry: delete"):
        yolact.load("demo", precision="int8", calib=str(calib_dir))
    files[0].unlink()
    again = yolact.load("demo", precision="int8", calib=str(calib_dir))
    assert "cached:" in capsys.readouterr().err and files[0].exists() and files[0].with_suffix(".bin").stat().st_size

    # another calibration source is another file
    yolact.load("demo", precision="int8")
    assert "calibrated on 32 synthetic images" in capsys.readouterr().err
    assert len(list(cache.iterdir())) == 2

    # close to fp32 on the demo model's domain
    fp32 = yolact.load("demo")
    rng = np.random.default_rng(11)
    for _ in range(3):
        img = make_image(rng, 240, 320, style="simple", max_objects=4)[0]
        want, got = fp32.predict(img), again.predict(img)
        assert abs(len(got) - len(want)) <= 1
        assert _matched_mask_iou(want, got) >= 0.9

    # what the post-processing graph cannot do runs on the core IR, quantised on first need
    # and cached beside it; the options it can do stay on the post-processing graph
    want = fp32.predict(img, iou=0.3)
    got = again.predict(img, iou=0.3)
    assert "the core graph (NMS on the host)" in capsys.readouterr().err
    core = list(cache.glob(f"{files[0].parent.name}/model_int8.xml"))
    assert core and core[0].with_suffix(".bin").stat().st_size and not list(cache.glob("*.tmp*"))
    assert abs(len(got) - len(want)) <= 1 and _matched_mask_iou(want, got) >= 0.9
    assert len(again.predict(img, nms="classic")) and again.predict(img, keep_proto=True).proto is not None
    assert again._core is not None and capsys.readouterr().err == ""  # made once
    reloaded = yolact.load("demo", precision="int8", calib=str(calib_dir))
    assert reloaded.predict(img, iou=0.3).boxes.tolist() == got.boxes.tolist()  # from the cache
    assert "the core graph" not in capsys.readouterr().err


def test_onnxruntime_int8_when_openvino_is_absent(cache, calib_dir, capsys, monkeypatch):
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'yolact[onnx]'")
    monkeypatch.setattr(int8, "pick_runtime", lambda: int8.INT8_RUNTIMES[1])
    model = yolact.load("demo", precision="int8", calib=str(calib_dir))
    err = capsys.readouterr().err
    assert "note: int8: ONNX Runtime (OpenVINO int8 is faster on CPU: pip install 'yolact[openvino]'), calibrated" in err
    assert model.backend == "onnxruntime" and model.precision == "int8"
    assert list(cache.glob("*/model_int8.onnx")) and not list(cache.glob("*/model_fp32.onnx"))
    img = make_image(np.random.default_rng(3), 240, 320, style="simple", max_objects=4)[0]
    assert _matched_mask_iou(yolact.load("demo").predict(img), model.predict(img)) >= 0.9


def test_cli_predict_int8_and_calib_without_int8(cache, calib_dir, tmp_path, capsys):
    pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'yolact[openvino]'")
    pytest.importorskip("nncf", reason="needs the openvino extra: pip install 'yolact[openvino]'")
    assert main(["predict", str(calib_dir / "0.png"), "--calib", str(calib_dir), "--out", str(tmp_path / "a")]) == 2
    assert "--calib" in capsys.readouterr().err
    assert main(["predict", str(calib_dir / "0.png"), "--precision", "int8", "--calib", str(calib_dir),
                 "--out", str(tmp_path / "b"), "--save-json"]) == 0
    assert "int8: OpenVINO" in capsys.readouterr().err
    assert (tmp_path / "b" / "results.json").exists()
    assert os.listdir(cache)
