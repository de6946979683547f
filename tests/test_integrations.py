"""Pre-labelling integrations (#31), tested through each tool's own SDK: supervision's
Detections and annotators, cvat-sdk's auto-annotation types and mask encoding."""
import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_model


def _predict(model, bgr_image):
    res = model.predict(bgr_image)
    assert len(res) > 0, "the tiny model must give detections for the test to mean anything"
    return res


def test_to_supervision_matches_results_by_pixel(bgr_image):
    sv = pytest.importorskip("supervision", reason="needs the supervision extra: pip install 'yolact[supervision]'")
    res = _predict(make_tiny_model(size=128, seed=1), bgr_image)
    det = res.to_supervision()
    assert isinstance(det, sv.Detections) and len(det) == len(res)
    np.testing.assert_array_equal(det.xyxy, res.boxes.astype(np.float32))
    np.testing.assert_array_equal(det.mask, res.masks)
    np.testing.assert_array_equal(det.confidence, res.scores)
    np.testing.assert_array_equal(det.class_id, res.labels)
    assert list(det.data["class_name"]) == res.names
    assert det.tracker_id is None
    # supervision's own annotator paints exactly the mask pixels (opacity 1)
    canvas = np.zeros_like(bgr_image)
    one = det[[0]]
    out = sv.MaskAnnotator(opacity=1.0, color=sv.Color(255, 255, 255)).annotate(canvas.copy(), one)
    np.testing.assert_array_equal(out.any(axis=2), res.masks[0])
    # empty results round-trip too
    empty = res.subset(np.zeros(0, int)).to_supervision()
    assert len(empty) == 0 and empty.mask.shape == (0, *res.image_shape)


def test_cvat_function_spec_and_masks_decode_to_predict(bgr_image):
    pytest.importorskip("cvat_sdk", reason="needs the cvat extra: pip install 'yolact[cvat]'")
    import cvat_sdk.auto_annotation as cvataa
    from cvat_sdk.masks import decode_mask
    from yolact.integrations.cvat import YolactFunction

    model = make_tiny_model(size=128, seed=1)
    fn = YolactFunction(model)
    assert isinstance(fn.spec, cvataa.DetectionFunctionSpec)
    assert [(l.name, l.id, l.type) for l in fn.spec.labels] == [("a", 0, "mask"), ("b", 1, "mask"), ("c", 2, "mask")]

    res = _predict(model, bgr_image)
    rgb = Image.fromarray(bgr_image[:, :, ::-1].copy())

    class Ctx:
        conf_threshold = None
        conv_mask_to_poly = False
    shapes = fn.detect(Ctx(), rgb)
    keep = [i for i in range(len(res)) if res.masks[i].any()]
    assert len(shapes) == len(keep)
    h, w = res.image_shape
    for s, i in zip(shapes, keep):
        assert s.type.value == "mask" and s.label_id == int(res.labels[i])
        decoded = decode_mask(s.points, image_width=w, image_height=h)
        np.testing.assert_array_equal(decoded.astype(bool), res.masks[i])

    # the confidence threshold from CVAT drops low mask scores
    Ctx.conf_threshold = float(np.median(res.box_scores)) + 1e-6
    kept = fn.detect(Ctx(), rgb)
    assert len(kept) == int(sum(res.masks[i].any() and res.box_scores[i] >= Ctx.conf_threshold for i in range(len(res))))
    assert 0 < len(kept) < len(shapes)

    # polygons when CVAT asks for them: the outlines of the same masks
    Ctx.conf_threshold, Ctx.conv_mask_to_poly = None, True
    polys = fn.detect(Ctx(), rgb)
    assert polys and all(p.type.value == "polygon" and len(p.points) >= 6 for p in polys)
    assert {p.label_id for p in polys} <= {int(l) for l in res.labels}


def test_nuclio_handler_answers_a_cvat_shaped_event(bgr_image, tmp_path, monkeypatch):
    """CVAT's serverless function template, called the way Nuclio calls it: init_context then
    handler with a JSON body {"image": base64, "threshold": ...}."""
    pytest.importorskip("cvat_sdk", reason="needs the cvat extra: pip install 'yolact[cvat]'")
    import base64
    import importlib.util
    import json
    import types
    from pathlib import Path

    import cv2
    import yaml
    from cvat_sdk.masks import decode_mask
    from yolact.checkpoint import save_checkpoint

    folder = Path(__file__).resolve().parents[1] / "serverless" / "yolact" / "nuclio"
    spec_yaml = yaml.safe_load((folder / "function.yaml").read_text())
    assert spec_yaml["spec"]["handler"] == "main:handler"
    labels = json.loads(spec_yaml["metadata"]["annotations"]["spec"])
    from yolact.config import get_config
    assert [l["name"] for l in labels] == list(get_config("yolact_base").class_names)

    model = make_tiny_model(size=128, seed=1)
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, model)
    monkeypatch.setenv("YOLACT_WEIGHTS", str(weights))
    mod_spec = importlib.util.spec_from_file_location("yolact_nuclio_main", folder / "main.py")
    main = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(main)

    class Response:
        def __init__(self, body, headers, content_type, status_code):
            self.body, self.headers, self.content_type, self.status_code = body, headers, content_type, status_code
    logger = types.SimpleNamespace(info=lambda *a, **k: None)
    context = types.SimpleNamespace(user_data=types.SimpleNamespace(), logger=logger, Response=Response)
    main.init_context(context)

    ok, png = cv2.imencode(".png", bgr_image)
    event = types.SimpleNamespace(body={"image": base64.b64encode(png.tobytes()).decode(), "threshold": 0.0})
    resp = main.handler(context, event)
    assert resp.status_code == 200 and resp.content_type == "application/json"
    body = json.loads(resp.body)

    res = model.predict(bgr_image, conf=0.0)
    keep = [i for i in range(len(res)) if res.masks[i].any()]
    assert len(body) == len(keep) > 0
    h, w = res.image_shape
    for d, i in zip(body, keep):
        assert d["type"] == "mask" and d["label"] == res.names[i]
        assert float(d["confidence"]) == pytest.approx(float(res.scores[i]))
        np.testing.assert_array_equal(decode_mask(d["mask"], image_width=w, image_height=h), res.masks[i])
        assert len(d["points"]) >= 6 and len(d["points"]) % 2 == 0


