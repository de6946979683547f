"""The Open Inference Protocol v2 (KServe v2 REST) beside the ``/v1`` routes.

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/yolact`` (metadata), ``/v2/models/yolact/ready``, ``POST /v2/models/yolact/infer``,
and the same under ``/v2/models/yolact/versions/1``; another model or version is a 404. Input
``image``: the encoded image as a BYTES tensor of shape [1], or a UINT8 tensor H x W x 3 (BGR).
Tensor data may be JSON or the binary tensor data extension (``Inference-Header-Content-Length``),
as tritonclient sends it; the whole request is checked before any image is decoded, a fault being
one 400 naming it. Outputs (JSON data): ``boxes`` FP32 [N, 4] (x1, y1, x2, y2 pixels), ``scores``
FP32 [N], ``box_scores`` FP32 [N], ``labels`` INT32 [N], ``class_names`` BYTES [N], ``masks``
BYTES [N] (COCO RLE JSON per detection); the request's ``outputs`` picks some. Parameters:
``score_threshold`` and ``top_k``. Every error is the protocol's ``{"error": "message"}``.
"""

import asyncio
import json
import struct
from typing import Dict, List, Optional

import numpy as np

MODEL_NAME = "yolact"
MODEL_VERSION = "1"

_DTYPES = {"UINT8": np.uint8, "FP32": np.float32, "INT32": np.int32}


