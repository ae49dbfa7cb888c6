"""An MLflow tracking server on a real local PostgreSQL with an artifact store (docs/scaling.md).

Slow: starts PostgreSQL from Debian's packages (apt-get install postgresql) and `mlflow server`
on loopback ports, logs a run with a metric and an artifact over HTTP and reads them back.
Needs psycopg2-binary (pip install psycopg2-binary) for MLflow's PostgreSQL backend.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; as root, run it as the `postgres` user the package made.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout} s")


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a loopback port; yields its SQLAlchemy URI."""
    pytest.importorskip("psycopg2", reason="pip install psycopg2-binary")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql)")
    # Outside pytest's tmp dir: the postgres user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="pg-mlflow-"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "pg.log"), "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True)
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="mlflow", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres(stop), check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_tracking_server_on_postgresql(
    postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = tmp_path / "artifacts"
    port = _free_port()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    log = tmp_path / "mlflow.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [
                mlflow_bin,
                "server",
                "--backend-store-uri",
                # SQLAlchemy's default PostgreSQL driver is psycopg 3; name psycopg2 explicitly.
                postgres.replace("postgresql://", "postgresql+psycopg2://"),
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,  # the child keeps its own copy of the descriptor
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_http(f"{uri}/health", timeout=120, proc=server)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"mlflow server did not start: {exc}\n{log.read_text()[-3000:]}")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("scale-out-check")
        note = tmp_path / "note.txt"
        note.write_text("artifact through the tracking server\n")
        with mlflow.start_run() as run:
            mlflow.log_param("model", "lightgbm")
            mlflow.log_metric("roc_auc", 0.913, step=3)
            mlflow.log_artifact(str(note), artifact_path="notes")
        client = MlflowClient(uri)
        fetched = client.get_run(run.info.run_id)
        assert fetched.data.metrics == {"roc_auc": pytest.approx(0.913)}
        assert fetched.data.params == {"model": "lightgbm"}
        history = client.get_metric_history(run.info.run_id, "roc_auc")
        assert [(m.step, m.value) for m in history] == [(3, pytest.approx(0.913))]
        # Artifacts go through the server (mlflow-artifacts:/) into the artifact store.
        assert fetched.info.artifact_uri.startswith("mlflow-artifacts:")
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="notes/note.txt", dst_path=str(tmp_path / "dl")
        )
        assert Path(local).read_text() == note.read_text()
        assert [p.name for p in artifacts.rglob("note.txt")] == ["note.txt"]
        # The run lives in PostgreSQL, not in a local file.
        import psycopg2

        with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'roc_auc'",
                (run.info.run_id,),
            )
            assert cur.fetchone()[0] == pytest.approx(0.913)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
