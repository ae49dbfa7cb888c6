"""Loopback load: concurrency 32 with zero errors; a soak shows bounded memory (slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench._http_load import run_load
from tests.serving.conftest import ServerProcess, http, start_server

RECORD = {
    "amount": 12.5,
    "channel": "email",
    "is_member": True,
    "created_at": "2024-05-01T13:45:00",
    "review": "great fit, love it",
}
BODY = json.dumps({"records": [RECORD]}).encode()


def _served(server: ServerProcess, model: str) -> float:
    metrics = http("GET", server.url + "/metrics")[2].decode()
    found = re.search(rf'serving_requests_total{{model="{model}",status="200"}} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _hold(server: ServerProcess, seconds: float) -> dict[str, float]:
    before = _served(server, "lightgbm")
    result = run_load(
        server.url + "/v1/predict", BODY, concurrency=32, duration_s=seconds, tool="python"
    )
    assert result["errors"] == 0, result
    assert result["requests"] > 50 * seconds, result  # far below capacity; only a sanity floor
    # Every request the generator counted was answered 200 by the server.
    assert _served(server, "lightgbm") - before >= result["requests"]
    return result


def test_load_concurrency_32_for_10_s_has_zero_errors(server: ServerProcess) -> None:
    _hold(server, 10)


@pytest.mark.slow
def test_load_concurrency_32_for_60_s_has_zero_errors(server: ServerProcess) -> None:
    _hold(server, 60)


@pytest.mark.slow
def test_soak_10_minutes_memory_growth_under_50_mb(export_dir: Path, tmp_path: Path) -> None:
    server = start_server(export_dir, tmp_path)
    try:
        server.wait_ready()
        _hold(server, 30)  # warm-up: allocator pools, caches, histogram children
        start = _rss_mb(server.process.pid)
        for _ in range(10):
            _hold(server, 57)
        growth = _rss_mb(server.process.pid) - start
        print(f"server RSS {start:.1f} MB after warm-up, growth {growth:+.1f} MB in 10 minutes")
        assert growth < 50, f"RSS grew {growth:.1f} MB over 10 minutes"
    finally:
        assert server.terminate() == 0
