"""Start `python -m serving` on exported models for a test and talk to it over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.smoke import pipeline_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    """GET returning (status, body), HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def predict(base: str, records: list[dict[str, Any]], model: str | None = None) -> Any:
    """POST /v1/predict and return the decoded JSON (raises on a non-2xx status)."""
    payload: dict[str, Any] = {"records": records}
    if model:
        payload["model"] = model
    req = urllib.request.Request(
        f"{base}/v1/predict",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@contextmanager
def serving(project: Path, ready_timeout: float = 120) -> Iterator[str]:
    """Serve `project/models/export`; yields the base URL once /health/ready is 200."""
    port = _free_port()
    models = str(project / "models" / "export")
    cmd = [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen([*cmd, "--models", models], cwd=project, env=pipeline_env(project))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if get(f"{base}/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server never became ready (exit code {server.poll()})")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        code = server.wait(timeout=30)
    assert code == 0, f"server exited with {code} on SIGTERM"


def tolerance(project: Path, name: str) -> float:
    """The parity tolerance the model's stage checked its graph with (its own, times the
    calibration's steepest slope)."""
    card = json.loads((project / "models" / "trained" / name / "card.json").read_text())
    return float(max(check["tolerance"] for check in card["parity"]["checks"]))


def score_file(project: Path, source: Path, output: Path, *args: str) -> None:
    """`python -m serving.batch SOURCE OUTPUT ARGS` in the project; fails the test on an error."""
    done = subprocess.run(
        [sys.executable, "-m", "serving.batch", str(source), str(output), *args],
        cwd=project,
        env=pipeline_env(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
