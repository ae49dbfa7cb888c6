"""Fixtures for the serving tests: exported models built once, a running server, an ASGI client.

The models (see fixtures.py) take ~15 s to build, so they are cached in pytest's cache directory
under a key made of this folder's fixture code and the library versions; every test session
copies them into its own temporary directory.
"""

from __future__ import annotations

import asyncio
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
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from serving.app import App
from serving.contract import Contract, load_contract
from serving.settings import Settings

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def _cache_key() -> str:
    digest = hashlib.sha256((HERE / "fixtures.py").read_bytes())
    digest.update((ROOT / "serving" / "features.py").read_bytes())
    digest.update((ROOT / "serving" / "text_input.py").read_bytes())
    for package in ("torch", "transformers", "scikit-learn", "lightgbm", "skl2onnx", "tokenizers"):
        digest.update(metadata.version(package).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def export_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models/export-like directory with baseline, lightgbm and text_model (fresh copy)."""
    cache = Path(request.config.cache.mkdir("serving-models")) / _cache_key()
    if not (cache / "export" / "contract.json").is_file():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from tests.serving.fixtures import build

        shutil.rmtree(cache, ignore_errors=True)
        build(cache / "export")
    target = tmp_path_factory.mktemp("models") / "export"
    shutil.copytree(cache / "export", target)
    shutil.copy(cache / "export.reference.json", target.parent / "reference.json")
    return target


@pytest.fixture(scope="session")
def reference(export_dir: Path) -> dict[str, Any]:
    """Offline predictions of the parity records: {"records": [...], "<model>": [[p, ...]]}."""
    result: dict[str, Any] = json.loads((export_dir.parent / "reference.json").read_text())
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
    models: Path, log_dir: Path, *args: str, launcher: Sequence[str] = ("-m", "serving")
) -> ServerProcess:
    """Start a server process (not yet ready: call wait_ready)."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                *launcher,
                "--models-dir",
                str(models),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process, port, log)


@pytest.fixture(scope="session")
def server(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A ready server on the fixture models, shared by the tests that only send requests."""
    proc = start_server(export_dir, tmp_path_factory.mktemp("logs"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()


# --- in-process ASGI calls (no sockets), for deterministic robustness tests -----------------


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: App,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = ((b"content-type", b"application/json"),),
    chunk: int | None = None,
) -> Reply:
    """Send one request straight to the ASGI app; `chunk` splits the body into several messages."""
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    await app(scope, receive, send)
    start, payload = sent[0], sent[1]
    return Reply(start["status"], dict(start["headers"]), payload["body"])


async def start_app(
    models: Path, contract: Contract | None = None, **settings: Any
) -> tuple[App, asyncio.Task[None]]:
    """An App with its lifespan started (models load in the background)."""
    app = App(Settings(models_dir=models, **settings), contract or load_contract(models))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
    app.lifespan_inbox = inbox  # type: ignore[attr-defined]
    return app, task


async def wait_ready(app: App, timeout: float = 30) -> None:
    """Wait until the app reports ready."""
    deadline = time.monotonic() + timeout
    while not app.ready:
        assert time.monotonic() < deadline, "app never became ready"
        await asyncio.sleep(0.01)


async def stop_app(app: App, task: asyncio.Task[None]) -> None:
    """Run the lifespan shutdown."""
    await app.lifespan_inbox.put({"type": "lifespan.shutdown"})  # type: ignore[attr-defined]
    await asyncio.wait_for(task, 10)
