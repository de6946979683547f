"""Prometheus metrics of ``yolact serve``, written with ``prometheus-client`` (one registry per app,
so two apps in one process do not share counts). Exposed at ``GET /metrics`` in the text format,
or on a port of their own (:func:`serve_metrics`, ``--metrics-port``); the API key does not guard
them."""
from __future__ import annotations

import logging
import time
from typing import Dict, Optional


class ServeMetrics:
    """The server's instruments.

    - ``yolact_requests_total{route,method,status}``: counter;
    - ``yolact_request_duration_seconds{route}``: histogram, seconds from arrival to answer;
    - ``yolact_inference_batch_size``: histogram of the forward-pass batch each request rode in;
    - ``yolact_queue_depth``, ``yolact_requests_in_flight``: gauges;
    - ``yolact_images_predicted_total``, ``yolact_detections_total``: counters;
    - ``yolact_model_info{config,precision,backend}``: info.
    """

    def __init__(self, batcher, model_info: Optional[Dict] = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("yolact_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("yolact_request_duration_seconds", "Request latency, arrival to answer (s)",
                                 ["route"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.batch_size = Histogram("yolact_inference_batch_size", "Images in the forward pass of each request",
                                    registry=r, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.in_flight = Gauge("yolact_requests_in_flight", "Requests being handled", registry=r)
        queue = Gauge("yolact_queue_depth", "Requests waiting for a forward pass", registry=r)
        queue.set_function(lambda: batcher.queued)
        self.images = Counter("yolact_images_predicted", "Images predicted", registry=r)
        self.detections = Counter("yolact_detections", "Detections returned", registry=r)
        info = Info("yolact_model", "The served model", registry=r)
        info.info({k: str(v) for k, v in (model_info or {}).items() if k in ("config", "precision", "backend")})

    def observe_inference(self, batch_size: int, detections: int) -> None:
        self.batch_size.observe(batch_size)
        self.images.inc()
        self.detections.inc(detections)

    def exposition(self):
        """-> (body bytes, content type) of the Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_of(request) -> str:
    """The route template (``/v1/segment``), not the raw path, so labels stay few; 'other' when no
    route matched."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or "other"


def matched_route(app, scope) -> str:
    """The template of the route ``scope`` would reach (for a request answered before routing,
    such as a 503 while draining); 'other' when none matches."""
    from starlette.routing import Match

    for route in app.router.routes:
        if route.matches(scope)[0] is not Match.NONE:
            return getattr(route, "path", "other")
    return "other"


def add_middleware(app, metrics: Optional[ServeMetrics], state) -> None:
    """Counts and times every request, and answers 503 (Retry-After) to new work while draining;
    probes and /metrics stay answered."""
    from starlette.responses import JSONResponse

    exempt = {"/livez", "/readyz", "/metrics", "/v1/health"}

    from .observe import log_access, request_id
    from .v2 import error_body, is_v2_path

    @app.middleware("http")
    async def observe(request, call_next):
        rid = request_id(request)
        request.state.request_id = rid  # for the routes (v2 answers it as the response's id)
        t0 = time.perf_counter()
        try:
            response = await _observed(request, call_next)
        except Exception:  # answered here, not by the outermost handler, so it has its request id and log line
            logging.getLogger("yolact.serve").exception("internal error on %s %s (request id %s)",
                                                        request.method, request.url.path, rid)
            message = "internal server error (logged on the server)"
            response = JSONResponse(error_body(message) if is_v2_path(request.url.path)
                                    else {"error": {"status": 500, "message": message}}, status_code=500)
        response.headers["X-Request-ID"] = rid
        log_access(request, response.status_code, t0, rid, route_of(request))
        return response

    async def _observed(request, call_next):
        if state.draining and request.url.path not in exempt:
            message = "server draining; retry elsewhere"
            body = error_body(message) if is_v2_path(request.url.path) else {"error": {"status": 503,
                                                                                      "message": message}}
            response = JSONResponse(body, status_code=503, headers={"Retry-After": "1", "Connection": "close"})
            if metrics is not None:
                metrics.requests.labels(matched_route(app, request.scope), request.method, "503").inc()
            return response
        counted = request.url.path not in exempt
        state.in_flight += counted
        if metrics is None:
            try:
                return await call_next(request)
            finally:
                state.in_flight -= counted
        t0 = time.perf_counter()
        metrics.in_flight.inc()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            state.in_flight -= counted
            metrics.in_flight.dec()
            route = route_of(request)
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - t0)


def add_metrics_route(app, metrics: ServeMetrics) -> None:
    from starlette.responses import Response

    @app.get("/metrics", summary="Prometheus metrics (text format; not guarded by the API key)")
    async def metrics_route():
        body, ctype = metrics.exposition()
        return Response(body, media_type=ctype)


def serve_metrics(metrics: ServeMetrics, port: int, host: str = "127.0.0.1"):
    """Serve ``metrics`` on ``host``:``port`` (any path; prometheus-client's own HTTP server in a
    daemon thread), apart from the API. -> the server (``.shutdown()`` stops it). Raises
    YolactError when the port cannot be bound."""
    from prometheus_client import start_http_server

    from ..errors import YolactError

    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as e:
        raise YolactError(f"serve: --metrics-port {port}: cannot listen on {host}:{port} ({e.strerror or e})") from None
    return server
