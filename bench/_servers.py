"""Servers under load for the HTTP benchmarks: each a subprocess on a loopback port, all started
up front (an idle server costs nothing), then every load measured in interleaved rounds so that
all see the same machine; a ratio is the median of its per-round ratios.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _http_load import run_load

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    argv: list[str]  # "{port}" is replaced by the port it gets
    ready_path: str  # polled until it answers 200
    cwd: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)  # added to ours; "{port}" replaced too


@dataclass
class Load:
    name: str
    server: str
    path: str
    bodies: list[bytes]  # cycled through; one body is the fastest path for the load generator
    concurrency: int


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this run: a port is free again once its
    probe socket closes, so MLServer's gRPC or metrics port could otherwise be given again to
    the HTTP server started after it (address already in use)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


@contextmanager
def started(
    servers: dict[str, Server], log: Path, ready_s: float = 180
) -> Iterator[dict[str, str]]:
    """Every server running and ready; yields name → base URL; all stopped at the end."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, open(log, "ab") as out:
        urls = {}
        procs = {}
        for name, server in servers.items():
            port = free_port()
            argv = [a.replace("{port}", str(port)) for a in server.argv]
            extra = {k: v.replace("{port}", str(port)) for k, v in server.env.items()}
            out.write(f"--- {name}: {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                cwd=server.cwd,
                env=os.environ | extra,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            stack.callback(_stop, proc)
            procs[name], urls[name] = proc, f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + ready_s
        for name, server in servers.items():
            _wait_ready(procs[name], urls[name] + server.ready_path, deadline, name, log)
        yield urls


def _wait_ready(
    proc: subprocess.Popen[bytes], url: str, deadline: float, name: str, log: Path
) -> None:
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} not ready at {url}; see {log}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (MLServer has workers), SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(
    loads: Sequence[Load], urls: dict[str, str], seconds: float, rounds: int, tool: str
) -> dict[str, dict[str, Any]]:
    """A 1 s warm-up of every load, then `rounds` rounds of every load for `seconds` each."""
    runs: dict[str, list[dict[str, Any]]] = {load.name: [] for load in loads}
    for load in loads:
        run_load(
            urls[load.server] + load.path,
            load.bodies,
            concurrency=load.concurrency,
            duration_s=1,
            tool=tool,
        )
    for _ in range(rounds):
        for load in loads:
            result = run_load(
                urls[load.server] + load.path,
                load.bodies,
                concurrency=load.concurrency,
                duration_s=seconds,
                tool=tool,
            )
            runs[load.name].append({k: _round(v) for k, v in result.items()})
            print(f"[bench]   {load.name}: {result['rps']:.0f} rps", file=sys.stderr, flush=True)
    return {name: _summary(r) for name, r in runs.items()}


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, every round kept for the record."""
    out: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in rounds), 3)
        for key in ("rps", "p50_ms", "p99_ms")
    }
    out.update(errors=sum(r["errors"] for r in rounds), tool=rounds[0]["tool"], rounds=rounds)
    return out


def paired(results: dict[str, Any], a: str, b: str, key: str) -> float:
    """Median over rounds of a[key] / b[key]: each round's pair saw the same machine load."""
    pairs = zip(results[a]["rounds"], results[b]["rounds"], strict=True)
    return round(statistics.median(x[key] / y[key] for x, y in pairs), 3)


def python_server(*argv: str, cwd: Path = ROOT, ready: str = "/health/ready") -> Server:
    """A Python server run with this interpreter, importing the code under `cwd`."""
    return Server([sys.executable, *argv], ready, cwd, {"PYTHONPATH": str(cwd)})


def write_report(path: Path, report: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    """Write a benchmark's JSON report and print its summary on one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(" | ".join(f"{k} {v}" for k, v in summary.items()))
