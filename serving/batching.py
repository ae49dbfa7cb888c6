"""Dynamic batching: requests queue per model; one task scores them in batches.

- Bounded: the queue holds at most `max_queue_records` rows; beyond it `Overloaded` (503).
- Fair: a request larger than `max_batch_size` is cut into chunks, and each batch takes at most
  one chunk per waiting request in turn, so one big request cannot hold up a small one for more
  than a batch.
- Deadlines: a request past its timeout gets `TimeoutError` (504) and its rows not yet scored
  are dropped, never run.
- Isolated: a row that fails its checks fails only its own request (`Rejected`, 422); if a
  batch still fails, each request in it is scored on its own, so an error reaches only the
  request that caused it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.scoring import Outputs, Rejection, Scorer, keep_rows

log = logging.getLogger("serving")
Columns = Mapping[str, Sequence[Any] | np.ndarray]  # raw values per input field
GATHER_ITERATIONS = 8  # at most this many event-loop iterations before a batch starts


class Overloaded(Exception):
    """The model's queue is full."""


class Rejected(Exception):
    """A row of the request cannot be scored; `rejection.row` counts within the request."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(eq=False)
class _Job:
    columns: Columns
    size: int
    future: asyncio.Future[Outputs]
    enqueued: float = field(default_factory=time.perf_counter)
    scheduled: int = 0  # rows handed to a batch so far
    parts: list[Outputs] = field(default_factory=list)  # scored chunks, in row order
    scored: int = 0


Chunk = tuple[_Job, int, int]  # a job's rows [start, stop)


class Batcher:
    """Scores one model's queued requests in batches of at most `max_batch_size` rows."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue_records: int,
        executor: Executor,
        inline_max_records: int,
        on_batch: Callable[[float], None] = lambda size: None,
        on_queue_time: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.scorer = scorer
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue_records = max_queue_records
        self.executor = executor
        # Batches up to this size run on the event loop: for a small tabular graph a thread
        # hand-off costs more than scoring the batch.
        self.inline_max_records = inline_max_records
        self.on_batch = on_batch
        self.on_queue_time = on_queue_time
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # rows not yet handed to a batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(Overloaded())
        self._jobs.clear()

    async def submit(self, columns: Columns, size: int, timeout_s: float) -> Outputs:
        """Queue `size` rows and wait for their outputs (Overloaded, Rejected, TimeoutError)."""
        if self._queued + size > self.max_queue_records:
            raise Overloaded
        loop = asyncio.get_running_loop()
        job = _Job(columns, size, loop.create_future())
        self._jobs.append(job)
        self._queued += size
        self._wakeup.set()
        timer = loop.call_later(timeout_s, _expire, job.future)  # cheaper than wait_for
        try:
            return await job.future
        finally:
            timer.cancel()

    def _take(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        size = 0
        while self._jobs and size < self.max_batch_size:
            job = self._jobs.popleft()
            remaining = job.size - job.scheduled
            if job.future.done():  # timed out, failed or abandoned: its rest is never run
                self._queued -= remaining
                continue
            take = min(remaining, self.max_batch_size - size)
            chunks.append((job, job.scheduled, job.scheduled + take))
            job.scheduled += take
            self._queued -= take
            size += take
            if job.scheduled < job.size:
                self._jobs.append(job)  # the rest waits behind every other request
        return chunks

    async def _fill(self) -> None:
        """Wait up to max_wait for more rows, unless a full batch is already queued."""
        deadline = time.perf_counter() + self.max_wait_s
        while self._queued < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _gather(self) -> None:
        """Let the requests being read join this batch: yield to the event loop until the queue
        stops growing for two iterations (a request takes two, from its bytes to the queue).

        One iteration caught about half the connections at concurrency 32 (batches of ~17 rows);
        this fills batches of ~32 and served single records ~15% faster on 2 cores.
        """
        idle = 0
        for _ in range(GATHER_ITERATIONS):
            queued = self._queued
            await asyncio.sleep(0)
            if self._queued >= self.max_batch_size:
                return
            idle = idle + 1 if self._queued == queued else 0
            if idle == 2:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather()
            if self.max_wait_s > 0:
                await self._fill()
            chunks = self._take()
            if not chunks:
                continue
            now = time.perf_counter()
            for job, start, _ in chunks:
                if start == 0:
                    self.on_queue_time(now - job.enqueued)
            size = sum(stop - start for _, start, stop in chunks)
            self.on_batch(size)
            if size <= self.inline_max_records:
                results = self._score(chunks)
            else:
                results = await loop.run_in_executor(self.executor, self._score, chunks)
            _deliver(chunks, results)

    def _score(self, chunks: list[Chunk]) -> list[Outputs | Exception]:
        """Outputs or the error of each chunk; never raises."""
        try:
            typed, rejected = self.scorer.check(_merge(chunks))
            sizes = [stop - start for _, start, stop in chunks]
            offsets = list(itertools.accumulate(sizes, initial=0))
            results: dict[int, Outputs | Exception] = {}  # chunk → its outputs or error
            for rejection in rejected:  # a request's first rejected row, counted within it
                k = bisect.bisect_right(offsets, rejection.row) - 1
                row = chunks[k][1] + rejection.row - offsets[k]
                results.setdefault(k, Rejected(Rejection(row, rejection.field, rejection.message)))
            good = [k for k in range(len(chunks)) if k not in results]
            if good:
                if len(good) < len(chunks):
                    rows = np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in good])
                    typed = keep_rows(typed, rows)
                outputs = self._outputs(typed, [sizes[k] for k in good])
                results.update(zip(good, outputs, strict=True))
            return [results[k] for k in range(len(chunks))]
        except Exception as exc:  # a bug here must not stop the batcher
            log.exception("batch of %s failed", self.scorer.name)
            return [exc] * len(chunks)

    def _outputs(self, typed: dict[str, np.ndarray], sizes: list[int]) -> list[Outputs | Exception]:
        """The outputs of consecutive requests of `sizes` rows, scored together if they can be."""
        ends = list(itertools.accumulate(sizes, initial=0))
        try:
            outputs = self.scorer.score(typed)
        except Exception as exc:
            if len(sizes) == 1:
                log.exception("scoring %d rows with %s failed", sizes[0], self.scorer.name)
                return [exc]
            # Score each request's rows on their own: only the one that fails gets the error.
            return [
                self._outputs(keep_rows(typed, np.arange(a, b)), [b - a])[0]
                for a, b in itertools.pairwise(ends)
            ]
        return [{k: v[a:b] for k, v in outputs.items()} for a, b in itertools.pairwise(ends)]


