"""Label Studio ML backend (``pip install 'yolact[label-studio]'``; ``yolact serve --label-studio``).

Speaks the protocol of label-studio-ml-backend: ``GET /health`` -> ``{"status": "UP"}``,
``POST /setup`` (project, schema = the labelling config XML) -> ``{"model_version"}``,
``POST /predict`` ({tasks, label_config}) -> ``{"results": [{"result": [...], "score",
"model_version"}]}``, one entry per task in order.

The labelling config decides the output: each ``<PolygonLabels>`` gets ``polygonlabels`` regions
(the outer outline of each mask part along the pixels' edges, points in percent of the image width/height, Label
Studio's convention), each ``<BrushLabels>`` gets ``brushlabels`` regions (RLE from
``label_studio_sdk.converter.brush.mask2rle``, Label Studio's own encoder). Model class names
map to the config's labels by name (a label's ``predicted_values`` attribute, comma separated,
may name model classes for it); labels the model lacks are warned about once on stderr.

Images are fetched from the task's URL: ``/data/upload/...`` and other relative Label Studio
URLs with ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` (a personal access token,
exchanged for an access token, or a legacy token), ``/data/local-files/?d=PATH`` from ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``
when set (else through the server), http(s) URLs directly, and ``data:`` URLs.
"""

import base64
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

try:
    from label_studio_sdk.converter.brush import mask2rle
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("yolact.integrations.label_studio needs label-studio-sdk: pip install 'yolact[label-studio]'") from e

from ..errors import YolactError


@dataclass
class ControlTag:
    """One ``<PolygonLabels>``/``<BrushLabels>`` of a labelling config: its ``name``, the
    ``to_name`` image, the image's ``value`` key in task data ($image -> 'image'), ``kind``
    ('polygonlabels' or 'brushlabels') and model class name -> Label Studio label."""
    name: str
    to_name: str
    value: str
    kind: str
    labels: Dict[str, str] = field(default_factory=dict)


_KINDS = {"polygonlabels": "polygonlabels", "brushlabels": "brushlabels"}


def parse_config(label_config: str, class_names: Sequence[str], warn=None) -> List[ControlTag]:
    """The polygon/brush control tags of a Label Studio config XML, mapped to ``class_names``.
    Raises YolactError for XML that does not parse or has no such tag."""
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as e:
        raise YolactError(f"label config: not valid XML ({e})") from None
    images = {el.get("name"): (el.get("value") or "").lstrip("$") for el in root.iter() if el.tag == "Image"}
    tags, lacking = [], []
    for el in root.iter():
        kind = _KINDS.get(el.tag.lower())
        if kind is None:
            continue
        tag = ControlTag(el.get("name"), el.get("toName"), images.get(el.get("toName"), "image"), kind)
        for lab in el.iter("Label"):
            value = lab.get("value")
            wanted = [v.strip() for v in (lab.get("predicted_values") or value).split(",")]
            hit = [v for v in wanted if v in class_names]
            for v in hit:
                tag.labels[v] = value
            if not hit:
                lacking.append(value)
        tags.append(tag)
    if not tags:
        raise YolactError("label config: no <PolygonLabels> or <BrushLabels> tag for masks")
    if lacking and warn is not None:
        warn(f"warning: the model has no class for label(s) {', '.join(sorted(set(lacking)))}; they get no predictions")
    return tags


_ACCESS_TOKENS: Dict = {}  # (server, personal access token) -> (access token, time fetched)
_ACCESS_TTL_S = 60.0  # Label Studio's access tokens live minutes; fetch a fresh one well before


