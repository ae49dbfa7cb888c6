"""A closed-loop HTTP load generator for loopback load tests, and a speed comparison.

The generator runs as a separate process (its own core): `concurrency` keep-alive connections,
each sending the next request as soon as the previous answer arrives, for at most `duration_s`
seconds and `max_requests` requests. It reports requests, errors (non-2xx or socket errors),
requests/s and p50/p99 latency in ms.

    python -m tests.serving.loadgen URL BODY_FILE --concurrency 32 --duration 10
    python -m tests.serving.loadgen --compare MODELS_DIR [--duration 5] [--rounds 2]

`--compare` starts the server on MODELS_DIR and, beside it, a bare FastAPI endpoint that
validates the same single record with the same pydantic model and echoes it, both on the
server's uvicorn stack, loads them in turns and prints each one's figures and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


async def _client(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    budget: list[int],
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if head[9:10] != b"2":
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()


async def load(
    url: str, body: bytes, concurrency: int, duration_s: float, max_requests: int
) -> dict[str, Any]:
    """Drive POST `url` with `body` from this process; the figures as a dict."""
    parts = urlsplit(url)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _client(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                request,
                started + duration_s,
                budget,
                latencies,
                errors,
            )
            for _ in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pick(q: float) -> float | None:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else None
        )

    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
    }


def run_load(
    url: str, body: bytes, *, concurrency: int, duration_s: float, max_requests: int = 10**6
) -> dict[str, Any]:
    """`load` in a separate process (so it does not share the server's core)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(body)
        handle.flush()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.serving.loadgen",
                url,
                handle.name,
                "--concurrency",
                str(concurrency),
                "--duration",
                str(duration_s),
                "--max-requests",
                str(max_requests),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            check=True,
        ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def echo_app(models_dir: Path) -> Any:
    """A FastAPI app whose POST /v1/predict validates with the server's own request model and
    echoes the request: the yardstick for what FastAPI and pydantic alone cost."""
    from fastapi import FastAPI

    from serving.payloads import predict_request, record_model
    from serving.schemas import load_contract
    from serving.settings import Settings

    settings = Settings(models_dir=models_dir)
    contract = load_contract(models_dir)
    record, _ = record_model(contract, settings.max_string_length)
    request_model = predict_request(contract, record, settings.max_records)
    app = FastAPI()

    async def echo(body: Any) -> Any:
        return body

    echo.__annotations__ = {"body": request_model, "return": request_model}
    app.post("/v1/predict")(echo)
    return app


def _serve_echo(models_dir: Path, port: int) -> None:
    import uvicorn

    uvicorn.run(
        echo_app(models_dir),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def _start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    from tests.serving.conftest import http

    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http("GET", f"http://127.0.0.1:{port}/openapi.json", timeout=2)[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def compare(models_dir: Path, duration_s: float, rounds: int) -> dict[str, Any]:
    """Single-record /v1/predict against the echo endpoint, concurrency 32, in turns."""
    from tests.serving.conftest import free_port, http
    from tests.serving.fixtures import parity_records

    body = json.dumps({"records": [parity_records()[0]]}).encode()
    ports = {"echo": free_port(), "server": free_port()}
    procs = {
        "echo": _start(
            [
                "-m",
                "tests.serving.loadgen",
                "--echo",
                str(models_dir),
                "--port",
                str(ports["echo"]),
            ],
            ports["echo"],
        ),
        "server": _start(
            [
                "-m",
                "serving",
                "--models",
                str(models_dir),
                "--port",
                str(ports["server"]),
                "--log-level",
                "warning",
            ],
            ports["server"],
        ),
    }
    try:
        while http("GET", f"http://127.0.0.1:{ports['server']}/health/ready")[0] != 200:
            time.sleep(0.1)
        runs: dict[str, list[dict[str, Any]]] = {"echo": [], "server": []}
        for _ in range(rounds):
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/v1/predict"
                run_load(url, body, concurrency=32, duration_s=1)  # warm-up
                cpu = _cpu_seconds(procs[name].pid)
                result = run_load(url, body, concurrency=32, duration_s=duration_s)
                # CPU per request: what requests/s would be on a core of its own.
                result["cpu_us"] = (_cpu_seconds(procs[name].pid) - cpu) / result["requests"] * 1e6
                runs[name].append(result)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    best = {name: max(r, key=lambda x: x["rps"]) for name, r in runs.items()}
    cpu = {name: sorted(x["cpu_us"] for x in r)[len(r) // 2] for name, r in runs.items()}
    return {
        "runs": runs,
        "rps_ratio": best["server"]["rps"] / best["echo"]["rps"],
        "p99_ratio": best["server"]["p99_ms"] / best["echo"]["p99_ms"],
        "cpu_ratio": cpu["echo"] / cpu["server"],
    }


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("body_file", nargs="?", type=Path)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=10**6)
    parser.add_argument("--compare", type=Path, help="models dir: server vs echo endpoint")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--echo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        _serve_echo(args.echo, args.port)
    elif args.compare:
        result = compare(args.compare, args.duration, args.rounds)
        for name, runs in result["runs"].items():
            for r in runs:
                print(
                    f"{name:7s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                    f"p99 {r['p99_ms']:.2f} ms  {r['cpu_us']:.0f} us CPU/request  "
                    f"errors {r['errors']}"
                )
        print(
            f"server/echo: {result['rps_ratio']:.2f}x requests/s (best runs), p99 "
            f"{result['p99_ratio']:.2f}x; {result['cpu_ratio']:.2f}x requests per CPU second"
        )
    else:
        import uvloop

        result = uvloop.run(
            load(
                args.url,
                args.body_file.read_bytes(),
                args.concurrency,
                args.duration,
                args.max_requests,
            )
        )
        print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
