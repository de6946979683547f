"""The HTTP API: FastAPI routes over a :class:`MicroBatcher`.

Every error a client can see is JSON ``{"error": {"status": N, "message": "..."}}`` (under
``/v2``, the Open Inference Protocol's ``{"error": "..."}``); a failure inside the server is
logged here and reaches the client as a plain 500 with no traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Dict, Optional

import cv2
import numpy as np
from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import YolactError
from ..results import RECORD_FIELDS
from .batcher import DeadlineExceeded, MicroBatcher, QueueFull, ShuttingDown
from .metrics import ServeMetrics, add_metrics_route, add_middleware
from .probes import ServerState, add_probe_routes, start_warm_up
from .uploads import UploadError, decode_image, multipart_file
from .v2 import add_v2_routes, error_body, is_v2_path

log = logging.getLogger("yolact.serve")

MASK_FORMATS = ("rle", "polygons", "none")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of ``yolact serve`` (one field per CLI flag). Raises YolactError for a
    batch or queue under 1, a negative wait, or a non-positive timeout or size limit."""
    max_batch: int = 8            # requests per forward pass
    max_wait_ms: float = 10.0     # how long the first request of a batch waits for company
    max_queue: int = 64           # requests waiting; beyond it: 503 with Retry-After
    timeout_s: float = 30.0       # a request's deadline, from arrival to its answer
    max_upload_mb: float = 20.0   # request body limit
    max_pixels: int = 40_000_000  # decoded size limit (checked from the header, before decoding)
    api_key: Optional[str] = None  # required on /v1/segment, /v1/overlay and /v1/model when set

    def __post_init__(self):
        if self.max_batch < 1 or self.max_queue < 1 or self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise YolactError("serve: --max-batch and --max-queue must be >= 1, --max-wait-ms >= 0, --timeout > 0")
        if self.max_upload_mb <= 0 or self.max_pixels <= 0:
            raise YolactError("serve: --max-upload-mb and --max-megapixels must be > 0")