class V2Error(Exception):
    """A request the protocol refuses: answered ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


OUTPUT_NAMES = ("boxes", "scores", "box_scores", "labels", "class_names", "masks")
PARAMETERS = {"score_threshold": "a number in [0, 1] (default 0.15)", "top_k": "an integer in [1, 1000] (default 100)"}
# Request parameters the protocol or its clients define; taken and ignored (outputs are always JSON).
_PROTOCOL_PARAMETERS = {"binary_data_output", "binary_data", "priority", "timeout", "headers", "sequence_id",
                        "sequence_start", "sequence_end"}


def _bytes_elements(raw: bytes, name: str) -> List[bytes]:
    """The elements of a binary BYTES tensor (each a little-endian uint32 length and that many
    bytes); V2Error 400 when a length runs past the data."""
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise V2Error(400, f"BYTES input '{name}': {len(raw) - i} stray byte(s) after element {len(out)} "
                               "(each element is a 4-byte little-endian length, then that many bytes)")
        (n,) = struct.unpack_from("<I", raw, i)
        if i + 4 + n > len(raw):
            raise V2Error(400, f"BYTES input '{name}': element {len(out)} declares {n} bytes but only "
                               f"{len(raw) - i - 4} remain in its binary data")
        out.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return out


def _shape(inp: Dict) -> List[int]:
    shape = inp.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise V2Error(400, f"input '{inp.get('name')}': 'shape' must be a list of non-negative integers, "
                           f"not {json.dumps(shape)}")
    return shape


def _check_inputs(req) -> List[Dict]:
    """The request's inputs, checked for form before any data is read: a JSON object with a
    non-empty 'inputs' list of objects, each with a string name, a datatype and a shape."""
    if not isinstance(req, dict):
        raise V2Error(400, "the request must be a JSON object with an 'inputs' list")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error(400, "the request must be a JSON object with a non-empty 'inputs' list")
    for k, inp in enumerate(inputs):
        if not isinstance(inp, dict) or not isinstance(inp.get("name"), str):
            raise V2Error(400, f"inputs[{k}] must be an object with a 'name', a 'datatype' and a 'shape'")
        if not isinstance(inp.get("datatype"), str):
            raise V2Error(400, f"input '{inp['name']}': 'datatype' must be a string such as BYTES or UINT8")
        _shape(inp)
        if not isinstance(inp.get("parameters", {}), dict):
            raise V2Error(400, f"input '{inp['name']}': 'parameters' must be an object")
    names = [i["name"] for i in inputs]
    if "image" not in names:
        raise V2Error(400, f"input 'image' is missing (got {', '.join(map(repr, names))}); this model takes one "
                           "input, 'image'")
    extra = [n for n in names if n != "image"]
    if extra or len(names) != 1:
        raise V2Error(400, f"this model takes one input, 'image'; got {', '.join(map(repr, names))}")
    return inputs


def _binary_sections(inputs: List[Dict], rest: bytes) -> Dict[str, bytes]:
    """Split the binary data after the JSON header by the inputs' ``binary_data_size``; V2Error 400
    unless the sizes add up to exactly the bytes that arrived."""
    sections, offset = {}, 0
    for inp in inputs:
        size = inp.get("parameters", {}).get("binary_data_size")
        if size is None:
            if "data" not in inp:
                raise V2Error(400, f"input '{inp['name']}' has neither 'data' nor a 'binary_data_size' parameter")
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise V2Error(400, f"input '{inp['name']}': binary_data_size must be a non-negative integer")
        sections[inp["name"]] = rest[offset:offset + size]
        offset += size
    if offset != len(rest):
        raise V2Error(400, f"binary tensor data: the inputs declare {offset} byte(s) after the JSON header "
                           f"but {len(rest)} arrived (check binary_data_size and Inference-Header-Content-Length)")
    return sections


def _image_tensor(inp: Dict, binary: Optional[bytes]):
    """The 'image' input as encoded bytes (BYTES) or an H x W x 3 uint8 array (UINT8), its datatype,
    shape and data length checked against each other."""
    dtype, shape = inp["datatype"], inp["shape"]
    if dtype == "BYTES":
        if int(np.prod(shape)) != 1:
            raise V2Error(400, f"BYTES input 'image' must have shape [1] (one encoded image), not {shape}")
        if binary is not None:
            items = _bytes_elements(binary, "image")
        else:
            data = inp["data"]
            flat = data if isinstance(data, list) else [data]
            while len(flat) == 1 and isinstance(flat[0], list):
                flat = flat[0]
            if not all(isinstance(d, str) for d in flat):
                raise V2Error(400, "BYTES input 'image' data must be a string (or send it as binary data, as "
                                   "tritonclient does with binary_data=True)")
            items = [d.encode("latin-1", "replace") for d in flat]
        if len(items) != 1:
            raise V2Error(400, f"BYTES input 'image' of shape {shape} must hold one element, not {len(items)}")
        if not items[0]:
            raise V2Error(400, "BYTES input 'image' is empty")
        return items[0]
    if dtype == "UINT8":
        if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
            raise V2Error(400, f"UINT8 input 'image' must have shape [H, W, 3] (BGR), not {shape}")
        need = shape[0] * shape[1] * 3
        if binary is not None:
            if len(binary) != need:
                raise V2Error(400, f"UINT8 input 'image' of shape {shape} needs {need} bytes, its binary data "
                                   f"has {len(binary)}")
            arr = np.frombuffer(binary, np.uint8)
        else:
            try:
                arr = np.asarray(inp["data"]).ravel()
            except (TypeError, ValueError, OverflowError):
                arr = np.zeros(0, np.float64)
            if arr.dtype.kind not in "iu" or (arr.dtype.kind == "u" and arr.dtype.itemsize > 4):
                raise V2Error(400, "UINT8 input 'image' data must be integers in 0..255")
            arr = arr.astype(np.int64)
            if arr.size != need:
                raise V2Error(400, f"UINT8 input 'image' of shape {shape} needs {need} values, its data has "
                                   f"{arr.size}")
            if arr.size and (arr.min() < 0 or arr.max() > 255):
                raise V2Error(400, "UINT8 input 'image' data must be integers in 0..255")
            arr = arr.astype(np.uint8)
        return arr.reshape(shape).copy()  # writable: torch warns on read-only buffers
    raise V2Error(400, f"input 'image' must be BYTES or UINT8, not {dtype}")


def parse_request(body: bytes, header_length: str):
    """-> (request JSON dict, the ``image`` input: bytes or an H x W x 3 uint8 array).

    Everything is checked before any image is decoded: the JSON header, each input's name,
    datatype and shape, the binary data sizes against the bytes that arrived, and the image
    tensor's length against its shape. Raises V2Error (400) with one message naming the problem."""
    if header_length:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise V2Error(400, f"Inference-Header-Content-Length {header_length!r} is not a byte count within "
                               f"the {len(body)} byte body")
        head, rest = body[:int(header_length)], body[int(header_length):]
    else:
        head, rest = body, b""
    try:
        req = json.loads(head)
    except (ValueError, UnicodeDecodeError):
        hint = "" if header_length else " (binary data needs the Inference-Header-Content-Length header)"
        raise V2Error(400, f"the request header is not valid JSON{hint}") from None
    inputs = _check_inputs(req)
    sections = _binary_sections(inputs, rest)
    image = _image_tensor(inputs[0], sections.get("image"))
    return req, image


