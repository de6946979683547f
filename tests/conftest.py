import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolact
from yolact.config import get_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name):
    """The script ``benchmarks/<name>.py`` as a fresh module (a script, not a package: loaded by path,
    with ``benchmarks/`` on sys.path while it runs, for scripts that import a sibling), registered in
    sys.modules as ``bench_<name>_for_test`` (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}_for_test", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]  # not a half-loaded module left behind
        raise
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def make_tiny_model(name="yolact_resnet18", size=128, classes=("a", "b", "c"), seed=0, detections=True):
    """A small randomly initialised model that produces detections (conf biased to foreground)."""
    torch.manual_seed(seed)
    cfg = get_config(name, class_names=classes).replace(max_size=size)
    model = yolact.build(cfg).eval()
    if detections:
        head = model.prediction_layers[0]
        with torch.no_grad():
            bias = head.conf_layer.bias.view(cfg.anchors_per_location, cfg.num_classes + 1)
            bias[:, 0] = -2.0
            bias[:, 1:] = torch.randn_like(bias[:, 1:])
            head.conf_layer.weight.mul_(5.0)
    return model


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture
def bgr_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    img[20:60, 30:90] = (40, 200, 90)
    return img


def write_calibration_images(root, count):
    """``count`` synthetic 320x240 PNGs of simple shapes in ``root`` (a --calib folder); returns root."""
    from yolact.data.synth import make_image

    rng = np.random.default_rng(5)
    for i in range(count):
        cv2.imwrite(str(root / f"{i}.png"), make_image(rng, 240, 320, style="simple", max_objects=4)[0])
    return root


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    """A --calib folder of 12 synthetic images (:func:`write_calibration_images`)."""
    return write_calibration_images(tmp_path_factory.mktemp("calib"), 12)


def demo_int8_case(root):
    """The int8 accuracy check's inputs (issue #28 item 4): the demo model, 48 calibration
    inputs (graph inputs of another seed than the val set) and a 40-image synthetic val set ->
    (model, calibration, val json, val images)."""
    import yolact
    from yolact.data.synth import generate
    from yolact.deploy.calibration import calibration_images

    ref = yolact.load("demo", device="cpu")
    generate(root / "calib", 48, 0, size=256, seed=2828, max_objects=4, style="simple")
    generate(root / "synth", 0, 40, size=256, seed=4242, max_objects=4, style="simple")
    calib = calibration_images(str(root / "calib" / "train"), None, 48, ref.cfg.max_size, progress=False)
    return ref, calib, str(root / "synth" / "val.json"), str(root / "synth" / "val")


def assert_mask_ap_within_3_points(ref, int8_model, ann, images):
    """The int8 model's mask AP (points) within 3.0 of the fp32 model's on the same val set."""
    from yolact.evaluation.coco import evaluate

    want = 100 * evaluate(ref, ann, images, progress=False)["segm"]["AP"]
    got = 100 * evaluate(int8_model, ann, images, progress=False)["segm"]["AP"]
    assert want > 30  # the comparison means something
    assert abs(got - want) <= 3.0, (want, got)


def assert_int8_core_graph_near(fp32_model, int8_model):
    """An int8 core-graph file against its fp32 file on one 128 px input: the four raw outputs
    with the same shapes and float32, class scores near (int8 is not bit-equal), and a predict
    that gives masks at the image's size. Returns the raw outputs (fp32, int8)."""
    from yolact.data.synth import make_image

    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    want, got = fp32_model.run_each(x)[0], int8_model.run_each(x)[0]
    for name, w, g in zip(("boxes", "scores", "coefs", "proto"), want, got):
        assert g.shape == w.shape and g.dtype == np.float32, name
    assert np.abs(got[1] - want[1]).mean() < 0.05
    r = int8_model.predict(make_image(np.random.default_rng(3), 96, 128, style="simple")[0])
    assert r.masks.shape[1:] == (96, 128)
    return want, got


def hole_pixels(mask):
    """The holes of a 0/1 mask: background pixels not 4-connected to the image border."""
    _, comp = cv2.connectedComponents(np.pad(1 - mask, 1, constant_values=1), connectivity=4)
    return ((comp != comp[0, 0]) & (comp > 0))[1:-1, 1:-1].astype(np.uint8)
