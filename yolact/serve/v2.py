"""The Open Inference Protocol v2 (KServe v2 REST) beside the ``/v1`` routes.

Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2/models/yolact`` (metadata),
``/v2/models/yolact/ready``, ``POST /v2/models/yolact/infer``. Input ``image``: the encoded image
as a BYTES tensor of shape [1], or a UINT8 tensor H x W x 3 (BGR). Tensor data may be JSON or the
binary tensor data extension (``Inference-Header-Content-Length``), as tritonclient sends it.
Outputs (JSON data): ``boxes`` FP32 [N, 4] (x1, y1, x2, y2 pixels), ``scores`` FP32 [N],
``box_scores`` FP32 [N], ``labels`` INT32 [N], ``class_names`` BYTES [N], ``masks`` BYTES [N]
(COCO RLE JSON per detection). Parameters: ``score_threshold`` and ``top_k``.
"""

import asyncio
import json
import struct
from typing import Dict, List

import numpy as np

MODEL_NAME = "yolact"

_DTYPES = {"UINT8": np.uint8, "FP32": np.float32, "INT32": np.int32}


class V2Error(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _bytes_elements(raw: bytes) -> List[bytes]:
    out, i = [], 0
    while i + 4 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, i)
        out.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return out


def parse_request(body: bytes, header_length: str):
    """-> (request JSON dict, the ``image`` input: bytes or an H x W x 3 uint8 array)."""
    if header_length:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise V2Error(400, "bad Inference-Header-Content-Length")
        head, rest = body[:int(header_length)], body[int(header_length):]
    else:
        head, rest = body, b""
    try:
        req = json.loads(head)
        inputs = req["inputs"]
    except (ValueError, KeyError, TypeError):
        raise V2Error(400, "the request must be JSON with an 'inputs' list") from None
    offset = 0
    found = None
    for inp in inputs:
        params = inp.get("parameters") or {}
        size = params.get("binary_data_size")
        if size is not None:
            data, offset = rest[offset:offset + int(size)], offset + int(size)
        else:
            data = inp.get("data")
        if inp.get("name") == "image":
            found = (inp, data, size is not None)
    if found is None:
        raise V2Error(400, "input 'image' is missing")
    inp, data, binary = found
    dtype, shape = inp.get("datatype"), list(inp.get("shape") or [])
    if dtype == "BYTES":
        items = _bytes_elements(data) if binary else [d.encode("latin-1") if isinstance(d, str) else bytes(d)
                                                      for d in np.ravel(np.asarray(data, dtype=object))]
        if len(items) != 1:
            raise V2Error(400, "BYTES input 'image' must hold exactly one encoded image")
        return req, items[0]
    if dtype == "UINT8":
        if len(shape) != 3 or shape[2] != 3:
            raise V2Error(400, "UINT8 input 'image' must have shape [H, W, 3]")
        if binary:
            arr = np.frombuffer(data, np.uint8)
        else:
            try:
                arr = np.asarray(data, np.int64)
            except (TypeError, ValueError, OverflowError):
                raise V2Error(400, "UINT8 input 'image' data must be integers") from None
            if arr.size and (arr.min() < 0 or arr.max() > 255):
                raise V2Error(400, "UINT8 input 'image' data must be integers in 0..255")
            arr = arr.astype(np.uint8)
        if arr.size != shape[0] * shape[1] * 3:
            raise V2Error(400, "UINT8 input 'image' data does not match its shape")
        return req, arr.reshape(shape).copy()  # writable: torch warns on read-only buffers
    raise V2Error(400, f"input 'image' must be BYTES or UINT8, not {dtype}")


def model_metadata(model) -> Dict:
    return {"name": MODEL_NAME, "versions": ["1"], "platform": "pytorch", "inputs": [
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


def outputs_of(res) -> List[Dict]:
    recs = res.to_records("rle")
    n = len(recs)
    boxes = [v for r in recs for v in r["box"]]

    def out(name, dtype, shape, data):
        return {"name": name, "datatype": dtype, "shape": shape, "data": data}

    return [out("boxes", "FP32", [n, 4], boxes), out("scores", "FP32", [n], [r["score"] for r in recs]),
            out("box_scores", "FP32", [n], [r.get("box_score") for r in recs]),
            out("labels", "INT32", [n], [r["label"] for r in recs]),
            out("class_names", "BYTES", [n], [r["class_name"] for r in recs]),
            out("masks", "BYTES", [n], [json.dumps(r["segmentation"]) for r in recs])]


def add_v2_routes(app, model, batcher, settings, state, auth, run_inference, read_body, upload_limit) -> None:
    """Add the v2 routes. ``run_inference``, ``read_body`` and ``upload_limit`` are the /v1
    routes' own helpers (passed in, so this module does not import ``app``: no cycle)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    from starlette.exceptions import HTTPException

    from .uploads import UploadError, decode_image

    def err(status, message):
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/v2/health/live", summary="OIP v2 liveness")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="OIP v2 readiness")
    async def ready():
        return JSONResponse({"ready": state.ready}, status_code=200 if state.ready else 503)

    @app.get(f"/v2/models/{MODEL_NAME}", summary="OIP v2 model metadata", dependencies=[auth])
    async def metadata():
        return model_metadata(model)

    @app.get(f"/v2/models/{MODEL_NAME}/ready", summary="OIP v2 model readiness")
    async def model_ready():
        return JSONResponse({"name": MODEL_NAME, "ready": state.ready}, status_code=200 if state.ready else 503)

    @app.post(f"/v2/models/{MODEL_NAME}/infer", summary="OIP v2 inference", dependencies=[auth])
    async def infer(request: Request):
        # The protocol's error body is {"error": "message"}; the /v1 handlers' nested form would
        # break v2 clients (tritonclient fails on it).
        try:
            return await _infer_v2(request)
        except V2Error as e:
            return err(e.status, e.message)
        except UploadError as e:
            return JSONResponse({"error": e.message}, status_code=e.status,
                                headers={"Connection": "close"} if e.status == 408 else None)
        except HTTPException as e:
            return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    async def _infer_v2(request):
        import time
        t0 = time.perf_counter()
        body = await read_body(request, upload_limit(settings), settings.timeout_s)
        try:
            req, image = parse_request(body, request.headers.get("inference-header-content-length", ""))
            params = req.get("parameters") or {}
            score_threshold = float(params.get("score_threshold", 0.15))
            top_k = int(params.get("top_k", 100))
            if not (0.0 <= score_threshold <= 1.0 and 1 <= top_k <= 1000):
                raise V2Error(400, "score_threshold must be in [0, 1] and top_k in [1, 1000]")
        except V2Error as e:
            return err(e.status, e.message)
        except (TypeError, ValueError):
            return err(400, "score_threshold and top_k must be numbers")
        img = image if isinstance(image, np.ndarray) else await asyncio.to_thread(decode_image, image,
                                                                                   settings.max_pixels)
        res, batch = await run_inference(batcher, img, score_threshold, top_k, settings,
                                  settings.timeout_s - (time.perf_counter() - t0))
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.observe_inference(batch.size, len(res))
        request.state.image = [int(img.shape[1]), int(img.shape[0])]
        request.state.detections = len(res)
        outputs = await asyncio.to_thread(outputs_of, res)
        return {"model_name": MODEL_NAME, "model_version": "1", "id": req.get("id", ""), "outputs": outputs}
