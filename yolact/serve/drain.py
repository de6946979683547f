"""Graceful drain on SIGTERM and SIGINT: readiness turns 503 at once, new requests get 503 with
Retry-After, accepted requests (queued or running) are answered, then the process exits 0.

Past ``drain_timeout_s`` the requests still waiting for the model (queued, or in the batch being
run) are answered 503 with Retry-After, a warning "drain timeout (N s): K request(s) still
waiting answered 503" is logged, and the exit is still 0. A request past the timeout that is not
waiting for the model (a body still arriving) gets up to two more seconds, then its connection is
closed. A second signal stops at once."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time

log = logging.getLogger("yolact.serve")


def serve_with_drain(app, host: str, port: int, log_level: str = "info", drain_timeout_s: float = 30.0) -> None:
    """Run ``app`` with uvicorn until SIGTERM/SIGINT, drain, and return normally (exit status 0)
    instead of re-raising the signal as uvicorn does. Blocks."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        # uvicorn stops listening and closes idle connections at once on a signal; we first keep
        # serving (readiness and new work: 503) until the accepted requests are answered, so that
        # a load balancer sees "not ready" rather than refused connections mid-request.
        def handle_exit(self, sig, frame):
            state = getattr(app.state, "server", None)
            if state is None or state.draining or self._loop is None:  # second signal: stop now
                return super().handle_exit(sig, frame)
            state.drain()
            self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._drain(sig, state)))

        async def _drain(self, sig, state):
            deadline = time.monotonic() + drain_timeout_s
            while state.in_flight > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if state.in_flight > 0:
                left = state.in_flight
                failed = state.cut_off()  # their handlers answer 503 + Retry-After
                log.warning("drain timeout (%g s): %d request(s) still waiting answered 503 (%d in flight)",
                            drain_timeout_s, failed, left)
                grace = time.monotonic() + 1.0  # for the 503s to be written
                while state.in_flight > 0 and time.monotonic() < grace:
                    await asyncio.sleep(0.02)
            super().handle_exit(sig, None)

        async def serve(self, sockets=None):
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        _loop = None

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:  # restored, and the signal not raised again: a drained server exits 0
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False,
                            timeout_graceful_shutdown=1.0)
    DrainingServer(config).run()
