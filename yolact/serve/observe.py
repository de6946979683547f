"""The access log of ``yolact serve``: with ``--log-format json`` one JSON line per request on the
``yolact.serve.access`` logger (time, request id, method, route, status, latency_ms, image size,
detections). A client's ``X-Request-ID`` is kept (up to 128 printable characters), else one is
made; either way it is echoed in the response's ``X-Request-ID`` header."""
from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from datetime import datetime, timezone

access_log = logging.getLogger("yolact.serve.access")

LOG_FORMATS = ("text", "json")


def request_id(request) -> str:
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


def access_record(request, status: int, latency_s: float, rid: str, route: str) -> dict:
    """One access-log record (JSON-safe). ``image`` and ``detections`` come from
    ``request.state`` when the route set them."""
    rec = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "request_id": rid,
           "method": request.method, "route": route, "path": request.url.path, "status": status,
           "latency_ms": round(1000 * latency_s, 2)}
    for key in ("image", "detections"):
        value = getattr(request.state, key, None)
        if value is not None:
            rec[key] = value
    return rec


def configure_json_access_log(stream=None) -> None:
    """Write the access log as bare JSON lines to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [handler]
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def log_access(request, status: int, t0: float, rid: str, route: str) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps(access_record(request, status, time.perf_counter() - t0, rid, route)))
