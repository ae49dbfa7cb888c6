"""The server as a process: what it imports, start-up failures, SIGTERM drain."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from serving.runtime import ModelFileError, load_model
from serving.schemas import Contract, read_file
from tests.serving.conftest import ROOT, http, post_json, start_server

FORBIDDEN = (
    "torch",
    "transformers",
    "lightning",
    "mlflow",
    "sklearn",
    "pandas",
    "polars",
    "pipeline",
    "skops",
    "joblib",
    "cloudpickle",
    "dill",
    "onnx",
    "lightgbm",
)
RECORD = {
    "amount": 12.5,
    "channel": "email",
    "is_member": True,
    "created_at": "2024-05-01T13:45:00",
    "review": "great fit, love it",
}


def test_server_imports_no_training_code_and_never_unpickles(
    export_dir: Path, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.json"
    proc = start_server(
        export_dir,
        tmp_path,
        launcher=[str(Path(__file__).with_name("audited_server.py"))],
        env={"SERVING_AUDIT_FILE": str(audit)},
    )
    proc.wait_ready()
    for model in ("baseline", "forest", "text_model"):
        status, _, out = post_json(proc.url + "/v1/predict", {"records": [RECORD], "model": model})
        assert status == 200 and out["model"] == model
    for path in ("/metrics", "/metadata", "/openapi.json", "/docs", "/v2/models/baseline"):
        assert http("GET", proc.url + path)[0] == 200
    assert proc.terminate() == 0
    report = json.loads(audit.read_text())
    modules = report["modules"]
    loaded = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert loaded == [], f"the server imported {loaded}"
    # `pickle` itself is in sys.modules: numpy imports it unconditionally, and so do uvicorn's
    # package import and logging.config. It must never be *used*.
    assert report["unpickles"] == []
    assert "onnxruntime" in modules and "tokenizers" in modules and "fastapi" in modules


def test_missing_models_fail_with_one_clear_line_and_a_public_address_warns(
    tmp_path: Path,
) -> None:
    for target, host in ((tmp_path / "nowhere", "127.0.0.1"), (tmp_path, "0.0.0.0")):
        # No directory; a directory without a contract (so nothing is ever bound).
        result = subprocess.run(
            [sys.executable, "-m", "serving", "--models", str(target), "--host", host],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert "fix:" in lines[-1] and str(target) in lines[-1], lines
        warned = [line for line in lines if "without SERVING_API_KEY" in line]
        assert len(lines) == 1 + len(warned) and len(warned) == (host == "0.0.0.0"), lines


def test_a_changed_model_file_stops_the_server_with_status_1(
    export_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "export"
    shutil.copytree(export_dir, models)
    with open(models / "baseline.onnx", "ab") as handle:
        handle.write(b"\0")  # one changed byte
    proc = start_server(models, tmp_path)
    assert proc.process.wait(timeout=60) == 1
    log = proc.log.read_text()
    assert all(text in log for text in ("SHA-256", "baseline.onnx", "fix:")), log[-2000:]


@pytest.mark.parametrize("change", ["tokenizer", "path"])
def test_every_loaded_file_is_verified_and_confined(
    export_dir: Path, tmp_path: Path, change: str
) -> None:
    models = tmp_path / "export"
    shutil.copytree(export_dir, models)
    contract = read_file(models / "contract.json", Contract)
    if change == "tokenizer":
        with open(models / "text_model" / "tokenizer.json", "ab") as handle:
            handle.write(b" ")
        entry, expected = contract.models["text_model"], "SHA-256"
    else:
        shutil.copy(models / "forest.onnx", tmp_path / "outside.onnx")
        entry = contract.models["forest"].model_copy(update={"file": "../outside.onnx"})
        expected = "leaves"
    with pytest.raises(ModelFileError, match=expected):
        load_model(models, entry)


def _in_flight(url: str) -> float:
    metrics = http("GET", url + "/metrics")[2].decode()
    found = re.search(r"^serving_requests_in_flight (\S+)$", metrics, re.M)
    assert found is not None
    return float(found.group(1))


def test_sigterm_lets_requests_in_flight_complete_then_exits_0(
    export_dir: Path, tmp_path: Path
) -> None:
    # The text batcher waits up to 2 s to fill a batch of 16: six requests stay in flight.
    proc = start_server(export_dir, tmp_path, "--max-wait-ms", "2000", "--max-batch-size", "16")
    proc.wait_ready()
    results: list[Any] = []

    def send() -> None:
        results.append(
            post_json(proc.url + "/v1/predict", {"records": [RECORD], "model": "text_model"})
        )

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 1.5
    while _in_flight(proc.url) < 6:  # every request has reached the server
        assert time.monotonic() < deadline, "requests did not reach the server"
        time.sleep(0.02)
    started = time.monotonic()
    assert proc.terminate() == 0
    for thread in threads:
        thread.join(10)
    assert [r[0] for r in results] == [200] * 6
    assert all(r[2]["model"] == "text_model" for r in results)
    assert time.monotonic() - started < 10
    with pytest.raises(OSError):
        http("GET", proc.url + "/health/live", timeout=2)
