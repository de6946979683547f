"""The OpenVINO backend against PyTorch: fp32 IR (core and post-processing graphs) gives the
same detections; NNCF int8 stays within the accuracy bound on the demo model; CLI and errors."""
import numpy as np
import pytest

pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'yolact[openvino]'")
pytest.importorskip("nncf", reason="needs the openvino extra: pip install 'yolact[openvino]'")

import yolact  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.data.synth import generate, make_image  # noqa: E402
from yolact.evaluation.coco import evaluate  # noqa: E402
from yolact.errors import YolactError  # noqa: E402
from yolact.deploy.calibration import calibration_images  # noqa: E402
from yolact.deploy.openvino import OpenVinoPredictor as OpenVinoModel, export_openvino  # noqa: E402


@pytest.fixture(scope="module")
def demo():
    return yolact.load(yolact.demo_weights_path())


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(21)
    return [make_image(rng, 240, 320, style="simple", max_objects=4)[0] for _ in range(6)]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ovdata")
    # the demo model's distribution; seeds apart from its training data (0, 10000) and demo (777)
    generate(root, n_train=64, n_val=60, size=256, seed=4321, max_objects=4, style="simple")
    return root


def mask_ious(a, b):
    inter = (a & b).sum((1, 2))
    union = (a | b).sum((1, 2))
    return inter / np.maximum(union, 1)


@pytest.mark.parametrize("post", [False, True])
def test_fp32_ir_matches_pytorch(demo, images, tmp_path, post):
    ov_model = OpenVinoModel(export_openvino(demo, tmp_path / "m.xml", include_postprocess=post))
    for img in images:
        want, got = demo.predict(img), ov_model.predict(img)
        assert got.labels.tolist() == want.labels.tolist()
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1.0)
        if len(want):
            assert mask_ious(got.masks, want.masks).min() >= 0.98
    # several images at once run as asynchronous requests; the same answers, in order
    many = ov_model.predict(images)
    for img, r in zip(images, many):
        assert r.labels.tolist() == demo.predict(img).labels.tolist()


def test_int8_within_the_accuracy_bound(demo, demo_data, tmp_path):
    calib = calibration_images(str(demo_data / "train"), None, 64, demo.cfg.max_size, progress=False)
    int8 = OpenVinoModel(export_openvino(demo, tmp_path / "q.xml", int8="full", calibration=calib))
    fp32 = OpenVinoModel(export_openvino(demo, tmp_path / "f.xml"))
    ap32 = evaluate(fp32, demo_data / "val.json", demo_data / "val", progress=False)["segm"]["AP"]
    ap8 = evaluate(int8, demo_data / "val.json", demo_data / "val", progress=False)["segm"]["AP"]
    assert abs(ap8 - ap32) <= 0.010, (ap32, ap8)
    # matched detections (same class, best box IoU) keep their masks
    from yolact.data.images import read_image
    from yolact.tracking import box_iou
    ious = []
    for path in sorted((demo_data / "val").glob("*.jpg"))[:30]:
        img = read_image(path)
        a, b = fp32.predict(img, score_threshold=0.3), int8.predict(img, score_threshold=0.3)
        if not len(a) or not len(b):
            continue
        sim = box_iou(a.boxes, b.boxes) * (a.labels[:, None] == b.labels[None, :])
        for i, j in enumerate(sim.argmax(1)):
            if sim[i, j] >= 0.5:
                ious.append(mask_ious(a.masks[i:i + 1], b.masks[j:j + 1])[0])
    assert len(ious) > 20 and np.mean(ious) >= 0.95, (len(ious), np.mean(ious))


def test_bad_files_give_one_line_errors(tmp_path, demo):
    with pytest.raises(YolactError, match="takes an IR .xml"):
        OpenVinoModel(tmp_path / "model.onnx")
    with pytest.raises(YolactError, match="no such OpenVINO IR"):
        OpenVinoModel(tmp_path / "missing.xml")
    (tmp_path / "bad.xml").write_text("<net>not really</net>")
    with pytest.raises(YolactError, match="bad.xml: not a readable OpenVINO IR"):
        OpenVinoModel(tmp_path / "bad.xml")
    with pytest.raises(YolactError, match="bf16"):
        OpenVinoModel(export_openvino(demo, tmp_path / "m.xml"), precision="int8")


def test_cli_export_int8_then_predict_and_eval(demo_data, tmp_path, capsys):
    xml = tmp_path / "demo_int8.xml"
    assert main(["export", "--format", "openvino", "--int8", "--calib", str(demo_data / "train"),
                 "--calib-count", "16", "--out", str(xml)]) == 0
    assert xml.exists() and xml.with_suffix(".bin").exists()
    assert main(["predict", "--backend", "openvino", "--weights", str(xml), str(demo_data / "val"),
                 "--out", str(tmp_path / "pred"), "--quiet"]) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == 60
    capsys.readouterr()
    assert main(["eval", "--backend", "openvino", "--weights", str(xml), "--ann", str(demo_data / "val.json"),
                 "--images", str(demo_data / "val"), "--quiet"]) == 0
    assert "mask" in capsys.readouterr().out


def test_serving_an_openvino_model(demo, images, tmp_path):
    pytest.importorskip("fastapi_offline", reason="needs the serve extra")
    pytest.importorskip("httpx", reason="needs httpx (test extra)")
    import cv2
    from fastapi.testclient import TestClient

    from yolact.serve.app import ServeSettings, create_app

    ov_model = OpenVinoModel(export_openvino(demo, tmp_path / "m.xml"))
    data = cv2.imencode(".png", images[0])[1].tobytes()
    with TestClient(create_app(ov_model, ServeSettings(), {"backend": "openvino"})) as c:
        body = c.post("/v1/segment", content=data).json()
        assert c.get("/v1/model").json()["backend"] == "openvino"
    want = demo.predict(images[0])
    assert [d["label"] for d in body["detections"]] == want.labels.tolist()


def test_cli_exports_the_post_processing_graph(demo, images, tmp_path, capsys):
    """New-user report: the README says export writes an IR of either graph; the CLI refused
    --include-postprocess for OpenVINO. It writes it, and the file predicts like the model."""
    xml = tmp_path / "post.xml"
    assert main(["export", "--format", "openvino", "--include-postprocess", "--max-det", "50", "--out", str(xml)]) == 0
    ov_model = OpenVinoModel(xml)
    assert ov_model.include_postprocess and ov_model.cfg.max_num_detections == 50
    for img in images[:2]:
        want, got = demo.predict(img), ov_model.predict(img)
        assert got.labels.tolist() == want.labels.tolist()
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
