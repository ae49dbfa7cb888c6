"""`python -m serving`: settings → contract → one uvicorn process (uvloop, httptools + limits).

One worker: uvicorn's supervisor starts workers through multiprocessing (which pickles), and ONNX
Runtime threads × workers must fit the cores anyway; scale out with processes behind a balancer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from serving.app import create_app
from serving.schemas import FileError, load_contract
from serving.settings import Settings, parse_settings

log = logging.getLogger("serving")
LINGER_S = 1.0


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol plus the limits it lacks, each answered with a JSON error: idle
    connections close after `keep_alive_s`, 408 after `receive_timeout_s`, 431 over
    `max_header_bytes` (before buffering), 503 over `max_connections` (uvicorn's is plain text)."""

    settings: Settings  # set on a subclass by `main` (uvicorn instantiates the class)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None  # the idle or the receive deadline
        self._in_head = True  # waiting for (the rest of) a request line and headers
        self._head_bytes = 0
        self._discarding = False  # answered with an error: what still arrives is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.settings.max_connections:
            self._reply(503, "too_many_connections", "the server is at its connection limit")
            return
        self._set_deadline(self.settings.keep_alive_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_deadline(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # While a head is arriving, feed at most one byte past the limit, so an oversized head is
        # refused before it is buffered, whatever its shape (body bytes are fed whole).
        limit = self.settings.max_header_bytes
        while data and not self._discarding and not self.transport.is_closing():
            room = limit + 1 - self._head_bytes if self._in_head else len(data)
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self._in_head and self._head_bytes > limit:
                message = f"request line and headers exceed {limit} bytes"
                self._reply(431, "headers_too_large", message)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._set_deadline(self.settings.receive_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._set_deadline(None)  # received in time; between requests uvicorn's keep-alive rules
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        self._reply(400, "bad_request", f"malformed HTTP request ({msg.rstrip('.')})")

    def _set_deadline(self, seconds: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if seconds is None else self.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        if self._in_head and self._head_bytes == 0:
            self.transport.close()  # idle: nothing was asked, nothing to answer
            return
        timeout = self.settings.receive_timeout_s
        self._reply(408, "request_timeout", f"the request did not arrive within {timeout:g} s")

    def _reply(self, status: int, code: str, message: str) -> None:
        """Answer with a JSON error and close, unless a response is already under way."""
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            body = orjson.dumps({"error": {"code": code, "message": message, "field": None}})
            head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
            self.transport.write(STATUS_LINE[status] + head + b"connection: close\r\n\r\n" + body)
        # Lingering close: stop writing but read (and drop) what the client is still sending
        # for a moment; closing at once would reset the connection and could lose the answer.
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean drain, 1 when the models cannot be served."""
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    level = "DEBUG" if settings.log_level == "trace" else settings.log_level.upper()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    if settings.api_key is None and not settings.loopback:
        log.warning(
            "listening on %s without SERVING_API_KEY: anyone who reaches this address can call "
            "predict and metadata; set SERVING_API_KEY to require a bearer token",
            settings.host,
        )
    try:
        contract = load_contract(settings.models_dir)
    except FileError as exc:
        print(f"serving: {exc}", file=sys.stderr)
        return 1
    failures: list[str] = []  # a model that failed to load (the app logs it)

    def fatal(message: str) -> None:
        failures.append(message)
        server.should_exit = True  # called from the app's lifespan, once `server` runs

    config = uvicorn.Config(
        create_app(settings, contract, on_fatal=fatal),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=type("ServingProtocol", (LimitedProtocol,), {"settings": settings}),
        lifespan="on",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
        timeout_keep_alive=settings.keep_alive_s,
        # SIGTERM drains the requests in flight, for at most this long, before the exit.
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    # uvicorn restores the previous handlers after its graceful shutdown and re-raises the signal
    # there; these no-op handlers turn that into a normal return, so a drained shutdown exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: log.info("stopped after signal %d", signum))
    server.run()
    return 1 if failures or not server.started else 0