def _authorization(base: str, key: str, timeout: float) -> str:
    """The Authorization header for Label Studio ``base``: a legacy token as ``Token KEY``; a
    personal access token (a JWT: three dot-separated parts) exchanged at ``/api/token/refresh``
    for a short-lived access token, sent as ``Bearer``. Raises YolactError when the exchange fails."""
    import json
    import time

    if key.count(".") != 2:
        return f"Token {key}"
    cached = _ACCESS_TOKENS.get((base, key))
    if cached is None or time.monotonic() - cached[1] > _ACCESS_TTL_S:
        req = urllib.request.Request(base.rstrip("/") + "/api/token/refresh", method="POST",
                                     data=json.dumps({"refresh": key}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                access = json.loads(r.read())["access"]
        except Exception as e:
            raise YolactError(f"{base}: cannot exchange LABEL_STUDIO_API_KEY (a personal access token) for "
                              f"an access token ({e})") from None
        cached = _ACCESS_TOKENS[(base, key)] = (access, time.monotonic())
    return f"Bearer {cached[0]}"


def fetch_image(url: str, task_id=None, timeout: float = 30.0) -> np.ndarray:
    """The BGR uint8 [H, W, 3] image at a task's URL (see the module docstring). Raises
    YolactError naming the URL when it cannot be read or decoded."""
    if url.startswith("data:"):
        data = base64.b64decode(url.split(",", 1)[1])
    else:
        parsed = urllib.parse.urlparse(url)
        root = os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
        if parsed.path.endswith("/data/local-files/") and root:
            path = os.path.join(root, urllib.parse.parse_qs(parsed.query)["d"][0])
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise YolactError(f"{url}: cannot read {path} ({e.strerror})") from None
        else:
            headers = {}
            if not parsed.scheme:
                base = os.environ.get("LABEL_STUDIO_URL") or os.environ.get("LABEL_STUDIO_HOST")
                if not base:
                    raise YolactError(f"{url}: a Label Studio URL needs LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY)")
                url = base.rstrip("/") + "/" + url.lstrip("/")
                key = os.environ.get("LABEL_STUDIO_API_KEY")
                if key:
                    headers["Authorization"] = _authorization(base, key, timeout)
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
                    data = r.read()
            except Exception as e:  # urllib raises many kinds; the client gets one line
                raise YolactError(f"{url}: cannot fetch ({e})") from None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise YolactError(f"{url}: not a readable image")
    return img


def regions(res, tag: ControlTag, decimals: int = 4) -> List[Dict]:
    """Label Studio result regions of :class:`yolact.Results` for one control tag. Polygons:
    one region per outer outline part (points [x%, y%]); brush: one region per detection (RLE of
    the 0/255 mask). Each has ``score`` (the mask score). Classes not mapped are skipped."""
    h, w = res.image_shape
    out, crops = [], res.mask_crops
    for i in range(len(res)):
        label = tag.labels.get(res.class_names[int(res.labels[i])])
        if label is None:
            continue
        base = {"from_name": tag.name, "to_name": tag.to_name, "original_width": int(w),
                "original_height": int(h), "image_rotation": 0, "score": float(res.scores[i])}
        if tag.kind == "polygonlabels":
            # along the pixels' outer edges: the polygon covers the mask's pixels, as Label Studio
            # fills it and its COCO export counts area (through pixel centres loses half a pixel
            # all round: IoU ~0.9 on a 500-pixel mask)
            outer, _ = crops.outlines(i, corners=True)
            for j, c in enumerate(outer):
                if len(c) < 3:
                    continue
                pts = np.asarray(c, np.float64) / [w, h] * 100.0
                out.append({**base, "id": f"r{i}_{j}", "type": "polygonlabels",
                            "value": {"points": np.round(pts, decimals).tolist(), "closed": True,
                                      "polygonlabels": [label]}})
        else:
            full = np.zeros((h, w), np.uint8)
            crops.paste(i, full.view(bool))
            if not full.any():
                continue
            out.append({**base, "id": f"r{i}", "type": "brushlabels",
                        "value": {"format": "rle", "rle": [int(v) for v in mask2rle(full * 255)],
                                  "brushlabels": [label]}})
    return out


class LabelStudioBackend:
    """The backend's logic, independent of the web framework. ``predictor``: a loaded model
    (``yolact.load``); ``conf``: the class-score threshold (None: the predictor's default)."""

    def __init__(self, predictor, model_version: str = "yolact", conf: Optional[float] = None, warn=None):
        self.predictor, self.model_version, self.conf = predictor, model_version, conf
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._warned = set()

    def _warn_once(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            self.warn(msg)

    def setup(self, body: Dict) -> Dict:
        schema = body.get("schema") or body.get("label_config")
        if schema:
            parse_config(schema, self.predictor.class_names, warn=self._warn_once)
        return {"model_version": self.model_version}

    def predict(self, body: Dict) -> Dict:
        tasks = body.get("tasks") or []
        config = body.get("label_config") or body.get("schema")
        if not config:
            raise YolactError("predict: the request has no label_config")
        tags = parse_config(config, self.predictor.class_names, warn=self._warn_once)
        results = []
        for task in tasks:
            data = task.get("data") or {}
            result, images = [], {}
            for tag in tags:
                if tag.value not in data:
                    raise YolactError(f"task {task.get('id')}: no '{tag.value}' in its data")
                if tag.value not in images:
                    img = fetch_image(str(data[tag.value]), task.get("id"))
                    images[tag.value] = (self.predictor.predict(img) if self.conf is None
                                         else self.predictor.predict(img, conf=self.conf))
                result += regions(images[tag.value], tag)
            scores = [r["score"] for r in result]
            results.append({"result": result, "score": float(np.mean(scores)) if scores else 0.0,
                            "model_version": self.model_version})
        return {"results": results, "model_version": self.model_version}


def _authorized(header: Optional[str], api_key: str) -> bool:
    """Whether an Authorization header carries ``api_key``: HTTP Basic with it as the password
    (what Label Studio sends for a model connected with *Use basic auth*), or ``Bearer``/``Token``."""
    import hmac

    if not header or " " not in header:
        return False
    scheme, value = header.split(" ", 1)
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic":
        try:
            value = base64.b64decode(value).decode("utf-8").split(":", 1)[1]
        except Exception:
            return False
    elif scheme not in ("bearer", "token"):
        return False
    return hmac.compare_digest(value.encode(), api_key.encode())


def create_app(predictor, model_version: str = "yolact", conf: Optional[float] = None,
               api_key: Optional[str] = None):
    """A FastAPI app with Label Studio's ML backend routes (needs the serve extra). Errors are
    one line in ``{"error": ...}`` with status 400, never a traceback. ``api_key``: when given,
    every route answers 401 unless the request carries it (see :func:`_authorized`; in Label
    Studio: *Connect model > Use basic auth*, any user name, the key as password)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    backend = LabelStudioBackend(predictor, model_version, conf)
    app = FastAPI(title="YOLACT Label Studio ML backend")
    app.state.backend = backend

    if api_key:
        @app.middleware("http")
        async def require_key(request: Request, call_next):
            if not _authorized(request.headers.get("authorization"), api_key):
                return JSONResponse({"error": "unauthorized: give the API key (basic auth password or Bearer)"},
                                    status_code=401, headers={"WWW-Authenticate": 'Basic realm="yolact"'})
            return await call_next(request)

    @app.get("/health")
    @app.get("/")
    def health():
        return {"status": "UP", "model_class": "YOLACT", "model_version": backend.model_version}

    async def _call(fn, request: Request):
        try:
            body = await request.json()
        except Exception:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        try:
            return fn(body if isinstance(body, dict) else {})
        except YolactError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    @app.post("/setup")
    async def setup(request: Request):
        return await _call(backend.setup, request)

    @app.post("/predict")
    async def predict(request: Request):
        return await _call(backend.predict, request)

    @app.post("/webhook")
    async def webhook(request: Request):
        # training on annotation events is not offered: train with `yolact train` on the export
        return {"status": "ok"}

    return app
