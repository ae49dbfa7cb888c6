"""Fixtures for the serving tests: exported model directories, a running server, an app client.

The model directories (see fixtures.py) take ~10 s each to build, so they are cached in pytest's
cache directory (the session's temporary directory when the cache is disabled) under a key made
of the fixture code and the library versions; every test session copies them into its own
temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TASKS = ("binary", "multiclass", "regression")


def _cache_key() -> str:
    digest = hashlib.sha256((HERE / "fixtures.py").read_bytes())
    for module in ("schemas.py", "features.py", "text_input.py"):
        digest.update((ROOT / "serving" / module).read_bytes())
    for package in ("scikit-learn", "skl2onnx", "onnx", "tokenizers", "numpy"):
        digest.update(metadata.version(package).encode())
    return digest.hexdigest()[:16]


def _models(request: pytest.FixtureRequest, factory: pytest.TempPathFactory, task: str) -> Path:
    kept = getattr(request.config, "cache", None)
    root = Path(kept.mkdir("serving-models")) if kept else factory.getbasetemp() / "serving-models"
    cache = root / _cache_key() / task
    if not (cache / "export" / "contract.json").is_file():
        from tests.serving.fixtures import build_apart as build

        shutil.rmtree(cache, ignore_errors=True)
        reference = build(cache / "export", task)
        (cache / "reference.json").write_text(json.dumps(reference))
    target = factory.mktemp(task)
    shutil.copytree(cache / "export", target / "export")
    shutil.copy(cache / "reference.json", target / "reference.json")
    return target / "export"


@pytest.fixture(scope="session")
def export_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary task's export directory: baseline (champion), forest and text_model."""
    return _models(request, tmp_path_factory, "binary")


@pytest.fixture(scope="session")
def multiclass_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _models(request, tmp_path_factory, "multiclass")


@pytest.fixture(scope="session")
def regression_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _models(request, tmp_path_factory, "regression")


def reference_of(models: Path) -> dict[str, Any]:
    """Offline predictions of the parity records: {"records": [...], "<model>": [...]}."""
    result: dict[str, Any] = json.loads((models.parent / "reference.json").read_text())
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with the standard library: (status, headers, body), 4xx/5xx included."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def post_json(url: str, payload: Any, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """POST a JSON payload; decode the JSON answer."""
    status, headers, body = http(
        "POST", url, json.dumps(payload).encode(), {"content-type": "application/json"}, timeout
    )
    return status, headers, json.loads(body)


@dataclass
class ServerProcess:
    """`python -m serving` (or an audited launcher) in a subprocess on a free loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if http("GET", self.url + "/health/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (the process is killed if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_server(
    models: Path,
    log_dir: Path,
    *args: str,
    launcher: Sequence[str] = ("-m", "serving"),
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start a server process on loopback (not yet ready: call wait_ready)."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                *launcher,
                "--models",
                str(models),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process, port, log)


@pytest.fixture(scope="session")
def server(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A ready server on the binary models, shared by the tests that only send requests."""
    proc = start_server(export_dir, tmp_path_factory.mktemp("logs"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()


def app_client(models: Path, **settings: Any) -> Any:
    """A TestClient (lifespan started) on an in-process app; use it as a context manager."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.schemas import load_contract
    from serving.settings import Settings

    app = create_app(Settings(models_dir=models, **settings), load_contract(models))
    return TestClient(app, raise_server_exceptions=False)


def wait_ready(client: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "app never became ready"
        time.sleep(0.02)
