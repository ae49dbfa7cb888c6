"""uvicorn's httptools HTTP/1.1 protocol with the limits uvicorn lacks, and JSON protocol errors.

uvicorn has no limit on header size, no deadline for receiving a request and no cap on open
connections (its `limit_concurrency` answers in plain text), and answers malformed HTTP in plain
text. This subclass adds each of them where the bytes arrive, before the app is involved:

- a connection that never starts a request is closed after `keep_alive_s`;
- a request whose head and body do not arrive within `receive_timeout_s` gets 408 and is closed
  (slow clients cannot hold connections, or a graceful shutdown, for long);
- a request line plus headers over `max_header_bytes` gets 431 before it is buffered further;
- connections beyond `max_connections` get 503 and are closed;
- every error answered here has the API's JSON error body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from serving.settings import Settings

LINGER_S = 1.0


class LimitedProtocol(HttpToolsProtocol):
    """Set the class attributes with `protocol_class(settings)`."""

    max_connections = 1000
    receive_timeout_s = 10.0
    idle_timeout_s = 5.0
    max_header_bytes = 16_384

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One timer per connection, moved lazily: a deadline is a number set per request, and
        # the timer, when it fires, re-arms for a later deadline (no timer per request).
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for (the rest of) a request line and headers
        self._head_bytes = 0
        self._discarding = False  # answered with an error: what still arrives is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._reply(503, "too_many_connections", "the server is at its connection limit")
            return
        self._set_deadline(self.idle_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if not self._in_head or self._head_bytes + len(data) <= self.max_header_bytes:
            self._head_bytes += len(data)  # (body bytes of this request too: harmless)
            super().data_received(data)
            return
        # A head that could be too large: feed at most what the limit leaves room for, so an
        # oversized head is refused before it is buffered, whatever its shape.
        while self._in_head and data and not self.transport.is_closing():
            room = self.max_header_bytes + 1 - self._head_bytes
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self._in_head and self._head_bytes > self.max_header_bytes:
                limit = self.max_header_bytes
                self._reply(
                    431, "headers_too_large", f"request line and headers exceed {limit} bytes"
                )
                return
        if data and not self.transport.is_closing():
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._set_deadline(self.receive_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline = None  # received in time; between requests uvicorn's keep-alive rules
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        self._reply(400, "bad_request", f"malformed HTTP request ({msg.rstrip('.')})")

    def _set_deadline(self, seconds: float) -> None:
        self._deadline = self.loop.time() + seconds
        if self._timer is not None and self._timer.when() > self._deadline:
            self._timer.cancel()  # armed for later than the new deadline
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:  # the deadline moved since the timer was set
            self._timer = self.loop.call_at(self._deadline, self._expire)
            return
        if self._in_head and self._head_bytes == 0:
            self.transport.close()  # idle: nothing was asked, nothing to answer
            return
        timeout = self.receive_timeout_s
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


def protocol_class(settings: Settings) -> type[LimitedProtocol]:
    """The protocol with this server's limits (uvicorn instantiates the class itself)."""
    return type(
        "ServingProtocol",
        (LimitedProtocol,),
        {
            "max_connections": settings.max_connections,
            "receive_timeout_s": settings.receive_timeout_s,
            "idle_timeout_s": float(settings.keep_alive_s),
            "max_header_bytes": settings.max_header_bytes,
        },
    )
