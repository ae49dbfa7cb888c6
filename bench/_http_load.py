"""Closed-loop HTTP load generators for loopback benchmarks and load tests.

Two interchangeable back ends, each run as a *separate process* so that the generator and the
server each get their own core:

- `wrk` (C, from the Debian package `wrk`) when it is installed — the lighter of the two;
- a Python one (uvloop + raw keep-alive HTTP/1.1 over asyncio streams), always available.

Both report the same JSON: requests, errors (non-2xx or socket errors), rps, p50/p99 in ms.
BODY_FILE holds one request body per line; with several lines the clients cycle through them.

    python bench/_http_load.py URL BODY_FILE --concurrency 32 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for line in io.lines("%(body)s") do bodies[#bodies + 1] = line end
if #bodies == 1 then
  wrk.body = bodies[1]  -- one body: wrk reuses one prepared request (the fastest path)
else
  local i = 0
  request = function()
    i = i %% #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format('WRKJSON {"requests": %%d, "errors": %%d, "seconds": %%f, ' ..
    '"p50_ms": %%f, "p99_ms": %%f}\\n', summary.requests, errors, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _requests(url: str, bodies: list[bytes]) -> tuple[str, int, list[bytes]]:
    parts = urlsplit(url)
    out = []
    for body in bodies:
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return parts.hostname or "127.0.0.1", parts.port or 80, out


async def _client(
    host: str,
    port: int,
    requests: list[bytes],
    first: int,
    stop_at: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    sent = first
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(requests[sent % len(requests)])
            sent += 1
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


async def _python_load(
    url: str, bodies: list[bytes], concurrency: int, duration_s: float
) -> dict[str, Any]:
    host, port, requests = _requests(url, bodies)
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _client(host, port, requests, i, started + duration_s, latencies, errors)
            for i in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": elapsed,
        "p50_ms": pick(0.50) if latencies else None,
        "p99_ms": pick(0.99) if latencies else None,
    }


def _finish(result: dict[str, Any], tool: str) -> dict[str, Any]:
    result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    result["tool"] = tool
    return result


def run_load(
    url: str,
    body: bytes | list[bytes],
    *,
    concurrency: int,
    duration_s: float,
    tool: str = "auto",
) -> dict[str, Any]:
    """Drive POST `url` from a separate process with `body` (or cycle through several bodies,
    each one line of JSON); tool is auto | wrk | python."""
    bodies = [body] if isinstance(body, bytes) else body
    if not bodies or any(b"\n" in b for b in bodies):
        raise ValueError("bodies must be one or more single-line payloads")
    use_wrk = tool == "wrk" or (tool == "auto" and shutil.which("wrk") is not None)
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        if use_wrk:
            script = Path(tmp) / "post.lua"
            script.write_text(_WRK_SCRIPT % {"body": body_file})
            out = subprocess.run(
                [
                    "wrk",
                    "-t1",
                    f"-c{concurrency}",
                    f"-d{max(1, round(duration_s))}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(script),
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=duration_s + 60,
                check=True,
            ).stdout
            line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
            return _finish(json.loads(line[8:]), "wrk")
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                url,
                str(body_file),
                "--concurrency",
                str(concurrency),
                "--duration",
                str(duration_s),
            ],
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            check=True,
        ).stdout
        return json.loads(out)


def main() -> None:
    """CLI: the Python generator in this process; prints its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body_file", type=Path)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(
        _python_load(
            args.url, args.body_file.read_bytes().splitlines(), args.concurrency, args.duration
        )
    )
    print(json.dumps(_finish(result, "python")))


if __name__ == "__main__":
    main()
