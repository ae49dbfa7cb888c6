"""HTTP plumbing: how request bodies are read, and how every error is answered.

Errors: every error the app answers is `{"error": {"code", "message", "field"}}` with a 4xx/5xx
status. `ApiError` is raised by our own code; the handlers installed by `install_handlers` turn
it, FastAPI's validation errors, Starlette's 404/405 and anything unexpected into that shape.

Bodies: FastAPI's own body reading is kept; `json_route` swaps in a `Request` whose `body()`
stops at `max_body_bytes` (413) and whose `json()` parses with orjson (strict: no NaN, no lone
surrogates, no invalid UTF-8, at most 1024 levels deep) and says exactly what is wrong when it
cannot. Duplicate keys in an object: the last value wins, as in FastAPI's and pydantic's own
parsing and most JSON parsers (RFC 8259 leaves it to the receiver).

Open Inference Protocol requests may use its binary tensor extension (the
`Inference-Header-Content-Length` header: a JSON head, then raw tensors); `json()` turns those
tensors into `data` lists, so the same pydantic model validates both forms.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

# Codes of HTTPExceptions raised by FastAPI or Starlette (ours are ApiErrors with their own).
CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}
BINARY_HEADER = "inference-header-content-length"
BINARY_DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
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
    """Every 4xx and 5xx answer (documentation: answers are rendered by `error_response`)."""

    error: Error


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message, "field": field}})
    return Response(body, status, headers, media_type="application/json")


def field_path(loc: Sequence[Any]) -> str | None:
    """`("body", "records", 0, "amount")` → `records[0].amount`."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    if len(parts) > 3 and parts[0] == "records":
        parts = parts[:3]  # what follows a record's field names a union member, not a place
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or None


def install_handlers(app: FastAPI, on_error: Callable[[Request, int, str | None], None]) -> None:
    """Register the handlers; `on_error(request, status, model)` counts errors in the metrics."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        on_error(request, exc.status_code, getattr(exc, "model", None))
        code = exc.code if isinstance(exc, ApiError) else CODES.get(exc.status_code, "error")
        field = exc.field if isinstance(exc, ApiError) else None
        message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "")
        if exc.status_code == 404 and not isinstance(exc, ApiError):
            message = f"no route for {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message, field, exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        on_error(request, 422, None)
        errors = exc.errors()
        if not errors:
            return error_response(422, "invalid", "the request is not valid")
        first = errors[0]  # never repr `input`: it may be nested too deep to print
        field = field_path(first.get("loc", ()))
        if first.get("type") == "missing" and field is None:
            return error_response(422, "missing", "the request needs a JSON body")
        return error_response(422, str(first.get("type", "invalid")), str(first["msg"]), field)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises the exception after this answer, so uvicorn logs its traceback.
        on_error(request, 500, None)
        return error_response(500, "internal_error", "see the server log")

    app.add_exception_handler(HTTPException, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, unexpected)


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; ApiError 400 naming the problem and where it is."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        rest = body[exc.pos : exc.pos + 4]
        if rest.startswith((b"NaN", b"Inf", b"-Inf")):
            code, message = (
                "non_finite_number",
                f"NaN and Infinity are not JSON ({where}); send null for a missing value",
            )
        elif exc.msg.startswith("number is infinity"):
            code, message = (
                "number_out_of_range",
                f"the number at {where} is too large (beyond ±1.8e308, the float64 range)",
            )
        elif "depth limit" in exc.msg:
            code, message = "too_deep", "the JSON is nested deeper than 1024 levels"
        elif "UTF-8" in exc.msg or "surrogate" in exc.msg:
            code, message = "invalid_utf8", f"the body is not valid UTF-8 text ({where})"
        else:
            code, message = "invalid_json", f"the body is not valid JSON: {exc.msg} ({where})"
        raise ApiError(400, code, message) from None


def decode_binary(body: bytes, header_length: str) -> Any:
    """An Open Inference Protocol request in the binary tensor extension, as plain JSON."""
    size = int(header_length) if header_length.isdigit() else -1
    if not 0 <= size <= len(body):
        raise ApiError(
            400,
            "invalid_binary",
            f"Inference-Header-Content-Length {header_length!r} "
            f"does not fit the {len(body)}-byte body",
            "inference-header-content-length",
        )
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
            raise ApiError(
                400,
                "invalid_binary",
                f"binary_data_size {length!r} does not fit the body",
                f"inputs.{name}",
            )
        tensor["data"] = _tensor_values(
            body[offset : offset + length], tensor.get("datatype"), name
        )
        offset += length
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
    if len(raw) % np.dtype(dtype).itemsize:
        raise bad(f"{len(raw)} bytes is not a whole number of {datatype} elements")
    values: list[Any] = np.frombuffer(raw, dtype).tolist()
    return values


def _check_content_type(headers: list[tuple[bytes, bytes]], required: bool) -> None:
    content_type = None
    for name, value in headers:  # the raw ASGI headers: cheaper than building a Headers
        if name == b"content-type":
            content_type = value.split(b";", 1)[0].strip().lower()
        elif name == b"content-encoding" and value.strip().lower() != b"identity":
            raise ApiError(
                415,
                "unsupported_media_type",
                "compressed bodies are not accepted",
                "content-encoding",
            )
        elif name == BINARY_HEADER.encode():
            required = False
    if content_type != b"application/json" and (content_type is not None or required):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with content-type: application/json",
            "content-type",
        )


def _too_large(max_body_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the limit is {max_body_bytes} bytes")


def json_route(max_body_bytes: int, content_type_required: bool = True) -> type[APIRoute]:
    """A route class whose requests read bodies as described above."""

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
            has_body = self.body_field is not None

            async def route(request: Request) -> Response:
                if has_body:
                    _check_content_type(request.scope["headers"], content_type_required)
                return await handler(LimitedRequest(request.scope, request.receive))

            return route

    return JsonRoute
