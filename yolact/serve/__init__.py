"""``yolact serve``: an HTTP API with dynamic micro-batching and a web page (the ``serve`` extra).

    from yolact.serve import ServeSettings, create_app, run
    app = create_app(yolact.load("model.pt"), ServeSettings(max_batch=8))
    run(app, host="127.0.0.1", port=8000)
"""
from __future__ import annotations

import ipaddress
import os
from typing import Optional

from ..errors import YolactError

API_KEY_ENV = "YOLACT_API_KEY"


def require_extra() -> None:
    """A one-line error when the ``serve`` extra is not installed."""
    missing = []
    for mod in ("fastapi", "uvicorn", "python_multipart", "fastapi_offline", "prometheus_client"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise YolactError(f"serving needs {', '.join(missing)}: pip install 'yolact[serve]'")


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback IP literals (127.0.0.0/8, ::1); any other name or address is
    treated as reaching beyond this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, api_key: Optional[str]) -> Optional[str]:
    """The key from --api-key or $YOLACT_API_KEY; a non-loopback bind without one is refused."""
    key = api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(host) and not key:
        raise YolactError(f"--host {host} exposes the server beyond this machine: give --api-key KEY "
                          f"or set {API_KEY_ENV}")
    return key


def run(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
        drain_timeout_s: float = 30.0) -> None:
    """Serve ``app`` with uvicorn on ``host``:``port`` until SIGTERM/SIGINT, then drain (see
    :mod:`yolact.serve.drain`) and return (blocks; no Server header). Needs the ``serve`` extra."""
    from .drain import serve_with_drain

    serve_with_drain(app, host, port, log_level, drain_timeout_s)


def __getattr__(name):
    # The FastAPI parts import lazily so that `import yolact.serve` works without the extra.
    if name in ("create_app", "ServeSettings"):
        from . import app
        return getattr(app, name)
    raise AttributeError(name)
