"""Slow clients (issue #26 item 10): a body that trickles in is bounded by --timeout too. Twenty
clients trickling uploads against a real uvicorn server each get 408 JSON and a closed
connection within the deadline, and a normal request is answered meanwhile."""
import json
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("fastapi_offline", reason="needs the serve extra: pip install 'yolact[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'yolact[serve]'")

from yolact.serve.app import ServeSettings, create_app  # noqa: E402

from conftest import make_tiny_model  # noqa: E402
from serve_helpers import png_bytes, served_in_thread  # noqa: E402

TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def server():
    with served_in_thread(create_app(make_tiny_model(), ServeSettings(timeout_s=TIMEOUT_S))) as port:
        yield port


def _read_response(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or limit_s passes)."""
    sock.settimeout(0.2)
    data, end = b"", time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            return data + b"<closed>"
        data += chunk
    return data


def _trickle(port: int, out: list, i: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        t0 = time.monotonic()
        sock.settimeout(0.05)
        got = b""
        # a byte every 0.1 s: the body would take hours
        while time.monotonic() - t0 < TIMEOUT_S + 6 and b"<closed>" not in got:
            try:
                sock.sendall(b"x")
            except OSError:
                break
            got += _read_response(sock, 0.1)
        got += _read_response(sock, 2.0)
        out[i] = (time.monotonic() - t0, got)
    finally:
        sock.close()


def test_trickling_uploads_get_408_and_a_closed_connection(server):
    out = [None] * 20
    threads = [threading.Thread(target=_trickle, args=(server, out, i)) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    # a normal request is answered while the twenty trickle
    body = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        normal = _read_response(sock, 20)
    assert normal.startswith(b"HTTP/1.1 200")
    for t in threads:
        t.join(30)
    for _, got in out:
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), got[:200]
        assert b"connection: close" in head.lower()
        err = json.loads(rest.replace(b"<closed>", b""))["error"]
        assert err["status"] == 408 and "did not arrive within the 1.5 s deadline" in err["message"]
        assert got.endswith(b"<closed>")  # the server closed the connection