def _merge(chunks: list[Chunk]) -> dict[str, Sequence[Any] | np.ndarray]:
    """The chunks' raw columns, concatenated (no copy for a batch of one whole request)."""
    if len(chunks) == 1 and chunks[0][2] - chunks[0][1] == chunks[0][0].size:
        return dict(chunks[0][0].columns)
    merged: dict[str, Sequence[Any] | np.ndarray] = {}
    for name in chunks[0][0].columns:
        # A whole request, the usual case, is not sliced: a slice would be one more copy.
        parts = [
            job.columns[name] if stop - start == job.size else job.columns[name][start:stop]
            for job, start, stop in chunks
        ]
        if all(isinstance(p, np.ndarray) for p in parts):
            merged[name] = np.concatenate(parts)
        else:
            merged[name] = list(itertools.chain.from_iterable(parts))
    return merged


def _deliver(chunks: list[Chunk], results: list[Outputs | Exception]) -> None:
    for (job, start, stop), result in zip(chunks, results, strict=True):
        if job.future.done():
            continue
        if isinstance(result, Exception):
            job.future.set_exception(result)
            continue
        job.parts.append(result)
        job.scored += stop - start
        if job.scored == job.size:
            parts = job.parts
            if len(parts) > 1:
                parts = [{k: np.concatenate([p[k] for p in parts]) for k in parts[0]}]
            job.future.set_result(parts[0])


def _expire(future: asyncio.Future[Outputs]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
