"""Settings, metrics exposition and batching, without a server."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.batching import Batcher, Overloaded
from serving.contract import ContractError, load_contract, with_int8_text
from serving.settings import Settings, parse_settings
from serving.telemetry import Telemetry


def test_flags_beat_env_beat_defaults() -> None:
    env = {"SERVING_PORT": "9001", "SERVING_MAX_RECORDS": "7", "SERVING_ACCESS_LOG": "yes"}
    settings = parse_settings(["--port", "9002", "--models", "elsewhere"], env)
    assert settings.port == 9002 and settings.max_records == 7 and settings.access_log is True
    assert settings.models_dir == Path("elsewhere")
    assert parse_settings([], {}) == Settings()
    assert parse_settings(["--text-int8"], {}).text_int8 is True
    assert parse_settings(["--text-int8", "false"], {"SERVING_TEXT_INT8": "1"}).text_int8 is False
    assert Settings().host == "127.0.0.1" and Settings().port == 8000


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "x"],
        ["--max-records", "0"],
        ["--access-log", "maybe"],
        ["--log-level", "LOUD"],
        ["--intra-op-threads", str((os.cpu_count() or 1) + 1)],
    ],
)
def test_bad_settings_exit_with_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_settings(argv, {})
    assert exc.value.code == 2
    assert "python -m serving: error:" in capsys.readouterr().err


def test_metrics_exposition_parses_with_counts_and_buckets() -> None:
    telemetry = Telemetry()
    for seconds in (0.0004, 0.003, 0.003, 2.0):
        telemetry.observe("lightgbm", 200, seconds)
    telemetry.observe("lightgbm", 422, 0.0001)
    telemetry.batch_size["lightgbm"].observe(32)
    telemetry.in_flight = 3
    families = {f.name: f for f in text_string_to_metric_families(telemetry.render().decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    ok = (("model", "lightgbm"), ("status", "200"))
    assert samples[("serving_requests_total", ok)] == 4
    assert samples[("serving_request_duration_seconds_bucket", (("le", "0.005"), *ok))] == 3
    assert samples[("serving_request_duration_seconds_count", ok)] == 4
    assert samples[("serving_request_duration_seconds_sum", ok)] == pytest.approx(2.0064)
    assert (
        samples[("serving_batch_size_records_bucket", (("le", "32.0"), ("model", "lightgbm")))] == 1
    )
    assert samples[("serving_requests_in_flight", ())] == 3


def test_batcher_groups_concurrent_requests_and_keeps_order() -> None:
    sizes: list[int] = []

    def predict(records: list[dict[str, Any]]) -> np.ndarray:
        sizes.append(len(records))
        return np.array([[r["x"], -r["x"]] for r in records], dtype=float)

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(
                predict, max_batch_size=8, max_wait_s=0.05, max_queue_records=12, executor=pool
            )
            batcher.start()
            results = await asyncio.gather(
                *(batcher.submit([{"x": i}, {"x": i + 0.5}], 5) for i in range(6))
            )
            for i, proba in enumerate(results):
                assert proba[:, 0].tolist() == [i, i + 0.5]
            assert sizes == [8, 4]  # whole requests only, at most max_batch_size records
            with pytest.raises(Overloaded):
                await asyncio.gather(*(batcher.submit([{"x": 0}] * 5, 5) for _ in range(3)))
            await batcher.stop()

    asyncio.run(scenario())


def test_int8_request_without_a_quantized_model_is_refused(export_dir: Path) -> None:
    contract = load_contract(export_dir)
    plain = replace(contract, raw={k: v for k, v in contract.raw.items() if k != "quantized"})
    with pytest.raises(ContractError, match=r"quantized\.text_model"):
        with_int8_text(plain)
    int8 = with_int8_text(contract)
    assert int8.models["text_model"].file == "text_model.int8.onnx"
    assert int8.models["baseline"] == contract.models["baseline"]
