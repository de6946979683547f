"""yolact.serve: the HTTP API in process (FastAPI's TestClient), the micro-batcher, the limits."""
import asyncio
import contextlib
import tempfile
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("fastapi_offline", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (test extra)")

import cv2  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

import yolact  # noqa: E402
from yolact.cli import main  # noqa: E402
from yolact.data.synth import make_image  # noqa: E402
from yolact.errors import YolactError  # noqa: E402
from yolact.serve import resolve_api_key  # noqa: E402
from yolact.serve.app import ServeSettings, create_app  # noqa: E402
from yolact.serve.batcher import MicroBatcher, QueueFull, select  # noqa: E402

from serve_helpers import bomb_png, jpeg_bytes, multipart, png_bytes  # noqa: E402


@pytest.fixture(scope="module")
def demo_model():
    return yolact.load(yolact.demo_weights_path())


@pytest.fixture(scope="module")
def image():
    img, _ = make_image(np.random.default_rng(3), 240, 320)
    return img


@contextlib.contextmanager
def client(model, **settings):
    with TestClient(create_app(model, ServeSettings(**settings), {"precision": "fp32", "backend": "torch"}),
                    raise_server_exceptions=False) as c:
        yield c


def assert_error(r, status, text):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["status"] == status and text in body["error"]["message"], body
    assert "Traceback" not in r.text


# ---------------------------------------------------------------- answers
def test_segment_matches_predict(demo_model, image):
    """The JSON is model.predict on the decoded upload: boxes, scores, classes and RLE masks."""
    data = png_bytes(image)  # lossless: the server decodes the same pixels
    want = demo_model.predict(image, score_threshold=0.2, top_k=5)
    with client(demo_model) as c:
        r = c.post("/v1/segment?score_threshold=0.2&top_k=5", content=data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 320, "height": 240}
    assert body["count"] == len(want) == len(body["detections"]) > 0
    for d, box, score, label, m in zip(body["detections"], want.boxes, want.scores, want.labels, want.masks):
        assert d["box"] == pytest.approx([float(v) for v in box], abs=1e-5)
        assert d["score"] == pytest.approx(float(score), abs=1e-5)
        assert d["label"] == int(label) and d["class_name"] == want.class_names[int(label)]
        rle = dict(d["segmentation"], counts=d["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle), m.astype(np.uint8))
    assert set(body["timing"]) >= {"decode_ms", "queue_ms", "inference_ms", "encode_ms", "total_ms", "batch_size"}


@pytest.mark.parametrize("masks", ["rle", "polygons"])
def test_detections_are_the_results_records(demo_model, image, masks):
    """The server's detection objects are Results.to_records of the same image: the same keys
    (RECORD_FIELDS less track_id) and the same label, score, box_score and segmentation."""
    from yolact.results import RECORD_FIELDS

    want = demo_model.predict(image, score_threshold=0.2, top_k=5).to_records(masks)
    with client(demo_model) as c:
        r = c.post(f"/v1/segment?score_threshold=0.2&top_k=5&masks={masks}", content=png_bytes(image))
    assert r.status_code == 200, r.text
    got = r.json()["detections"]
    assert len(got) == len(want) > 0
    for d, w in zip(got, want):
        assert set(d) == set(w) == set(RECORD_FIELDS) - {"track_id"}
        assert (d["label"], d["class_name"], d["category_id"]) == (w["label"], w["class_name"], w["category_id"])
        assert d["score"] == pytest.approx(w["score"], abs=1e-5)
        assert d["box_score"] == pytest.approx(w["box_score"], abs=1e-5)
        assert d["box"] == pytest.approx(w["box"], abs=1e-4) and d["bbox"] == pytest.approx(w["bbox"], abs=0.11)
        assert d["segmentation"] == w["segmentation"]


def test_mask_formats_multipart_and_overlay(demo_model, image):
    data = jpeg_bytes(image)
    body, ctype = multipart(data)
    with client(demo_model) as c:
        poly = c.post("/v1/segment?masks=polygons", content=body, headers={"content-type": ctype}).json()
        none = c.post("/v1/segment?masks=none", content=data).json()
        ov = c.post("/v1/overlay", content=data)
    assert poly["count"] == none["count"] > 0
    assert all(len(p) >= 6 and len(p) % 2 == 0 for d in poly["detections"] for p in d["segmentation"])
    assert all("segmentation" not in d and "mask" not in d and "polygons" not in d for d in none["detections"])
    assert ov.status_code == 200 and ov.headers["content-type"] == "image/png"
    assert int(ov.headers["x-detections"]) == none["count"]
    png = cv2.imdecode(np.frombuffer(ov.content, np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == image.shape and not np.array_equal(png, cv2.imdecode(np.frombuffer(data, np.uint8), 1))


def test_health_model_docs_and_page_are_offline(demo_model):
    with client(demo_model) as c:
        assert c.get("/v1/health").json()["status"] == "ok"
        info = c.get("/v1/model").json()
        assert info["config"] == "yolact_resnet18_slim" and info["classes"][0] == "circle"
        assert info["precision"] == "fp32" and info["backend"] == "torch"
        spec = c.get("/openapi.json").json()
        assert {"/v1/segment", "/v1/overlay", "/v1/health", "/v1/model"} <= set(spec["paths"])
        for page in ("/docs", "/"):
            html = c.get(page).text
            assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html, page
        docs = c.get("/docs").text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            url = next(part.split('"')[0] for part in docs.split("'")[1:] + docs.split('"')[1:] if asset in part)
            assert c.get(url).status_code == 200, url


def test_uploads_never_touch_temp_files(demo_model, image, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the server created a temporary file")
    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    body, ctype = multipart(jpeg_bytes(image))
    with client(demo_model) as c:
        r = c.post("/v1/segment", content=body, headers={"content-type": ctype})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- bad input
def test_bad_uploads_get_json_errors(demo_model, image):
    data = jpeg_bytes(image)
    with client(demo_model, max_upload_mb=0.5) as c:
        assert_error(c.post("/v1/segment", content=b""), 400, "empty upload")
        assert_error(c.post("/v1/segment", content=np.random.default_rng(0).bytes(3000)), 415, "not a supported image")
        assert_error(c.post("/v1/segment", content=data[: len(data) // 2]), 400, "truncated JPEG")
        assert_error(c.post("/v1/segment", content=png_bytes(image)[:300]), 400, "PNG")
        assert_error(c.post("/v1/segment", content=bomb_png()), 413, "400.0 Mpx")
        assert_error(c.post("/v1/segment", content=bomb_png(8000, 6000)), 413, "8000x6000")
        assert_error(c.post("/v1/segment", content=b"\0" * 600_000), 413, "byte limit")
        assert_error(c.post("/v1/segment", content=data[:100] + b"--x--",
                            headers={"content-type": "multipart/form-data; boundary=x"}), 400, "multipart")
        body, ctype = multipart(data, field="other", filename=None)
        assert_error(c.post("/v1/segment", content=body.replace(b'; filename="None"', b""),
                            headers={"content-type": ctype}), 400, "no 'image' or 'file' field")
        assert_error(c.post("/v1/segment", content=data, headers={"content-type": "multipart/form-data"}),
                     400, "boundary")
        assert_error(c.post("/v1/segment?score_threshold=2", content=data), 422, "score_threshold")
        # a control the server takes only at start is refused, not silently ignored
        assert_error(c.post("/v1/segment?classes=circle&max_det=1", content=data), 422, "classes, max_det")
        assert_error(c.post("/v1/segment?masks=bitmap", content=data), 422, "masks")
        assert_error(c.get("/v1/nothing"), 404, "Not Found")
        # The type header is not trusted either way: an image sent as text is still an image.
        ok = c.post("/v1/segment", content=data, headers={"content-type": "text/plain"})
        assert ok.status_code == 200
        tiny = c.post("/v1/segment", content=png_bytes(np.zeros((1, 1, 3), np.uint8)))
        assert tiny.status_code == 200 and tiny.json()["image"] == {"width": 1, "height": 1}
        assert c.get("/v1/health").json()["status"] == "ok"


def test_model_failure_is_a_plain_500(image):
    class Broken:
        cfg = yolact.get_config("yolact_resnet18_slim")

        def predict(self, *a, **k):
            raise RuntimeError("secret internal detail")

    with client(Broken()) as c:
        r = c.post("/v1/segment", content=png_bytes(image))
    assert_error(r, 500, "internal server error")
    assert "secret" not in r.text


def test_api_key(demo_model, image, monkeypatch):
    with client(demo_model, api_key="s3cret") as c:
        assert_error(c.post("/v1/segment", content=png_bytes(image)), 401, "API key")
        assert_error(c.get("/v1/model", headers={"X-API-Key": "wrong"}), 401, "API key")
        assert c.get("/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/health").status_code == 200 and c.get("/").status_code == 200
    monkeypatch.delenv("YOLACT_API_KEY", raising=False)
    assert resolve_api_key("127.0.0.1", None) is None and resolve_api_key("::1", None) is None
    with pytest.raises(YolactError, match="--host 0.0.0.0 exposes"):
        resolve_api_key("0.0.0.0", None)
    assert resolve_api_key("0.0.0.0", "k") == "k"
    monkeypatch.setenv("YOLACT_API_KEY", "from-env")
    assert resolve_api_key("192.168.1.5", None) == "from-env"


def test_cli_refuses_public_bind_without_key(monkeypatch, capsys):
    monkeypatch.delenv("YOLACT_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exposes the server" in err[0]


# ---------------------------------------------------------------- batching
def test_concurrent_requests_share_a_forward(demo_model, image):
    """Requests that arrive together run as one batch, and each still gets what it asked for."""
    data = png_bytes(image)
    with client(demo_model, max_batch=4, max_wait_ms=300) as c:
        out = [None] * 4

        def call(i):
            out[i] = c.post(f"/v1/segment?score_threshold={0.1 + 0.2 * i}&top_k={2 + i}", content=data).json()
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = c.get("/v1/health").json()
    assert max(o["timing"]["batch_size"] for o in out) > 1
    assert stats["served"] == 4 and stats["batches"] < 4
    for i, o in enumerate(out):
        want = demo_model.predict(image, score_threshold=0.1 + 0.2 * i, top_k=2 + i)
        assert [d["box"] for d in o["detections"]] == want.boxes.tolist()
        assert [d["label"] for d in o["detections"]] == want.labels.tolist()


def test_select_equals_predicting_with_those_settings(demo_model, image):
    base = demo_model.predict(image, score_threshold=0.05, top_k=100)
    for thr, k in ((0.05, 100), (0.3, 100), (0.5, 2), (0.0, 1), (0.99, 5)):
        want = demo_model.predict(image, score_threshold=thr, top_k=k)
        got = select(base, thr, k)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_array_equal(got.scores, want.scores)


def _fake_results(n):
    from yolact.results import Results
    return Results(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), np.zeros((0, 2, 2), bool), ("a",), np.zeros(0),
                   (2, 2))


def test_batcher_groups_bounds_and_deadlines():
    sizes, gate = [], threading.Event()

    def predict(images, thr, k):
        gate.wait(5)
        sizes.append(len(images))
        return [_fake_results(1) for _ in images]

    async def scenario():
        b = MicroBatcher(predict, max_batch=3, max_wait_s=0.05, max_queue=4)
        await b.start()
        first = b.submit(np.zeros(1), 0.1, 10, timeout_s=5)
        await asyncio.sleep(0.1)          # the first batch (of one) is now running and blocked
        queued = [b.submit(np.zeros(1), 0.1, 10, timeout_s=5) for _ in range(4)]
        with pytest.raises(QueueFull):
            b.submit(np.zeros(1), 0.1, 10, timeout_s=5)
        late = None
        gate.set()
        await asyncio.gather(first, *queued)
        # A request whose deadline passes while it waits in the queue is not run.
        gate.clear()
        blocker = b.submit(np.zeros(1), 0.1, 10, timeout_s=5)
        await asyncio.sleep(0.1)
        late = b.submit(np.zeros(1), 0.1, 10, timeout_s=0.05)
        await asyncio.sleep(0.2)
        gate.set()
        await blocker
        with pytest.raises(Exception, match="deadline"):
            await late
        await b.stop()

    asyncio.run(scenario())
    assert sizes == [1, 3, 1, 1]


def test_full_queue_answers_503_with_retry_after(image):
    gate = threading.Event()

    class Slow:
        cfg = yolact.get_config("yolact_resnet18_slim")

        def predict(self, images, **k):
            gate.wait(10)
            return [_fake_results(0) for _ in images]

    data = png_bytes(image)
    with client(Slow(), max_batch=1, max_queue=1, timeout_s=0.5) as c:
        codes = []

        def call():
            r = c.post("/v1/segment", content=data)
            codes.append((r.status_code, r.headers.get("retry-after"), r.json()))
        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join()
        gate.set()
    statuses = sorted(c for c, _, _ in codes)
    assert 503 in statuses and 504 in statuses, codes
    assert all(ra == "1" for c, ra, _ in codes if c == 503)
    assert all("deadline" in b["error"]["message"] for c, _, b in codes if c == 504)


def test_served_category_ids_are_the_models(demo_model, image):
    """#27 item 4: /v1/model lists each class's category id, and every detection carries the
    model's id (the data's ids stored at training time), not the class index + 1."""
    gapped = tuple(3 + 4 * k for k in range(demo_model.cfg.num_classes))
    demo_model.cfg = demo_model.cfg.replace(category_ids=gapped)
    try:
        with client(demo_model) as c:
            assert c.get("/v1/model").json()["category_ids"] == list(gapped)
            dets = c.post("/v1/segment?masks=none&score_threshold=0.1", content=png_bytes(image)).json()["detections"]
    finally:
        demo_model.cfg = demo_model.cfg.replace(category_ids=None)
    assert dets and all(d["category_id"] == gapped[d["label"]] for d in dets)
