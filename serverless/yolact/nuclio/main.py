"""CVAT serverless (Nuclio) handler for YOLACT instance segmentation.

Deploy with CVAT's ``serverless/deploy_cpu.sh`` (or ``nuctl deploy``) from this folder. The weights
are read from ``YOLACT_WEIGHTS`` (a zoo name, a .pth, .onnx or OpenVINO .xml), ``YOLACT_CONF`` is the default
score threshold when CVAT sends none.
"""
import base64
import io
import json
import os

import numpy as np
from PIL import Image

from yolact.integrations.cvat import create, serverless_results


def init_context(context):
    context.logger.info("Init context...  0%")
    conf = os.environ.get("YOLACT_CONF")
    context.user_data.model = create(weights=os.environ.get("YOLACT_WEIGHTS", "yolact_base"),
                                     conf=float(conf) if conf else None, device=os.environ.get("YOLACT_DEVICE", "cpu"))
    context.logger.info("Init context...100%")


def handler(context, event):
    context.logger.info("Run YOLACT")
    data = event.body
    image = Image.open(io.BytesIO(base64.b64decode(data["image"]))).convert("RGB")
    threshold = data.get("threshold")
    results = serverless_results(context.user_data.model, np.asarray(image),
                                 None if threshold is None else float(threshold))
    return context.Response(body=json.dumps(results), headers={}, content_type="application/json", status_code=200)
