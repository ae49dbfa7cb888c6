"""Hand-written request validation against the contract's input schema.

Every problem becomes a `RequestError` that the app turns into a 4xx with
`{"error": {"code", "message", "field"}}`. Hand-written because it runs on every request: a
few dict look-ups per field instead of a model-validation framework.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from serving.contract import Contract, FieldSpec

FLOAT32_MAX = 3.4028234663852886e38  # tabular inputs are float32: larger values would become inf
ID_MAX_LENGTH = 256  # characters of a string id (ids are echoed back, never used by the model)


class RequestError(Exception):
    """A client error: HTTP status, a stable machine-readable code, a message and the field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> bytes:
        """The JSON error body."""
        return orjson.dumps(
            {"error": {"code": self.code, "message": self.message, "field": self.field}}
        )


Checker = Callable[[Any, str], None]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__.replace("str", "string")


def _wrong(where: str, expected: str, value: Any) -> RequestError:
    return RequestError(422, "wrong_type", f"expected {expected}, got {_type_name(value)}", where)


def _check_number(value: Any, where: str) -> None:
    if type(value) is float or type(value) is int:  # bool is an int subclass: excluded on purpose
        if not -FLOAT32_MAX <= value <= FLOAT32_MAX:
            raise RequestError(422, "out_of_range", "number outside the float32 range", where)
        return
    raise _wrong(where, "a number", value)


def _check_boolean(value: Any, where: str) -> None:
    if type(value) is bool:
        return
    # 0/1 are common spellings of booleans in JSON (and how the processed splits store them).
    if (type(value) is int or type(value) is float) and value in (0, 1):
        return
    raise _wrong(where, "true or false (or 0/1)", value)


def _string_checker(max_length: int | None) -> Checker:
    def check(value: Any, where: str) -> None:
        if type(value) is not str:
            raise _wrong(where, "a string", value)
        if max_length is not None and len(value) > max_length:
            raise RequestError(
                422, "string_too_long", f"{len(value)} characters, the limit is {max_length}", where
            )

    return check


def _check_datetime(value: Any, where: str) -> None:
    if type(value) is not str:
        raise _wrong(where, "an ISO 8601 date-time string", value)
    try:
        if len(value) > 64:
            raise ValueError
        datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(
            422,
            "invalid_datetime",
            f"expected an ISO 8601 date-time like 2024-05-01T13:45:00, got {value[:40]!r}",
            where,
        ) from None


def _checker(spec: FieldSpec) -> Checker:
    if spec.type == "number":
        return _check_number
    if spec.type == "boolean":
        return _check_boolean
    if spec.type == "datetime":
        return _check_datetime
    return _string_checker(spec.max_length)


class RecordValidator:
    """Validates predict request bodies for one contract."""

    def __init__(self, contract: Contract, max_records: int, max_string_length: int) -> None:
        self.max_records = max_records
        self.id_field = contract.id_field
        self.models = set(contract.models)
        self.fields = [
            (s.name, s.nullable, _checker(_limited(s, max_string_length)))
            for s in contract.input_schema
        ]
        self.names = frozenset(s.name for s in contract.input_schema)
        self.names_with_id = self.names | {self.id_field} if self.id_field else self.names

    def parse(self, body: bytes) -> tuple[str | None, list[dict[str, Any]]]:
        """Decode and validate a predict body; return (model or None, records)."""
        payload = decode_json(body)
        if type(payload) is not dict:
            raise RequestError(422, "invalid_body", "expected a JSON object with 'records'")
        extra = payload.keys() - {"records", "model"}
        if extra:
            raise RequestError(422, "unknown_field", "unknown top-level key", sorted(extra)[0])
        model = payload.get("model")
        if model is not None and (type(model) is not str or model not in self.models):
            raise RequestError(
                404,
                "unknown_model",
                f"unknown model {str(model)[:64]!r}; available: {sorted(self.models)}",
                "model",
            )
        records = payload.get("records")
        if type(records) is not list:
            raise RequestError(
                422,
                "missing_field" if records is None else "wrong_type",
                "expected 'records': a list of objects",
                "records",
            )
        if not records:
            raise RequestError(422, "empty_batch", "'records' is empty", "records")
        if len(records) > self.max_records:
            raise RequestError(
                413,
                "batch_too_large",
                f"{len(records)} records, the limit is {self.max_records}",
                "records",
            )
        for index, record in enumerate(records):
            self._record(record, index)
        return model, records

    def _record(self, record: Any, index: int) -> None:
        where = f"records[{index}]"
        if type(record) is not dict:
            raise _wrong(where, "an object", record)
        keys = record.keys()
        if keys != self.names and keys != self.names_with_id:
            missing = sorted(self.names - keys)
            if missing:
                raise RequestError(
                    422,
                    "missing_field",
                    "required field is missing (send null for an unknown value)",
                    f"{where}.{missing[0]}",
                )
            extra = sorted(keys - self.names_with_id)
            raise RequestError(
                422, "unknown_field", "field is not in the input schema", f"{where}.{extra[0]}"
            )
        for name, nullable, check in self.fields:
            value = record[name]
            if value is None:
                if not nullable:
                    raise RequestError(
                        422, "null_not_allowed", "field may not be null", f"{where}.{name}"
                    )
                continue
            try:
                check(value, name)
            except RequestError as exc:  # the full path is built only on failure
                exc.field = f"{where}.{name}"
                raise
        if self.id_field and self.id_field in record:
            _check_id(record[self.id_field], f"{where}.{self.id_field}")


def _check_id(value: Any, where: str) -> None:
    if type(value) is str and len(value) <= ID_MAX_LENGTH:
        return
    if type(value) is int and -(2**63) <= value < 2**63:
        return
    raise _wrong(
        where, f"a string (at most {ID_MAX_LENGTH} characters) or a 64-bit integer id", value
    )


def _limited(spec: FieldSpec, default_limit: int) -> FieldSpec:
    """Strings without a limit in the contract get the server's default limit."""
    if spec.type in ("category", "text") and spec.max_length is None:
        return replace(spec, max_length=default_limit)
    return spec


def decode_json(body: bytes) -> Any:
    """orjson first (fast, strict); on failure find out why for a precise error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    field = _non_finite_field(body)
    if field is not None:
        raise RequestError(422, "non_finite_number", "NaN and Infinity are not allowed", field)
    raise RequestError(400, "invalid_json", "the body is not valid UTF-8 JSON")


def _non_finite_field(body: bytes) -> str | None:
    """Path of the first NaN/Infinity (or overflowing) number, if that is what broke the JSON."""

    def constant(_: str) -> float:
        return math.nan

    try:
        return _find_non_finite(json.loads(body, parse_constant=constant), "")
    except (ValueError, RecursionError):  # not JSON at all, or nested too deep to say
        return None


def _find_non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path or "body"
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
        found = _find_non_finite(item, sub)
        if found:
            return found
    return None
