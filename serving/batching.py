"""Dynamic batching: requests queue up, one task groups them into ONNX Runtime calls.

The queue is bounded in records (never unbounded memory): a full queue raises `Overloaded`,
which the app answers with 503 and Retry-After. Each waiting request has a deadline; one past it
raises `TimeoutError` (504) and is skipped if it has not run yet.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Records = list[dict[str, Any]]


class Overloaded(Exception):
    """The model's queue is full."""


@dataclass
class _Item:
    records: Records
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Observers for batch sizes and queue time (wired to Prometheus by the app)."""

    on_batch: Callable[[int], None] = lambda size: None
    on_queue_time: Callable[[float], None] = lambda seconds: None


class Batcher:
    """Groups queued requests into batches of at most `max_batch_size` records."""

    def __init__(
        self,
        predict: Callable[[Records], np.ndarray],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue_records: int,
        executor: Executor,
        inline_max_records: int = 0,
        stats: BatchStats | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue_records = max_queue_records
        self.executor = executor
        # Batches up to this size run on the event loop itself: for microsecond-scale models a
        # thread hand-off costs more than the model; bigger batches go to the executor thread.
        self.inline_max_records = inline_max_records
        self.stats = stats or BatchStats()
        self._queue: deque[_Item] = deque()
        self._queued_records = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the batching task (after the server has drained its requests)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def submit(self, records: Records, timeout_s: float) -> np.ndarray:
        """Queue records and wait for their probabilities; Overloaded / TimeoutError otherwise."""
        if self._queued_records + len(records) > self.max_queue_records:
            raise Overloaded
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append(_Item(records, future))
        self._queued_records += len(records)
        self._wakeup.set()
        # A timer handle is cheaper per request than asyncio.wait_for's wrapper.
        timer = loop.call_later(timeout_s, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        while self._queue and size < self.max_batch_size:
            item = self._queue[0]
            if batch and size + len(item.records) > self.max_batch_size:
                break
            self._queue.popleft()
            self._queued_records -= len(item.records)
            if item.future.done():  # timed out (or the client went away) while queued
                continue
            batch.append(item)
            size += len(item.records)
        return batch

    async def _fill(self) -> None:
        """Wait up to max_wait for more requests, unless a full batch is already queued."""
        deadline = time.perf_counter() + self.max_wait_s
        while self._queued_records < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Let the requests that arrived in this loop iteration enqueue first.
            await asyncio.sleep(0)
            if self.max_wait_s > 0:
                await self._fill()
            batch = self._take()
            if not batch:
                continue
            records = [r for item in batch for r in item.records]
            now = time.perf_counter()
            for item in batch:
                self.stats.on_queue_time(now - item.enqueued)
            self.stats.on_batch(len(records))
            try:
                if len(records) <= self.inline_max_records:
                    proba = self.predict(records)
                else:
                    proba = await loop.run_in_executor(self.executor, self.predict, records)
            except Exception as exc:  # one bad batch fails its requests, not the batcher
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            _deliver(batch, proba)


def _deliver(batch: list[_Item], proba: np.ndarray) -> None:
    start = 0
    for item in batch:
        end = start + len(item.records)
        if not item.future.done():
            item.future.set_result(proba[start:end])
        start = end


def _expire(future: asyncio.Future[np.ndarray]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
