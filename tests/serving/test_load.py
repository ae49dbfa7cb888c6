"""Loopback load: concurrency 32 with zero errors; a soak of large batches keeps memory flat."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.serving.conftest import ServerProcess, http, start_server
from tests.serving.fixtures import parity_records
from tests.serving.loadgen import run_load

ONE = json.dumps({"records": [parity_records()[0]]}).encode()


def _served(server: ServerProcess, model: str) -> float:
    metrics = http("GET", server.url + "/metrics")[2].decode()
    found = re.search(rf'serving_requests_total{{model="{model}",status="200"}} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) / 1024


def _hold(
    server: ServerProcess,
    seconds: float,
    body: bytes = ONE,
    model: str = "baseline",
    concurrency: int = 32,
    floor: float = 1.0,
) -> None:
    before = _served(server, model)
    url = server.url + "/v1/predict"
    result = run_load(url, body, concurrency=concurrency, duration_s=seconds)
    assert result["errors"] == 0, result
    assert result["requests"] >= floor * seconds, result  # far below capacity: a sanity floor
    # Every request the generator counted was answered 200 by the server.
    assert _served(server, model) - before >= result["requests"]


def test_load_concurrency_32_for_3_s_has_zero_errors(server: ServerProcess) -> None:
    _hold(server, 3)


@pytest.mark.slow
def test_load_concurrency_32_for_60_s_has_zero_errors(server: ServerProcess) -> None:
    _hold(server, 60)


@pytest.mark.slow
def test_soak_of_large_batches_keeps_memory_flat(export_dir: Path, tmp_path: Path) -> None:
    """256 long texts per request to the text model, and 256-record tabular requests, for
    minutes (4 at a time: 32 requests of 256 rows would overflow the queue, by design)."""
    # Memory, not latency, is under test: a generous timeout for a busy machine.
    server = start_server(export_dir, tmp_path, "--request-timeout-s", "60")
    texts = [{**r, "review": "great fit, love it " * 50} for r in parity_records()]
    large_text = json.dumps({"records": (texts * 4)[:256], "model": "text_model"}).encode()
    large_tabular = json.dumps({"records": (parity_records() * 4)[:256]}).encode()
    try:
        server.wait_ready()
        for _ in range(2):  # warm-up: allocator pools, ONNX Runtime arenas, metric children
            _hold(server, 15, large_text, "text_model", concurrency=4, floor=0.1)
            _hold(server, 15, large_tabular, concurrency=4, floor=0.1)
        start = _rss_mb(server.process.pid)
        for _ in range(5):
            _hold(server, 30, large_text, "text_model", concurrency=4, floor=0.1)
            _hold(server, 20, large_tabular, concurrency=4, floor=0.1)
            _hold(server, 10)
        growth = _rss_mb(server.process.pid) - start
        print(f"server RSS {start:.1f} MB after warm-up, growth {growth:+.1f} MB")
        assert growth < 50, f"RSS grew {growth:.1f} MB"
    finally:
        assert server.terminate() == 0
