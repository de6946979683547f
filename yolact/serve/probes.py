"""Liveness, readiness and drain state of ``yolact serve`` (Kubernetes-style probes).

``/livez`` answers 200 as soon as the process serves HTTP. ``/readyz`` answers 200 only after the
model is loaded and one warm-up prediction has run, and 503 while starting or draining, so a load
balancer sends no traffic to a cold or stopping server.
"""
from __future__ import annotations

import asyncio
import logging

import numpy as np

log = logging.getLogger("yolact.serve")

STARTING, READY, DRAINING = "starting", "ready", "draining"


class ServerState:
    """The server's phase: ``starting`` -> ``ready`` (after warm-up) -> ``draining`` (after SIGTERM
    or SIGINT). Plain attribute writes: the signal handler and the event loop share one thread."""

    def __init__(self):
        self.phase = STARTING
        self.in_flight = 0  # requests other than probes and /metrics being handled (drain waits on them)
        self._cut_off = []

    def on_cut_off(self, fail_waiting) -> None:
        """Register ``fail_waiting() -> int``, called by :meth:`cut_off`."""
        self._cut_off.append(fail_waiting)

    def cut_off(self) -> int:
        """The drain timeout ran out: fail what still waits (each hook answers its requests 503).
        -> the number of requests failed. Call from the event loop."""
        return sum(fail() for fail in self._cut_off)

    @property
    def ready(self) -> bool:
        return self.phase == READY

    @property
    def draining(self) -> bool:
        return self.phase == DRAINING

    def drain(self) -> None:
        if self.phase != DRAINING:
            log.info("draining: readiness is now 503 and new requests get 503")
        self.phase = DRAINING


async def warm_up(predict, state: ServerState, size: int = 64) -> None:
    """Await ``predict([image], score_threshold, top_k)`` once on a black ``size`` x ``size`` uint8
    BGR image (on the model's thread, :meth:`MicroBatcher.run_alone`, never beside a request's
    inference; not counted as a served request), then mark ``state`` ready (unless it is already
    draining). A failure is logged and leaves the server not ready."""
    try:
        await predict([np.zeros((size, size, 3), np.uint8)], 0.99, 1)
    except Exception:  # the server stays up (liveness) but never reports ready
        log.exception("warm-up prediction failed; /readyz stays 503")
        return
    if state.phase == STARTING:
        state.phase = READY


def add_probe_routes(app, state: ServerState) -> None:
    """GET /livez (always 200) and GET /readyz (200 ready, 503 starting or draining)."""
    from fastapi.responses import JSONResponse

    @app.get("/livez", summary="Liveness: 200 while the process serves HTTP")
    async def livez():
        return {"status": "alive"}

    @app.get("/readyz", summary="Readiness: 200 once the model is warm; 503 while starting or draining")
    async def readyz():
        code = 200 if state.ready else 503
        return JSONResponse({"status": state.phase}, status_code=code,
                            headers=None if code == 200 else {"Retry-After": "1"})


def start_warm_up(predict, state: ServerState) -> "asyncio.Task":
    return asyncio.get_running_loop().create_task(warm_up(predict, state))
