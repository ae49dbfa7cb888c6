"""HTTP plumbing: bodies read within a size limit and strictly parsed, errors answered as JSON.

Every error is `{"error": {"code", "message", "field"}}` (codes: docs/serving.md). Duplicate keys
in a JSON object: the last value wins, as in pydantic's own parsing (RFC 8259 leaves it open).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Coroutine, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

BINARY_HEADER = "inference-header-content-length"
# Open Inference Protocol datatypes of fixed width → numpy, little-endian (BYTES: length-prefixed).
BINARY_DTYPES = {"BOOL": np.dtype("?")} | {
    f"{kind}{bits}": np.dtype(f"<{kind[0].lower()}{bits // 8}")
    for kind, widths in (("UINT", (8, 16, 32, 64)), ("INT", (8, 16, 32, 64)), ("FP", (16, 32, 64)))
    for bits in widths
}


class ApiError(HTTPException):
    """A client or server error with a stable code and the field it is about."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code
        self.field = field
        self.model: str | None = None  # the model a predict request was for, for the metrics


class Error(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. missing, not_found")
    message: str
    field: str | None = Field(description="where: records[0].amount, model, content-type …")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer (documentation: answers are rendered by `_answer`)."""

    error: Error


def _answer(error: ApiError) -> Response:
    body = {"error": {"code": error.code, "message": error.detail, "field": error.field}}
    return Response(orjson.dumps(body), error.status_code, error.headers, "application/json")


def field_path(loc: Sequence[Any]) -> str | None:
    """`("body", "records", 0, "amount")` → `records[0].amount`."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    if len(parts) > 3 and parts[0] == "records":
        parts = parts[:3]  # what follows a record's field names a union member, not a place
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return path.removeprefix(".") or None


def install_handlers(app: FastAPI, on_error: Callable[[Request, int, str | None], None]) -> None:
    """Register the handlers; `on_error(request, status, model)` counts errors in the metrics."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        on_error(request, exc.status_code, getattr(exc, "model", None))
        if not isinstance(exc, ApiError):  # FastAPI's or Starlette's: code = status phrase
            try:
                phrase = HTTPStatus(exc.status_code).phrase
            except ValueError:  # a status Python does not name
                phrase = "Error"
            message = exc.detail if isinstance(exc.detail, str) else phrase
            if exc.status_code == 404:
                message = f"no route for {request.method} {request.url.path}"
            code = phrase.lower().replace(" ", "_")  # e.g. not_found, method_not_allowed
            exc = ApiError(exc.status_code, code, message, None, exc.headers)
        return _answer(exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        on_error(request, 422, None)
        first = exc.errors()[0]  # never repr `input`: it may be nested too deep to print
        field = field_path(first["loc"])
        if first["type"] == "missing" and field is None:
            return _answer(ApiError(422, "missing", "the request needs a JSON body"))
        return _answer(ApiError(422, first["type"], first["msg"], field))

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises the exception after this answer, so uvicorn logs its traceback.
        on_error(request, 500, None)
        return _answer(ApiError(500, "internal_error", "see the server log"))

    app.add_exception_handler(HTTPException, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, unexpected)


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; ApiError 400 naming the problem and where it is."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        code, message = "invalid_json", f"the body is not valid JSON: {exc.msg} ({where})"
        if body[exc.pos : exc.pos + 4].startswith((b"NaN", b"Inf", b"-Inf")):
            code = "non_finite_number"
            message = f"NaN and Infinity are not JSON ({where}); send null for a missing value"
        elif exc.msg.startswith("number is infinity"):
            code = "number_out_of_range"
            message = f"the number at {where} is too large (beyond ±1.8e308, the float64 range)"
        elif "depth limit" in exc.msg:
            code, message = "too_deep", "the JSON is nested deeper than 1024 levels"
        elif "UTF-8" in exc.msg or "surrogate" in exc.msg:
            code, message = "invalid_utf8", f"the body is not valid UTF-8 text ({where})"
        raise ApiError(400, code, message) from None


def decode_binary(body: bytes, header_length: str) -> Any:
    """An Open Inference Protocol request in the binary tensor extension, as plain JSON."""
    size = int(header_length) if header_length.isdigit() else -1
    if not 0 <= size <= len(body):
        message = f"Inference-Header-Content-Length {header_length!r} does not fit the body"
        raise ApiError(400, "invalid_binary", message, BINARY_HEADER)
    request = decode_json(body[:size])
    offset = size
    inputs = request.get("inputs") if isinstance(request, dict) else None
    for tensor in inputs if isinstance(inputs, list) else []:
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        length = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if length is None:
            continue
        name = str(tensor.get("name"))
        if type(length) is not int or not 0 <= length <= len(body) - offset:
            message = f"binary_data_size {length!r} does not fit the body"
            raise ApiError(400, "invalid_binary", message, f"inputs.{name}")
        raw, offset = body[offset : offset + length], offset + length
        tensor["data"] = _tensor_values(raw, tensor.get("datatype"), name)
    if offset != len(body):
        raise ApiError(400, "invalid_binary", f"{len(body) - offset} bytes after the last tensor")
    return request


def _tensor_values(raw: bytes, datatype: Any, name: str) -> list[Any]:
    def bad(why: str) -> ApiError:
        return ApiError(400, "invalid_binary", f"binary data of {name}: {why}", f"inputs.{name}")

    if datatype == "BYTES":  # each element: 4-byte little-endian length, then the bytes
        texts, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise bad("truncated length prefix")
            (n,) = struct.unpack_from("<I", raw, at)
            if at + 4 + n > len(raw):
                raise bad("element longer than the data")
            try:
                texts.append(raw[at + 4 : at + 4 + n].decode("utf-8"))
            except UnicodeDecodeError:
                raise bad("an element is not valid UTF-8") from None
            at += 4 + n
        return texts
    dtype = BINARY_DTYPES.get(str(datatype))
    if dtype is None:
        raise bad(f"unknown datatype {datatype!r}")
    if len(raw) % dtype.itemsize:
        raise bad(f"{len(raw)} bytes is not a whole number of {datatype} elements")
    values: list[Any] = np.frombuffer(raw, dtype).tolist()
    return values


def _check_content_type(headers: list[tuple[bytes, bytes]], required: bool) -> None:
    content_type = None
    for name, value in headers:  # the raw ASGI headers: cheaper than building a Headers
        if name == b"content-type":
            content_type = value.split(b";", 1)[0].strip().lower()
        elif name == b"content-encoding" and value.strip().lower() != b"identity":
            message, field = "compressed bodies are not accepted", "content-encoding"
            raise ApiError(415, "unsupported_media_type", message, field)
    if content_type != b"application/json" and (content_type is not None or required):
        message = "send the body as JSON with content-type: application/json"
        raise ApiError(415, "unsupported_media_type", message, "content-type")


def _too_large(max_body_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the limit is {max_body_bytes} bytes")


def json_route(max_body_bytes: int) -> type[APIRoute]:
    """A route class: `body()` stops at `max_body_bytes` (413), `json()` is strict orjson (no NaN,
    lone surrogates or invalid UTF-8; 1024 levels deep at most) and reads the Open Inference
    Protocol's binary tensors as `data` lists; no content type is 415 if `strict_content_type`."""

    class LimitedRequest(Request):
        async def body(self) -> bytes:
            if not hasattr(self, "_body"):
                declared = self.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_body_bytes:
                    raise _too_large(max_body_bytes)
                chunks, size = [], 0
                async for chunk in self.stream():  # Starlette's: it raises ClientDisconnect
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise _too_large(max_body_bytes)
                    if chunk:
                        chunks.append(chunk)
                self._body = b"".join(chunks)  # one chunk: the same bytes, not a copy
            return self._body

        async def json(self) -> Any:
            if not hasattr(self, "_json"):
                body = await self.body()
                header = self.headers.get(BINARY_HEADER)
                self._json = decode_binary(body, header) if header else decode_json(body)
            return self._json

    class JsonRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            has_body, required = self.body_field is not None, bool(self.strict_content_type)

            async def route(request: Request) -> Response:
                if has_body:
                    _check_content_type(request.scope["headers"], required)
                return await handler(LimitedRequest(request.scope, request.receive))

            return route

    return JsonRoute
