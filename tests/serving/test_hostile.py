"""Hostile input and faults, against the real server process over loopback HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import ServerProcess, http, post_json, start_server

GOOD = {
    "amount": 12.5,
    "channel": "email",
    "is_member": True,
    "created_at": "2024-05-01T13:45:00",
    "review": "great fit, love it",
}
POISON = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
LIMITS = (
    "--receive-timeout-s",
    "1",
    "--keep-alive-s",
    "1",
    "--max-connections",
    "40",
    "--max-batch-size",
    "8",
)


@pytest.fixture(scope="module")
def limited(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(export_dir, tmp_path_factory.mktemp("hostile"), *LIMITS)
    proc.wait_ready()
    yield proc
    assert proc.terminate() == 0
    assert "Traceback" not in proc.log.read_text()


def _raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send bytes on a new connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            out += b"<still open>"
    return out


def _json_error(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)["error"]


def test_poison_records_fail_alone_in_a_burst(limited: ServerProcess) -> None:
    url = limited.url + "/v1/predict"

    def send(i: int) -> tuple[str, int, Any]:
        if i % 10 == 3:
            record = {**GOOD, "created_at": POISON[i % 2]}
            return "poison", *post_json(url, {"records": [record]})[::2]
        if i % 10 == 7:  # the same poison as an Open Inference Protocol tensor
            tensors = [
                {
                    "name": k,
                    "shape": [1],
                    "datatype": "BYTES"
                    if isinstance(v, str)
                    else "BOOL"
                    if isinstance(v, bool)
                    else "FP64",
                    "data": [POISON[0] if k == "created_at" else v],
                }
                for k, v in GOOD.items()
            ]
            status, _, out = post_json(
                limited.url + "/v2/models/baseline/infer", {"inputs": tensors}
            )
            return "poison", status, out
        return "good", *post_json(url, {"records": [GOOD]})[::2]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(send, range(200)))
    good = [r for r in results if r[0] == "good"]
    poison = [r for r in results if r[0] == "poison"]
    assert {r[1] for r in good} == {200}
    assert len({json.dumps(r[2]["predictions"]) for r in good}) == 1  # identical answers
    assert {r[1] for r in poison} == {422}
    assert all(
        r[2]["error"]["field"].endswith("created_at") or "created_at" in r[2]["error"]["field"]
        for r in poison
    )


def test_slow_and_idle_clients_are_dropped_within_the_timeouts(limited: ServerProcess) -> None:
    port = limited.port
    started = time.monotonic()
    assert _raw(port, b"") == b""  # idle: closed after keep-alive, without an answer
    assert time.monotonic() - started < 2.5
    for partial in (
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b"\r\nContent-Length: 100\r\n\r\n{",
    ):  # body never ends
        started = time.monotonic()
        status, error = _json_error(_raw(port, partial))
        assert (status, error["code"]) == (408, "request_timeout")
        assert time.monotonic() - started < 2.5
    # Many slow clients at once are all dropped, and the server still answers.
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
    for sock in socks:
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")
    time.sleep(2.5)
    for sock in socks:
        sock.settimeout(1)
        assert b"408" in sock.recv(4096)
        assert sock.recv(4096) == b""  # closed
        sock.close()
    assert http("GET", limited.url + "/health/live")[0] == 200


def test_oversized_headers_and_malformed_http_get_json_errors(limited: ServerProcess) -> None:
    big = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    assert _json_error(_raw(limited.port, big))[0] == 431
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(300))
    assert _json_error(_raw(limited.port, many + b"\r\n"))[0] == 431
    status, error = _json_error(_raw(limited.port, b"NOT HTTP AT ALL\r\n\r\n"))
    assert (status, error["code"]) == (400, "bad_request")
    assert http("GET", limited.url + "/health/live")[0] == 200


def test_connections_beyond_the_limit_get_503(limited: ServerProcess) -> None:
    socks = [socket.create_connection(("127.0.0.1", limited.port)) for _ in range(40)]
    try:
        time.sleep(0.2)
        status, error = _json_error(_raw(limited.port, b"GET /health/live HTTP/1.1\r\n\r\n"))
        assert (status, error["code"]) == (503, "too_many_connections")
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert http("GET", limited.url + "/health/live")[0] == 200


def test_a_large_request_does_not_hold_up_a_small_one(limited: ServerProcess) -> None:
    url = limited.url + "/v1/predict"
    big = {"records": [{**GOOD, "review": "great " * 500}] * 256, "model": "text_model"}
    finished: dict[str, tuple[int, float]] = {}

    def send(name: str, payload: dict[str, Any]) -> None:
        finished[name] = (post_json(url, payload)[0], time.monotonic())

    thread = threading.Thread(target=send, args=("big", big))
    thread.start()
    time.sleep(0.05)
    send("small", {"records": [GOOD], "model": "text_model"})
    thread.join(30)
    assert finished["big"][0] == finished["small"][0] == 200
    assert finished["small"][1] < finished["big"][1]


def test_odd_json_gets_accurate_4xx(limited: ServerProcess) -> None:
    url = limited.url + "/v1/predict"
    headers = {"content-type": "application/json"}
    deep = json.dumps({"records": [GOOD]})[:-1] + ', "model": ' + "[" * 1000 + "]" * 1000 + "}"
    status, _, out = http("POST", url, deep.encode(), headers)
    assert status == 422 and json.loads(out)["error"]["field"] == "model"
    digits = json.dumps({"records": [GOOD]}).replace("12.5", "9" * 5000)
    status, _, out = http("POST", url, digits.encode(), headers)
    error = json.loads(out)["error"]
    assert (
        status == 400 and error["code"] == "number_out_of_range" and "UTF-8" not in error["message"]
    )


def test_sigterm_exits_0_within_the_grace_period_with_slow_clients(
    export_dir: Path, tmp_path: Path
) -> None:
    proc = start_server(
        export_dir, tmp_path, "--receive-timeout-s", "60", "--shutdown-grace-s", "2"
    )
    proc.wait_ready()
    slow = [socket.create_connection(("127.0.0.1", proc.port)) for _ in range(20)]
    for i, sock in enumerate(slow):  # half stuck in their headers, half in their bodies
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nContent-Length: 100\r\n"
            + (b"Content-Type: application/json\r\n\r\n{" if i % 2 else b"")
        )
    time.sleep(0.3)
    started = time.monotonic()
    assert proc.terminate(timeout=15) == 0
    assert time.monotonic() - started < 2 + 2  # the grace period, plus the exit itself
    for sock in slow:
        sock.close()
