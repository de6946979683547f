"""Graceful drain of a real `yolact serve` process on SIGTERM (issue #30 item 3): six slow requests
accepted before the signal all get their detections, readiness and new requests on an open
connection get 503 with Retry-After, and the process exits 0."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("prometheus_client", reason="needs the serve extra (prometheus-client)")

from yolact.data.synth import make_image  # noqa: E402

from serve_helpers import png_bytes  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))

SERVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from conftest import make_tiny_model
    from yolact.serve import run
    from yolact.serve.app import ServeSettings, create_app

    model = make_tiny_model()
    predict = model.predict

    def slow_predict(images, **kw):  # slow enough that six requests are still queued at SIGTERM
        time.sleep(0.4)
        return predict(images, **kw)

    model.predict = slow_predict
    app = create_app(model, ServeSettings(max_batch=1, timeout_s=60))
    run(app, "127.0.0.1", {port}, log_level="warning", drain_timeout_s=30)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def test_sigterm_answers_accepted_requests_and_exits_0():
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(TESTS)] + sys.path))
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=TESTS, port=port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:  # bounded wait for readiness (model load + warm-up)
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "server never became ready"
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                if _get(c, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        keepalive = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert _get(keepalive, "/livez")[0] == 200

        body = png_bytes(make_image(np.random.default_rng(1), 96, 128)[0])
        answers = [None] * 6

        def post(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/v1/segment?score_threshold=0.0", body=body,
                         headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            answers[i] = (r.status, r.read())

        threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for _ in range(200):  # until all six are inside the server (the /metrics request is the 7th)
            _, _, text = _get(c, "/metrics")
            line = [x for x in text.decode().splitlines() if x.startswith("yolact_requests_in_flight ")][0]
            if float(line.split()[1]) >= 7:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the six requests never arrived")

        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        status, headers, raw = _get(keepalive, "/readyz")
        assert status == 503 and json.loads(raw)["status"] == "draining" and headers.get("retry-after")
        keepalive.request("POST", "/v1/segment", body=body, headers={"Content-Type": "application/octet-stream"})
        late = keepalive.getresponse()
        assert late.status == 503 and late.getheader("retry-after") and b"draining" in late.read()
        for t in threads:
            t.join(60)
        assert proc.wait(60) == 0, proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    for status, raw in answers:
        assert status == 200, raw
        assert "detections" in json.loads(raw)
