"""Dynamic batching: fair chunks, isolation of bad rows and failures, deadlines, a bounded queue."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from serving.batching import Batcher, Overloaded, Rejected
from serving.scoring import Rejection


class FakeScorer:
    """Rows are numbers; "poison" fails its checks, -1 makes the whole batch fail."""

    name = "fake"

    def __init__(self, seconds: float = 0.0) -> None:
        self.batches: list[list[float]] = []
        self.seconds = seconds

    def check(self, raw: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[Rejection]]:
        values = list(raw["x"])
        bad = [Rejection(i, "x", "poison") for i, v in enumerate(values) if v == "poison"]
        return {"x": np.array([0.0 if v == "poison" else v for v in values])}, bad

    def score(self, typed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(typed["x"].tolist())
        time.sleep(self.seconds)
        if (typed["x"] == -1).any():
            raise RuntimeError("boom")
        return {"value": typed["x"] * 2}


def batcher(scorer: FakeScorer, pool: ThreadPoolExecutor, **options: Any) -> Batcher:
    settings: dict[str, Any] = {
        "max_batch_size": 4,
        "max_wait_s": 0.0,
        "max_queue_records": 64,
        "inline_max_records": 64,
    } | options
    return Batcher(scorer, executor=pool, **settings)  # type: ignore[arg-type]


def run(scenario: Any) -> None:
    with ThreadPoolExecutor(1) as pool:
        asyncio.run(scenario(pool))


def test_a_large_request_is_cut_and_a_small_one_waits_at_most_one_batch() -> None:
    scorer = FakeScorer()

    async def scenario(pool: ThreadPoolExecutor) -> None:
        b = batcher(scorer, pool)
        b.start()
        big, small = list(range(10)), [100.0]
        out = await asyncio.gather(b.submit({"x": big}, 10, 5), b.submit({"x": small}, 1, 5))
        assert out[0]["value"].tolist() == [2 * v for v in big]
        assert out[1]["value"].tolist() == [200.0]
        await b.stop()

    run(scenario)
    assert [len(batch) for batch in scorer.batches] == [4, 4, 3]
    assert 100.0 in scorer.batches[1]  # behind one chunk of the big request, not all of it


def test_a_bad_row_or_a_failing_request_fails_only_its_own_request() -> None:
    scorer = FakeScorer()

    async def scenario(pool: ThreadPoolExecutor) -> None:
        b = batcher(scorer, pool, max_batch_size=16)
        b.start()
        results = await asyncio.gather(
            b.submit({"x": [1.0, 2.0]}, 2, 5),
            b.submit({"x": [3.0, "poison"]}, 2, 5),
            b.submit({"x": [-1.0]}, 1, 5),
            b.submit({"x": [4.0]}, 1, 5),
            return_exceptions=True,
        )
        assert results[0]["value"].tolist() == [2.0, 4.0]
        assert isinstance(results[1], Rejected) and results[1].rejection.row == 1
        assert isinstance(results[2], RuntimeError)
        assert results[3]["value"].tolist() == [8.0]
        await b.stop()

    run(scenario)
    # One batch without the rejected request; it failed, so each request was scored alone.
    assert scorer.batches == [[1.0, 2.0, -1.0, 4.0], [1.0, 2.0], [-1.0], [4.0]]


def test_a_request_past_its_deadline_gets_timeout_and_its_rest_is_never_run() -> None:
    scorer = FakeScorer(seconds=0.1)

    async def scenario(pool: ThreadPoolExecutor) -> None:
        b = batcher(scorer, pool, inline_max_records=0)  # batches in the thread
        b.start()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await b.submit({"x": list(range(40))}, 40, 0.15)
        assert time.monotonic() - started < 0.3
        await asyncio.sleep(0.3)
        await b.stop()

    run(scenario)
    assert len(scorer.batches) <= 3  # of 10 chunks


def test_the_queue_is_bounded() -> None:
    scorer = FakeScorer(seconds=0.05)

    async def scenario(pool: ThreadPoolExecutor) -> None:
        b = batcher(scorer, pool, max_queue_records=6, inline_max_records=0)
        b.start()
        results = await asyncio.gather(
            *(b.submit({"x": [1.0, 2.0, 3.0]}, 3, 5) for _ in range(4)), return_exceptions=True
        )
        assert sum(isinstance(r, Overloaded) for r in results) == 2
        assert sum(isinstance(r, dict) for r in results) == 2
        await b.stop()

    run(scenario)
