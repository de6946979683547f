"""``yolact serve``: the HTTP API and web page (needs ``pip install 'yolact[serve]'``)."""
from __future__ import annotations

import argparse

from ..errors import YolactError
from .common import add_model_args, add_postprocess_args, load_model, predict_options


def cmd_serve(args) -> int:
    """Run ``yolact serve`` (HTTP API and web page, blocks until stopped); returns exit code 0."""
    from ..serve import require_extra, resolve_api_key, run

    from .. import checks

    checks.in_range("--port", args.port, 1, 65535)  # before anything loads
    if args.metrics_port is not None:
        checks.in_range("--metrics-port", args.metrics_port, 1, 65535)
        if not args.metrics:
            raise YolactError("serve: --metrics-port needs metrics on (drop --no-metrics)")
        if args.metrics_port == args.port:
            raise YolactError("serve: --metrics-port must differ from --port")
    require_extra()
    from ..serve.app import ServeSettings, create_app

    key = resolve_api_key(args.host, args.api_key)
    settings = ServeSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                             timeout_s=args.timeout, max_upload_mb=args.max_upload_mb,
                             max_pixels=int(args.max_megapixels * 1e6), api_key=key)
    model = load_model(args)
    if args.label_studio:  # Label Studio's ML backend protocol instead of the HTTP API
        from ..integrations.label_studio import create_app as label_studio_app
        print(f"Label Studio ML backend for {model.cfg.name} on http://{args.host}:{args.port}/", flush=True)
        run(label_studio_app(model, model_version=str(args.weights or "demo"), conf=getattr(args, "conf", None),
                             api_key=key),
            args.host, args.port, log_level=args.log_level)
        return 0
    _check_served_options(model, predict_options(args))
    info = {"weights": str(args.weights or "demo"), "precision": model.precision, "backend": model.backend,
            "device": str(getattr(model, "device", "cpu"))}
    if args.drain_timeout <= 0:
        raise YolactError("serve: --drain-timeout must be > 0")
    if args.log_format == "json":
        from ..serve.observe import configure_json_access_log
        configure_json_access_log()
    app = create_app(model, settings, info, predict_options=predict_options(args), metrics=args.metrics,
                     metrics_route=args.metrics_port is None)
    if args.metrics_port is not None:
        from ..serve.metrics import serve_metrics
        serve_metrics(app.state.metrics, args.metrics_port, args.host)
    print(f"serving {model.cfg.name} on http://{args.host}:{args.port}/ (API docs: /docs)"
          + ("; API key required" if key else "")
          + (f"; metrics on http://{args.host}:{args.metrics_port}/metrics" if args.metrics_port else ""), flush=True)
    run(app, args.host, args.port, log_level=args.log_level, drain_timeout_s=args.drain_timeout)
    return 0


def _check_served_options(model, options) -> None:
    """Refuse prediction controls the loaded model cannot honour (an unknown class, an iou, max-det
    or slice out of range) before the server starts: otherwise every request would fail."""
    import inspect

    accepted = inspect.signature(model.options).parameters
    model.options(**{k: v for k, v in options.items() if k in accepted})


def add_commands(sub) -> None:
    """Add the ``serve`` verb to ``sub``."""
    p = sub.add_parser("serve", help="HTTP API with micro-batching, and a web page at /")
    add_model_args(p, backend=True)
    p.add_argument("--host", default="127.0.0.1", help="bind address (non-local binds need --api-key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=8, help="requests per forward pass")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    p.add_argument("--max-queue", type=int, default=64, help="queued requests before 503 + Retry-After")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request deadline in seconds")
    p.add_argument("--max-upload-mb", type=float, default=20.0)
    p.add_argument("--max-megapixels", type=float, default=40.0, help="refuse larger images before decoding")
    p.add_argument("--api-key", default=None, help="require this key (X-API-Key or Bearer); or $YOLACT_API_KEY")
    add_postprocess_args(p, None, per_request=True)
    p.add_argument("--label-studio", action="store_true",
                   help="serve Label Studio's ML backend protocol (/health, /setup, /predict; extra label-studio)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--metrics", action=argparse.BooleanOptionalAction, default=True,
                   help="serve Prometheus metrics at /metrics (not guarded by --api-key)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve the metrics on this port of --host instead of the API's /metrics")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds to finish accepted requests after SIGTERM/SIGINT before exiting 0")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one JSON access-log line per request (time, request id, route, status, latency)")
    p.set_defaults(func=cmd_serve)
