"""Every error the app answers is `{"error": {"code", "message", "field"}}` with a 4xx/5xx status.

`ApiError` is raised by our own code; the handlers installed by `install_handlers` turn it,
FastAPI's validation errors, Starlette's 404/405 and anything unexpected into that shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

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