def request_controls(req: Dict):
    """-> (score_threshold, top_k, requested output names) from the request's parameters and
    'outputs'; V2Error 400 naming the parameter or output at fault."""
    params = req.get("parameters", {})
    if not isinstance(params, dict):
        raise V2Error(400, "'parameters' must be an object")
    unknown = sorted(set(params) - set(PARAMETERS) - _PROTOCOL_PARAMETERS)
    if unknown:
        raise V2Error(400, f"unknown parameter(s) {', '.join(unknown)}; per request: "
                           + "; ".join(f"{k}: {v}" for k, v in PARAMETERS.items()))
    thr, top_k = params.get("score_threshold", 0.15), params.get("top_k", 100)
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0.0 <= thr <= 1.0:
        raise V2Error(400, f"parameter score_threshold must be {PARAMETERS['score_threshold']}, not {json.dumps(thr)}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 1000:
        raise V2Error(400, f"parameter top_k must be {PARAMETERS['top_k']}, not {json.dumps(top_k)}")
    outputs = req.get("outputs")
    if outputs is None:
        return float(thr), top_k, list(OUTPUT_NAMES)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise V2Error(400, "'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in outputs]
    bad = [n for n in names if n not in OUTPUT_NAMES]
    if bad:
        raise V2Error(400, f"unknown output(s) {', '.join(map(repr, bad))}; outputs: {', '.join(OUTPUT_NAMES)}")
    return float(thr), top_k, names


def model_metadata(model) -> Dict:
    return {"name": MODEL_NAME, "versions": [MODEL_VERSION], "platform": "pytorch", "inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1]}],
        "outputs": [{"name": "boxes", "datatype": "FP32", "shape": [-1, 4]},
                    {"name": "scores", "datatype": "FP32", "shape": [-1]},
                    {"name": "box_scores", "datatype": "FP32", "shape": [-1]},
                    {"name": "labels", "datatype": "INT32", "shape": [-1]},
                    {"name": "class_names", "datatype": "BYTES", "shape": [-1]},
                    {"name": "masks", "datatype": "BYTES", "shape": [-1]}],
        "parameters": {"classes": list(model.cfg.class_names), "config": model.cfg.name,
                       "category_ids": list(model.cfg.label_category_ids()),
                       "image_datatypes": "BYTES [1] (encoded) or UINT8 [H, W, 3] (BGR)"}}


def outputs_of(res, names=OUTPUT_NAMES) -> List[Dict]:
    """The protocol's output tensors (JSON data) of one Results, those in ``names`` only, in that order."""
    recs = res.to_records("rle" if "masks" in names else "none")
    n = len(recs)

    def tensor(name):
        if name == "boxes":
            return "FP32", [n, 4], [v for r in recs for v in r["box"]]
        if name == "scores":
            return "FP32", [n], [r["score"] for r in recs]
        if name == "box_scores":
            return "FP32", [n], [r.get("box_score") for r in recs]
        if name == "labels":
            return "INT32", [n], [r["label"] for r in recs]
        if name == "class_names":
            return "BYTES", [n], [r["class_name"] for r in recs]
        return "BYTES", [n], [json.dumps(r["segmentation"]) for r in recs]

    return [dict(zip(("name", "datatype", "shape", "data"), (name, *tensor(name)))) for name in names]


def is_v2_path(path: str) -> bool:
    """True for the protocol's routes (their errors take its shape)."""
    return path == "/v2" or path.startswith("/v2/")


def error_body(message: str) -> Dict:
    """The protocol's error shape: ``{"error": "message"}``."""
    return {"error": message}


def add_v2_health_routes(app, state) -> None:
    """The v2 server routes that need no model: server metadata, liveness, readiness."""
    from fastapi.responses import JSONResponse

    @app.get("/v2", summary="OIP v2 server metadata")
    async def server_metadata():
        from .. import __version__
        return {"name": "yolact", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", summary="OIP v2 liveness")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="OIP v2 readiness (200 once the model is warm; 503 starting or draining)")
    async def ready():
        return JSONResponse({"ready": state.ready}, status_code=200 if state.ready else 503)


def add_v2_routes(app, model, batcher, settings, state, auth, run_inference, read_body, upload_limit) -> None:
    """Add the v2 routes. ``run_inference``, ``read_body`` and ``upload_limit`` are the /v1
    routes' own helpers (passed in, so this module does not import ``app``: no cycle). Every
    error under /v2 is the protocol's ``{"error": "message"}`` (the app's handlers see to the
    ones raised outside these routes: 401, 404, 503 while draining, 500)."""
    import time

    from fastapi import Request
    from fastapi.responses import JSONResponse, Response
    from starlette.requests import ClientDisconnect

    from .uploads import decode_image

    def err(status, message):
        return JSONResponse(error_body(message), status_code=status)

    def check_model(name: str, version: Optional[str] = None) -> None:
        if name != MODEL_NAME:
            raise V2Error(404, f"model '{name}' is not served here (this server serves '{MODEL_NAME}')")
        if version is not None and version != MODEL_VERSION:
            raise V2Error(404, f"model '{name}' has no version '{version}' (versions: {MODEL_VERSION})")

    add_v2_health_routes(app, state)

    async def metadata(name: str, version: Optional[str] = None):
        try:
            check_model(name, version)
        except V2Error as e:
            return err(e.status, e.message)
        return model_metadata(model)

    async def model_ready(name: str, version: Optional[str] = None):
        try:
            check_model(name, version)
        except V2Error as e:
            return err(e.status, e.message)
        return JSONResponse({"name": MODEL_NAME, "ready": state.ready}, status_code=200 if state.ready else 503)

    async def infer(request: Request, name: str, version: Optional[str] = None):
        t0 = time.perf_counter()
        try:
            check_model(name, version)
            try:
                body = await read_body(request, upload_limit(settings), settings.timeout_s)
            except ClientDisconnect:
                return Response(status_code=400)  # the client went away; nobody reads this
            req, image = parse_request(body, request.headers.get("inference-header-content-length", ""))
            score_threshold, top_k, names = request_controls(req)
        except V2Error as e:
            return err(e.status, e.message)
        img = image if isinstance(image, np.ndarray) else await asyncio.to_thread(decode_image, image,
                                                                                   settings.max_pixels)
        res, batch = await run_inference(batcher, img, score_threshold, top_k, settings,
                                         settings.timeout_s - (time.perf_counter() - t0))
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.observe_inference(batch.size, len(res))
        request.state.image = [int(img.shape[1]), int(img.shape[0])]
        request.state.detections = len(res)
        outputs = await asyncio.to_thread(outputs_of, res, names)
        rid = req.get("id")  # the request's own id, else its X-Request-ID (given or made)
        if not isinstance(rid, str) or not rid:
            rid = getattr(request.state, "request_id", "")
        return {"model_name": MODEL_NAME, "model_version": MODEL_VERSION, "id": rid, "outputs": outputs}

    base = "/v2/models/{name}"
    versioned = base + "/versions/{version}"
    for path in (base, versioned):
        app.add_api_route(path, metadata, methods=["GET"], dependencies=[auth], summary="OIP v2 model metadata")
        app.add_api_route(path + "/ready", model_ready, methods=["GET"],
                          summary="OIP v2 model readiness (200 once warm; 503 starting or draining)")
        app.add_api_route(path + "/infer", infer, methods=["POST"], dependencies=[auth], summary="OIP v2 inference")