def _error(status: int, message: str, headers: Optional[Dict[str, str]] = None, request=None) -> JSONResponse:
    """An error response: ``{"error": {"status", "message"}}``, or the v2 protocol's
    ``{"error": message}`` for a request under /v2."""
    if request is not None and is_v2_path(request.url.path):
        return JSONResponse(error_body(message), status_code=status, headers=headers)
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes, and with 408 when
    it has not all arrived ``timeout_s`` seconds after the request did: a client that trickles
    its upload must not hold a connection (and a worker's memory) past the deadline."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"upload of {int(declared)} bytes is over the {limit} byte limit")
    chunks, size = [], 0
    deadline = time.monotonic() + timeout_s
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(0.0, deadline - time.monotonic()))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise UploadError(408, f"the request body did not arrive within the {timeout_s:g} s deadline "
                                   f"({size} bytes received)") from None
        size += len(chunk)
        if size > limit:
            raise UploadError(413, f"upload is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


_BODY_DOC = {"requestBody": {"required": True, "description": "The image: raw bytes (any content type; the "
                             "bytes are decoded, not trusted) or a multipart form with an 'image' file field.",
                             "content": {"multipart/form-data": {"schema": {
                                 "type": "object", "properties": {"image": {"type": "string", "format": "binary"}},
                                 "required": ["image"]}},
                                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

_SEGMENT_DOC = ("JSON: `image` {width, height}, `count`, `detections` (best first) and `timing` (ms, and the "
                "batch size). Each detection is the package's detection record (`Results.to_records`):\n\n"
                + "\n".join(f"- `{k}`: {v}" for k, v in RECORD_FIELDS.items())
                + "\n\n`segmentation` is COCO RLE for `masks=rle`, flat [x, y, ...] polygons (pixels, 0.1 px) "
                  "for `masks=polygons`, and left out for `masks=none`.")

_SEGMENT_EXAMPLE = {"image": {"width": 640, "height": 480}, "count": 1, "detections": [
    {"label": 0, "class_name": "person", "category_id": 1, "score": 0.91234, "box_score": 0.95012,
     "box": [12.5, 30.25, 200.0, 410.75], "bbox": [12.5, 30.2, 187.5, 380.5],
     "segmentation": {"size": [480, 640], "counts": "Y`l04j>2N1O..."}}],
    "timing": {"read_ms": 0.4, "decode_ms": 3.1, "queue_ms": 1.2, "inference_ms": 25.7, "batch_size": 1,
               "encode_ms": 0.9, "total_ms": 31.6}}

_QUERY_PARAMS = {"score_threshold", "top_k", "masks"}


def _model_info(model, settings: ServeSettings, info: Optional[Dict], options: Dict, max_batch: int) -> Dict:
    """The answer of /v1/model."""
    return {"config": model.cfg.name, "classes": list(model.cfg.class_names),
            "category_ids": list(model.cfg.label_category_ids()),
            "input_size": options.get("img_size", model.cfg.max_size), **(info or {}),
            **({"predict_options": options} if options else {}),
            "batching": {"max_batch": max_batch, "max_wait_ms": settings.max_wait_ms,
                         "max_queue": settings.max_queue, "timeout_s": settings.timeout_s},
            "limits": {"max_upload_bytes": _upload_limit(settings), "max_pixels": settings.max_pixels}}


def _upload_limit(settings: ServeSettings) -> int:
    return int(settings.max_upload_mb * 1e6)


def _lifespan(batcher: MicroBatcher, state):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        warm = start_warm_up(batcher.run_alone, state)  # /livez answers meanwhile; /readyz after it
        yield
        state.drain()
        warm.cancel()
        await batcher.stop()

    return lifespan


# ---------------------------------------------------------------- errors
def _add_error_handlers(app) -> None:
    """Every error as JSON ``{"error": {"status", "message"}}``; internal ones logged, not shown."""

    @app.exception_handler(UploadError)
    async def upload_error(request, exc: UploadError):
        # 408: the rest of a trickled body may still be on its way; the connection is closed.
        return _error(exc.status, exc.message, {"Connection": "close"} if exc.status == 408 else None, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None), request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, "; ".join(parts), None, request)

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal server error (logged on the server)", None, request)


# ---------------------------------------------------------------- auth
def _key_dependency(api_key: Optional[str]):
    """A FastAPI dependency: 401 unless the request carries ``api_key`` (none needed when unset)."""

    async def require_key(request: Request) -> None:
        if not api_key:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise StarletteHTTPException(401, "missing or wrong API key (X-API-Key header or Bearer token)",
                                         headers={"WWW-Authenticate": "Bearer"})

    return Depends(require_key)


# ---------------------------------------------------------------- the work
def _check_query(request: Request) -> None:
    unknown = sorted(set(request.query_params) - _QUERY_PARAMS)
    if unknown:  # a control the server does not take per request must not be ignored silently
        raise StarletteHTTPException(422, f"unknown query parameter(s) {', '.join(unknown)}; per request: "
                                          f"{', '.join(sorted(_QUERY_PARAMS))} (classes, iou, agnostic NMS, "
                                          "max detections and image size are set when the server starts)")


async def _infer(batcher: MicroBatcher, img: np.ndarray, score_threshold: float, top_k: int,
                 settings: ServeSettings, left_s: float):
    """-> (Results, batch info): 503 when the queue is full, 504 when ``left_s`` (of the request's
    ``settings.timeout_s``) pass without an answer."""
    try:
        fut = batcher.submit(img, score_threshold, top_k, settings.timeout_s)
    except QueueFull as e:
        raise StarletteHTTPException(503, f"server busy: {e}; retry shortly", headers={"Retry-After": "1"})
    except ShuttingDown as e:
        raise StarletteHTTPException(503, f"{e}; retry elsewhere", headers={"Retry-After": "1"})
    try:
        return await asyncio.wait_for(fut, max(left_s, 0.001))
    except (asyncio.TimeoutError, DeadlineExceeded):
        raise StarletteHTTPException(504, f"no result within the {settings.timeout_s:g} s deadline")
    except ShuttingDown as e:  # the drain timeout ran out while this request waited for the model
        raise StarletteHTTPException(503, f"{e}; retry elsewhere", headers={"Retry-After": "1"})


async def _segment(request: Request, batcher: MicroBatcher, settings: ServeSettings, score_threshold: float,
                   top_k: int):
    """Read, decode and run one request -> (image, Results, timing dict), or (None, None, None) when
    the client went away."""
    _check_query(request)
    t0 = time.perf_counter()
    try:
        body = await _read_body(request, _upload_limit(settings), settings.timeout_s)
    except ClientDisconnect:
        return None, None, None
    ctype = request.headers.get("content-type", "")
    t_read = time.perf_counter()
    if ctype.lower().startswith("multipart/"):
        body = multipart_file(body, ctype)
    img = await asyncio.to_thread(decode_image, body, settings.max_pixels)
    t_decoded = time.perf_counter()
    res, batch = await _infer(batcher, img, score_threshold, top_k, settings, settings.timeout_s - (t_decoded - t0))
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_inference(batch.size, len(res))
    request.state.image = [int(img.shape[1]), int(img.shape[0])]  # for the access log: width, height
    request.state.detections = len(res)
    timing = {"read_ms": 1000 * (t_read - t0), "decode_ms": 1000 * (t_decoded - t_read),
              "queue_ms": 1000 * batch.queue_s, "inference_ms": 1000 * batch.inference_s,
              "batch_size": batch.size}
    return img, res, timing


# ---------------------------------------------------------------- routes
def _page_route(app) -> None:
    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(resources.files("yolact.serve").joinpath("page.html").read_text(encoding="utf-8"))


def _health_route(app, batcher: MicroBatcher) -> None:
    @app.get("/v1/health", summary="Liveness and queue depth")
    async def health():
        return {"status": "ok", "queued": batcher.queued, "batches": batcher.batches, "served": batcher.served}


def _model_route(app, model_info: Dict, auth) -> None:
    @app.get("/v1/model", summary="The served model: config, classes, precision, backend", dependencies=[auth])
    async def model_route():
        return model_info


def _segment_route(app, batcher: MicroBatcher, settings: ServeSettings, auth) -> None:
    @app.post("/v1/segment", summary="Segment one image; JSON detections", description=_SEGMENT_DOC,
              openapi_extra=_BODY_DOC, dependencies=[auth],
              responses={200: {"content": {"application/json": {"example": _SEGMENT_EXAMPLE}}}})
    async def segment_route(request: Request,
                            score_threshold: float = Query(0.15, ge=0.0, le=1.0),
                            top_k: int = Query(100, ge=1, le=1000),
                            masks: str = Query("rle", pattern="^(rle|polygons|none)$",
                                               description="rle (COCO compressed), polygons or none")):
        t0 = time.perf_counter()
        img, res, timing = await _segment(request, batcher, settings, score_threshold, top_k)
        if res is None:
            return Response(status_code=400)  # the client disconnected; nobody reads this
        t_enc = time.perf_counter()
        dets = await asyncio.to_thread(res.to_records, masks)  # the record: RECORD_FIELDS
        timing["encode_ms"] = 1000 * (time.perf_counter() - t_enc)
        timing["total_ms"] = 1000 * (time.perf_counter() - t0)
        return {"image": {"width": int(img.shape[1]), "height": int(img.shape[0])}, "count": len(dets),
                "detections": dets, "timing": {k: round(v, 2) for k, v in timing.items()}}


def _overlay_route(app, batcher: MicroBatcher, settings: ServeSettings, auth) -> None:
    @app.post("/v1/overlay", summary="Segment one image; a PNG with masks, boxes and labels drawn",
              openapi_extra=_BODY_DOC, dependencies=[auth], responses={200: {"content": {"image/png": {}}}})
    async def overlay_route(request: Request,
                            score_threshold: float = Query(0.15, ge=0.0, le=1.0),
                            top_k: int = Query(100, ge=1, le=1000)):
        img, res, timing = await _segment(request, batcher, settings, score_threshold, top_k)
        if res is None:
            return Response(status_code=400)

        def draw() -> bytes:
            ok, png = cv2.imencode(".png", res.plot(img))
            return png.tobytes()

        return Response(await asyncio.to_thread(draw), media_type="image/png",
                        headers={"X-Detections": str(len(res))})


def create_app(model, settings: ServeSettings = ServeSettings(), info: Optional[Dict] = None,
               predict_options: Optional[Dict] = None, metrics: bool = True, metrics_route: bool = True):
    """The ASGI app serving ``model`` (anything with ``cfg`` and ``predict(list, ...)``).
    ``predict_options``: keyword arguments given to every ``model.predict`` call (classes, iou,
    agnostic_nms, max_det, img_size, slice, slice_full); requests choose score_threshold and
    top_k. With ``slice`` requests are not batched together (the merge depends on the
    threshold). ``metrics``: count Prometheus metrics (needs prometheus-client), served at GET
    /metrics unless ``metrics_route`` is False (for a port of their own:
    :func:`yolact.serve.metrics.serve_metrics` with ``app.state.metrics``). ``app.state.server``
    is the :class:`ServerState` (starting, ready after a warm-up prediction, draining)."""
    from fastapi_offline import FastAPIOffline  # Swagger UI and ReDoc served from the package: no CDN

    from .. import __version__

    options = dict(predict_options or {})

    def predict(images, score_threshold, top_k):
        if options.get("max_det") is not None:  # the server's --max-det caps every request, as before
            top_k = options["max_det"]
        return model.predict(list(images), score_threshold=score_threshold, top_k=top_k, keep_image=False,
                             **options)

    # Sliced inference merges detections across tiles, so a request's own threshold must be the
    # one the merge saw: each request runs alone (its tiles are batched inside predict).
    max_batch = 1 if options.get("slice") else settings.max_batch
    batcher = MicroBatcher(predict, max_batch, settings.max_wait_ms / 1000, settings.max_queue)
    state = ServerState()
    state.on_cut_off(batcher.fail_pending)  # past --drain-timeout: the requests still waiting get 503
    app = FastAPIOffline(title="yolact", version=__version__, lifespan=_lifespan(batcher, state),
                         description="YOLACT instance segmentation. POST an image to /v1/segment.")
    app.state.batcher = batcher
    app.state.server = state
    served_info = _model_info(model, settings, info, options, max_batch)
    app.state.metrics = ServeMetrics(batcher, served_info) if metrics else None
    add_middleware(app, app.state.metrics, state)
    add_probe_routes(app, state)
    if app.state.metrics is not None and metrics_route:
        add_metrics_route(app, app.state.metrics)
    auth = _key_dependency(settings.api_key)
    _add_error_handlers(app)
    _page_route(app)
    _health_route(app, batcher)
    _model_route(app, served_info, auth)
    _segment_route(app, batcher, settings, auth)
    _overlay_route(app, batcher, settings, auth)
    add_v2_routes(app, model, batcher, settings, state, auth, _infer, _read_body, _upload_limit)
    return app