def test_label_studio_backend_brush_exact_and_polygons(bgr_image, tmp_path):
    pytest.importorskip("label_studio_sdk", reason="needs the label-studio extra: pip install 'yolact[label-studio]'")
    pytest.importorskip("fastapi", reason="needs the serve extra")
    import cv2
    from fastapi.testclient import TestClient
    from label_studio_sdk.converter.brush import decode_rle
    from yolact.integrations.label_studio import create_app

    model = make_tiny_model(size=128, seed=1)
    res = model.predict(bgr_image)
    ok, png = cv2.imencode(".png", bgr_image)
    url = "data:image/png;base64," + __import__("base64").b64encode(png.tobytes()).decode()
    brush = ('<View><Image name="img" value="$image"/><BrushLabels name="tag" toName="img">'
             '<Label value="a"/><Label value="b"/><Label value="c"/><Label value="zebra"/></BrushLabels></View>')
    client = TestClient(create_app(model, model_version="tiny-1"))
    assert client.get("/health").json()["status"] == "UP"
    setup = client.post("/setup", json={"schema": brush, "project": "1"}).json()
    assert setup.get("model_version") == "tiny-1", setup
    out = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": url}}], "label_config": brush}).json()
    regions = out["results"][0]["result"]
    keep = [i for i in range(len(res)) if res.masks[i].any()]
    assert len(regions) == len(keep) > 0
    h, w = res.image_shape
    for r, i in zip(regions, keep):
        decoded = np.reshape(decode_rle(r["value"]["rle"]), (h, w, 4))[:, :, 3] > 0
        np.testing.assert_array_equal(decoded, res.masks[i])
        assert r["value"]["brushlabels"] == [res.names[i]]
    poly = brush.replace("BrushLabels", "PolygonLabels")
    out = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": url}}], "label_config": poly}).json()
    rs = out["results"][0]["result"]
    assert rs and all(r["type"] == "polygonlabels" and 0 <= min(min(p) for p in r["value"]["points"]) for r in rs)
    assert client.post("/predict", json={"tasks": [], "label_config": "<View"}).status_code == 400

    # with an API key, every route wants it: basic auth (Label Studio's "Use basic auth") or Bearer
    import base64
    locked = TestClient(create_app(model, api_key="k3y"))
    assert locked.get("/health").status_code == 401
    assert locked.post("/predict", json={"tasks": [], "label_config": brush}).status_code == 401
    basic = "Basic " + base64.b64encode(b"labelstudio:k3y").decode()
    assert locked.get("/health", headers={"Authorization": basic}).json()["status"] == "UP"
    assert locked.get("/health", headers={"Authorization": "Bearer k3y"}).status_code == 200
    wrong = "Basic " + base64.b64encode(b"labelstudio:nope").decode()
    assert locked.get("/health", headers={"Authorization": wrong}).status_code == 401


def test_from_supervision_round_trips_and_reads_supervisions_own_detections(bgr_image):
    sv = pytest.importorskip("supervision", reason="needs the supervision extra: pip install 'yolact[supervision]'")
    from yolact.errors import YolactError
    from yolact.integrations.supervision import from_supervision

    res = _predict(make_tiny_model(size=128, seed=1), bgr_image)
    back = from_supervision(res.to_supervision(), class_names=res.class_names)
    np.testing.assert_array_equal(back.masks, res.masks)
    np.testing.assert_array_equal(back.boxes, res.boxes)
    np.testing.assert_array_equal(back.scores, res.scores)
    np.testing.assert_array_equal(back.labels, res.labels)
    assert back.class_names == res.class_names and back.image_shape == res.image_shape
    # Detections built with supervision's own helpers (boxes from masks), names from data
    masks = np.zeros((2, 40, 50), bool)
    masks[0, 5:15, 10:30] = True
    masks[1, 20:35, 2:9] = True
    det = sv.Detections(xyxy=sv.mask_to_xyxy(masks).astype(np.float32), mask=masks,
                        class_id=np.array([2, 0]), tracker_id=np.array([7, 9]),
                        data={"class_name": np.array(["cat", "dog"])})
    r = from_supervision(det)
    assert r.class_names == ("dog", "1", "cat") and r.names == ["cat", "dog"]
    assert r.track_ids.tolist() == [7, 9] and r.scores.tolist() == [1.0, 1.0]
    assert r.boxes.tolist() == [[10, 5, 29, 14], [2, 20, 8, 34]]  # supervision's inclusive mask boxes
    np.testing.assert_array_equal(r.masks, masks)
    with pytest.raises(YolactError, match="no masks"):
        from_supervision(sv.Detections(xyxy=np.zeros((1, 4), np.float32)))
    with pytest.raises(YolactError, match="no name"):
        from_supervision(det, class_names=("a",))
