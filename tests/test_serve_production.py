"""Probes, Prometheus metrics and the drain state of `yolact serve` (issue #30 items 1-3)."""
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
pytest.importorskip("prometheus_client", reason="needs the serve extra (prometheus-client)")

from fastapi.testclient import TestClient  # noqa: E402

import yolact  # noqa: E402
from yolact.data.synth import make_image  # noqa: E402
from yolact.serve.app import ServeSettings, create_app  # noqa: E402

from serve_helpers import png_bytes  # noqa: E402


@pytest.fixture(scope="module")
def demo_model():
    return yolact.load(yolact.demo_weights_path())


@pytest.fixture(scope="module")
def image():
    img, _ = make_image(np.random.default_rng(3), 240, 320)
    return img


def _wait_ready(c):
    for _ in range(200):  # bounded: the warm-up is one small prediction
        if c.get("/readyz").status_code == 200:
            return
        import time
        time.sleep(0.05)
    raise AssertionError("never ready")


def test_probes_ready_after_warm_up_and_503_while_draining(demo_model):
    calls = []

    class Counting:
        cfg = demo_model.cfg

        def predict(self, images, **kw):
            calls.append(len(images))
            return demo_model.predict(images, **kw)

    app = create_app(Counting(), ServeSettings())
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/livez").status_code == 200
        _wait_ready(c)
        assert calls == [1]  # ready only after the warm-up prediction ran
        assert c.get("/v1/health").status_code == 200
        app.state.server.drain()
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "draining" and r.headers["retry-after"]
        r = c.post("/v1/segment", content=b"x")
        assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"]["status"] == 503
        assert c.get("/livez").status_code == 200


def test_readyz_503_when_warm_up_fails(image):
    class Broken:
        cfg = yolact.load(yolact.demo_weights_path()).cfg

        def predict(self, images, **kw):
            raise RuntimeError("boom")

    with TestClient(create_app(Broken(), ServeSettings()), raise_server_exceptions=False) as c:
        import time
        time.sleep(0.3)
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 503


def test_metrics_count_requests_batches_and_detections(demo_model, image):
    app = create_app(demo_model, ServeSettings(api_key="k"), {"precision": "fp32", "backend": "torch"})
    with TestClient(app, raise_server_exceptions=False) as c:
        _wait_ready(c)
        r = c.post("/v1/segment?score_threshold=0.05", content=png_bytes(image), headers={"X-API-Key": "k"})
        assert r.status_code == 200
        n_det = r.json()["count"]
        assert c.post("/v1/segment", content=b"not an image", headers={"X-API-Key": "k"}).status_code == 415
        m = c.get("/metrics")  # no API key needed
        assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
        text = m.text
    from prometheus_client.parser import text_string_to_metric_families
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("yolact_requests_total", (("method", "POST"), ("route", "/v1/segment"), ("status", "200")))] == 1
    assert samples[("yolact_requests_total", (("method", "POST"), ("route", "/v1/segment"), ("status", "415")))] == 1
    assert samples[("yolact_images_predicted_total", ())] == 1
    assert samples[("yolact_detections_total", ())] == n_det
    assert samples[("yolact_inference_batch_size_count", ())] == 1
    assert samples[("yolact_request_duration_seconds_count", (("route", "/v1/segment"),))] == 2
    assert ("yolact_queue_depth", ()) in samples and ("yolact_requests_in_flight", ()) in samples
    info = [k for k in samples if k[0] == "yolact_model_info"][0]
    assert dict(info[1]) == {"config": demo_model.cfg.name, "precision": "fp32", "backend": "torch"}


def test_no_metrics(demo_model):
    with TestClient(create_app(demo_model, ServeSettings(), metrics=False), raise_server_exceptions=False) as c:
        assert c.get("/metrics").status_code == 404


def test_json_access_log_and_request_id(demo_model, image):
    import io
    import json
    import logging

    from yolact.serve.observe import access_log, configure_json_access_log

    stream = io.StringIO()
    saved = (access_log.handlers[:], access_log.level, access_log.propagate)
    configure_json_access_log(stream)
    try:
        with TestClient(create_app(demo_model, ServeSettings()), raise_server_exceptions=False) as c:
            r = c.post("/v1/segment?score_threshold=0.05", content=png_bytes(image), headers={"X-Request-ID": "abc-1"})
            assert r.status_code == 200 and r.headers["x-request-id"] == "abc-1"
            bad = c.post("/v1/segment", content=b"junk", headers={"Content-Type": "image/png"})
            assert bad.status_code == 415 and len(bad.headers["x-request-id"]) == 32
    finally:
        access_log.handlers[:], access_log.level, access_log.propagate = saved
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    ok = [x for x in lines if x["request_id"] == "abc-1"][0]
    assert ok["route"] == "/v1/segment" and ok["status"] == 200 and ok["latency_ms"] > 0
    assert ok["image"] == [320, 240] and ok["detections"] == r.json()["count"]
    assert [x["status"] for x in lines if x["request_id"] == bad.headers["x-request-id"]] == [415]
    assert all("Traceback" not in x for x in stream.getvalue().splitlines())
    assert logging.getLogger("yolact.serve.access") is access_log


def test_metrics_on_their_own_port(demo_model, image):
    import socket
    import urllib.request

    from yolact.errors import YolactError
    from yolact.serve.metrics import serve_metrics

    app = create_app(demo_model, ServeSettings(), metrics_route=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_metrics(app.state.metrics, port)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            _wait_ready(c)
            assert c.post("/v1/segment", content=png_bytes(image)).status_code == 200
            assert c.get("/metrics").status_code == 404  # not on the API's port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
        assert 'yolact_requests_total{method="POST",route="/v1/segment",status="200"} 1.0' in text
        with pytest.raises(YolactError, match=f"--metrics-port {port}: cannot listen"):
            serve_metrics(app.state.metrics, port)  # taken
    finally:
        server.shutdown()


@pytest.mark.parametrize("argv, message", [
    (["--port", "8123", "--metrics-port", "8123"], "--metrics-port must differ from --port"),
    (["--metrics-port", "9100", "--no-metrics"], "--metrics-port needs metrics on"),
    (["--metrics-port", "70000"], "--metrics-port 70000: must be in 1..65535"),
])
def test_metrics_port_refusals(argv, message, capsys):
    from yolact.cli import main

    assert main(["serve", *argv]) == 2  # refused before any model loads
    assert message in capsys.readouterr().err


def test_draining_503_is_counted_under_its_route(demo_model):
    app = create_app(demo_model, ServeSettings())
    with TestClient(app, raise_server_exceptions=False) as c:
        _wait_ready(c)
        app.state.server.drain()
        assert c.post("/v2/models/yolact/infer", content=b"{}").status_code == 503
        text = c.get("/metrics").text
    assert 'yolact_requests_total{method="POST",route="/v2/models/{name}/infer",status="503"} 1.0' in text
