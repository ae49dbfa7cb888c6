"""The ASGI application: routing, the predict hot path, health, metadata, metrics and docs.

A plain ASGI callable rather than a framework: the predict path is a handful of dict look-ups,
one orjson parse, the hand-written validation and one ONNX Runtime call per batch.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson

from serving.batching import Batcher, BatchStats, Overloaded
from serving.contract import Contract, ContractError
from serving.openapi import build_docs_page, build_openapi
from serving.runtime import Model, load_model, warm_up, warmup_records
from serving.settings import Settings
from serving.telemetry import CONTENT_TYPE as METRICS_TYPE
from serving.telemetry import Telemetry
from serving.validation import RecordValidator, RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("serving")
JSON = b"application/json"
INLINE_MAX_RECORDS = 64  # tabular batches up to this size run on the event loop (~0.3 ms)


class _ClientGone(Exception):
    pass


class App:
    """ASGI app serving one contract's models."""

    def __init__(
        self, settings: Settings, contract: Contract, on_fatal: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.contract = contract
        self.on_fatal = on_fatal or (lambda message: None)
        self.telemetry = Telemetry()
        self.validator = RecordValidator(contract, settings.max_records, settings.max_string_length)
        self.models: dict[str, Model] = {}
        self.batchers: dict[str, Batcher] = {}
        self.ready = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort")
        openapi = build_openapi(contract, settings)
        self._static = {
            "/openapi.json": (JSON, orjson.dumps(openapi)),
            "/docs": (b"text/html; charset=utf-8", build_docs_page(openapi)),
            "/metadata": (JSON, orjson.dumps(contract.raw)),
            "/health/live": (JSON, b'{"status":"live"}'),
        }
        self._loader: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/v1/predict":
            if method == "POST":
                await self._predict(scope, receive, send)
            else:
                await _error(send, RequestError(405, "method_not_allowed", "use POST"))
            return
        if method not in ("GET", "HEAD"):
            known = path in self._static or path in ("/health/ready", "/metrics")
            await _error(
                send,
                RequestError(405, "method_not_allowed", f"use GET for {path}")
                if known
                else RequestError(404, "not_found", f"no route for {path}"),
            )
            return
        if path in self._static:
            content_type, body = self._static[path]
            await _respond(send, 200, body, content_type)
        elif path == "/health/ready":
            if self.ready:
                await _respond(send, 200, b'{"status":"ready"}')
            else:
                await _error(
                    send, RequestError(503, "not_ready", "models are loading"), self._retry_after()
                )
        elif path == "/metrics":
            await _respond(send, 200, self.telemetry.render(), METRICS_TYPE)
        else:
            await _error(send, RequestError(404, "not_found", f"no route for GET {path}"))

    def _retry_after(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.settings.retry_after_s).encode())]

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        self.telemetry.in_flight += 1
        try:
            model, status, payload, headers = await self._answer(scope, receive)
            await _respond(send, status, payload, JSON, headers)
        except _ClientGone:
            return
        finally:
            self.telemetry.in_flight -= 1
        self.telemetry.observe(model, status, time.perf_counter() - start)

    async def _answer(
        self, scope: Scope, receive: Receive
    ) -> tuple[str, int, bytes, list[tuple[bytes, bytes]]]:
        """(model label, status, body, extra headers) for one predict request."""
        model = "-"  # requests rejected before a model is known
        try:
            if not self.ready:
                raise RequestError(503, "not_ready", "models are loading; retry shortly")
            requested, records = self.validator.parse(await self._read_body(scope, receive))
            model = requested or self.contract.champion
            return model, 200, await self._run(model, records), []
        except RequestError as exc:
            return model, exc.status, exc.body(), self._retry_after() if exc.status == 503 else []
        except _ClientGone:
            raise
        except Exception:
            log.exception("predict failed")
            error = RequestError(500, "internal_error", "see the server log")
            return model, 500, error.body(), []

    async def _run(self, model_name: str, records: list[dict[str, Any]]) -> bytes:
        try:
            proba = await self.batchers[model_name].submit(records, self.settings.request_timeout_s)
        except Overloaded:
            raise RequestError(503, "overloaded", "the queue is full; retry shortly") from None
        except TimeoutError:
            raise RequestError(
                504, "timeout", f"no answer within {self.settings.request_timeout_s} s"
            ) from None
        self.telemetry.records[model_name] += len(records)
        return self._render(model_name, records, proba)

    def _render(self, model_name: str, records: list[dict[str, Any]], proba: np.ndarray) -> bytes:
        labels = self.contract.labels
        version = self.contract.models[model_name].version
        id_field = self.contract.id_field
        predictions = []
        for record, row, best in zip(
            records, proba.tolist(), proba.argmax(axis=1).tolist(), strict=True
        ):
            item = {
                "label": labels[best],
                "probabilities": dict(zip(labels, row, strict=True)),
                "model": model_name,
                "version": version,
            }
            if id_field and id_field in record:
                item["id"] = record[id_field]
            predictions.append(item)
        return orjson.dumps({"model": model_name, "version": version, "predictions": predictions})

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        content_type = b""
        limit = self.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length" and value.isdigit() and int(value) > limit:
                raise RequestError(413, "body_too_large", f"the limit is {limit} bytes")
        if content_type.split(b";", 1)[0].strip().lower() != JSON:
            raise RequestError(
                415,
                "unsupported_media_type",
                "send the body as JSON with content-type: application/json",
                "content-type",
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "body_too_large", f"the limit is {limit} bytes")
            if not message.get("more_body") and not chunks:
                return bytes(chunk)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loader = asyncio.get_running_loop().create_task(self._load())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        """Load, verify and warm up every model off the event loop, then turn ready."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            self.models = await loop.run_in_executor(self.executor, self._load_models)
        except ContractError as exc:
            log.error("%s", exc)
            self.on_fatal(str(exc))
            return
        except Exception as exc:  # never stay up and unready because of an unexpected error
            log.exception("loading the models failed")
            self.on_fatal(f"loading the models failed: {exc!r}")
            return
        for name, model in self.models.items():
            text = model.kind == "text"
            stats = BatchStats(
                on_batch=self.telemetry.batch_size[name].observe,
                on_queue_time=self.telemetry.queue_time[name].observe,
            )
            wait_ms = self.settings.max_wait_ms if text else self.settings.tabular_max_wait_ms
            self.batchers[name] = Batcher(
                model.predict,
                max_batch_size=self.settings.max_batch_size,
                max_wait_s=wait_ms / 1000,
                max_queue_records=self.settings.max_queue_records,
                executor=self.executor,
                inline_max_records=0 if text else INLINE_MAX_RECORDS,
                stats=stats,
            )
            self.batchers[name].start()
        # Everything loaded so far lives until exit: moving it out of the collector's view turns
        # full collections (~15 ms pauses that stall every request in flight) into no-ops.
        gc.collect()
        gc.freeze()
        self.ready = True
        self.telemetry.ready = 1
        log.info(
            "ready: %s loaded, verified and warmed up in %.1f s (champion %s)",
            ", ".join(sorted(self.models)),
            time.perf_counter() - started,
            self.contract.champion,
        )

    def _load_models(self) -> dict[str, Model]:
        records = warmup_records(self.contract)
        models: dict[str, Model] = {}
        for name, spec in self.contract.models.items():
            model = load_model(self.contract, spec, self.settings.ort_threads)
            warm_up(model, records, n_classes=len(self.contract.labels))
            models[name] = model
        return models

    async def _shutdown(self) -> None:
        self.ready = False
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        for batcher in self.batchers.values():
            await batcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, error: RequestError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(send, error.status, error.body(), JSON, headers)
