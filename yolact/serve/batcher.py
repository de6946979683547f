"""Dynamic micro-batching: requests that arrive within a short window share one forward pass.

The event loop only queues and wakes; the model runs in one worker thread, so a slow forward
never blocks the server from accepting, refusing (queue full) or timing out requests.
"""
from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional, Sequence

import numpy as np
import torch

from ..model.postprocess import PostProcess
from ..results import Results


class QueueFull(Exception):
    """The bounded queue holds ``max_queue`` requests already."""


class DeadlineExceeded(Exception):
    """The request waited in the queue past its deadline."""


class ShuttingDown(Exception):
    """The server stopped waiting for the model (the drain timeout ran out)."""


@dataclass
class BatchInfo:
    """How one request was served: the batch size, its queue wait and the batch's inference time
    (seconds; reported per request by the server)."""
    size: int          # requests served by the forward pass
    queue_s: float     # this request's wait before its batch started
    inference_s: float  # the batch's forward and post-processing


@dataclass
class _Job:
    image: np.ndarray
    score_threshold: float
    top_k: int
    deadline: float
    enqueued: float
    future: asyncio.Future


def select(res: Results, score_threshold: float, top_k: int) -> Results:
    """The detections a request with its own threshold and top-k would have got: the batch ran
    with the lowest threshold and the largest top-k of its requests, and detections come in
    descending class-score order with independent masks, so filtering afterwards with the
    post-processing's own rule (:meth:`PostProcess.limit`) is exact."""
    keep = PostProcess.limit(torch.from_numpy(np.asarray(res.box_scores, np.float32)),
                             torch.from_numpy(np.asarray(res.labels, np.int64)), score_threshold, top_k)
    return res.subset(keep.numpy())


class MicroBatcher:
    """Gather up to ``max_batch`` requests for up to ``max_wait_s``; run them as one batch.

    ``predict(images, score_threshold, top_k)`` must return one Results per image. Call
    :meth:`start` and :meth:`stop` from the event loop that calls :meth:`submit`.
    """

    def __init__(self, predict: Callable[[Sequence[np.ndarray], float, int], List[Results]],
                 max_batch: int = 8, max_wait_s: float = 0.01, max_queue: int = 64):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_s >= 0")
        self.predict, self.max_batch, self.max_wait_s, self.max_queue = predict, max_batch, max_wait_s, max_queue
        self._jobs: Deque[_Job] = collections.deque()
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self.batches = 0
        self.served = 0
        self._running: List[_Job] = []  # the batch the model thread is working on
        self._closed: Optional[ShuttingDown] = None

    @property
    def queued(self) -> int:
        """The number of requests waiting for a batch."""
        return len(self._jobs)

    async def start(self) -> None:
        """Start the batching task and the single model thread on the running event loop."""
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="yolact-model")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the batching task, fail requests still queued with DeadlineExceeded, and wait for the
        model thread to finish its batch."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(DeadlineExceeded("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def run_alone(self, *args):
        """``predict(*args)`` on the model's own thread, between batches (a warm-up): a runtime
        such as OpenVINO's compiled model takes one inference at a time."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, *args)

    def fail_pending(self) -> int:
        """Fail every request still waiting, queued or in the batch being run, with ShuttingDown,
        and refuse new ones likewise (the drain timeout ran out; the running batch is not
        interrupted, its answer is dropped). Call from the event loop. -> the number failed."""
        self._closed = ShuttingDown("the server is shutting down: the drain timeout ran out before this "
                                    "request was answered")
        failed = 0
        for job in [*self._running, *self._jobs]:
            if not job.future.done():
                job.future.set_exception(self._closed)
                failed += 1
        self._jobs.clear()
        return failed

    def submit(self, image: np.ndarray, score_threshold: float, top_k: int, timeout_s: float) -> asyncio.Future:
        """Queue one image; the future resolves to (Results, BatchInfo). Raises QueueFull, and
        ShuttingDown after :meth:`fail_pending`."""
        if self._task is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self._closed is not None:
            raise self._closed
        if len(self._jobs) >= self.max_queue:
            raise QueueFull(f"{len(self._jobs)} requests are queued (--max-queue {self.max_queue})")
        now = time.monotonic()
        fut = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(image, score_threshold, top_k, now + timeout_s, now, fut))
        self._wake.set()
        return fut

    async def _gather(self) -> List[_Job]:
        """Wait for a first job, then for more until the batch is full or the window closes."""
        while not self._jobs:
            self._wake.clear()
            await self._wake.wait()
        batch = [self._jobs.popleft()]
        window_end = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            if self._jobs:
                batch.append(self._jobs.popleft())
                continue
            left = window_end - time.monotonic()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            now = time.monotonic()
            live = []
            for job in batch:
                if job.future.done():  # the client went away
                    continue
                if now > job.deadline:
                    job.future.set_exception(DeadlineExceeded("the request waited in the queue past its deadline"))
                    continue
                live.append(job)
            if not live:
                continue
            threshold = min(j.score_threshold for j in live)
            top_k = max(j.top_k for j in live)
            t0 = time.perf_counter()
            self._running = live
            try:
                results = await loop.run_in_executor(self._executor, self.predict, [j.image for j in live],
                                                     threshold, top_k)
            except Exception as e:  # the model failed: every request of the batch gets the error
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            finally:
                self._running = []
            infer = time.perf_counter() - t0
            self.batches += 1
            self.served += len(live)
            for job, res in zip(live, results):
                if not job.future.done():
                    info = BatchInfo(size=len(live), queue_s=now - job.enqueued, inference_s=infer)
                    job.future.set_result((select(res, job.score_threshold, job.top_k), info))
