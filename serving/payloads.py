"""`/v1/predict`: its request and response models, built from the contract at start-up
(`pydantic.create_model`), and the rendering of its answers.

Fields get opaque Python names (`f0`, `f1`, …) and the column name as alias, so any column name
works, even `model_config` or `Weight (kg)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from serving.schemas import Contract, FieldSchema
from serving.scoring import DATETIME_MAX_LENGTH, FLOAT32_MAX, Outputs, Scorer, warmup_columns

ID_MAX_LENGTH = 256  # characters of a string id (ids are echoed back, never scored)
INT64 = 2**63


def _boolean(value: Any) -> bool:
    if value is True or value is False:
        return value
    # 0/1 are common spellings of booleans in JSON (and how the processed splits store them).
    if type(value) in (int, float) and value in (0, 1):
        return bool(value)
    raise PydanticCustomError("bool_type", "Input should be true or false (or 0/1)")


def _record_id(value: Any) -> str | int:
    if (type(value) is str and len(value) <= ID_MAX_LENGTH) or (
        type(value) is int and -INT64 <= value < INT64
    ):
        return value
    raise PydanticCustomError(
        "id_type",
        f"Input should be a string of at most {ID_MAX_LENGTH} characters or a 64-bit integer",
    )


def field_type(field: FieldSchema, max_string_length: int) -> Any:
    """The pydantic type of one raw input field: JSON types only (values are checked per column
    by `serving.scoring.check_columns`, as for v2 tensors and files)."""
    if field.type == "number":
        bounds: dict[str, Any] = {"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
        kind: Any = Annotated[float, Strict(), Field(json_schema_extra=bounds)]
    elif field.type == "boolean":
        schema = {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}
        kind = Annotated[bool, PlainValidator(_boolean), WithJsonSchema(schema)]
    elif field.type == "datetime":
        kind = Annotated[
            str,
            Strict(),
            StringConstraints(max_length=DATETIME_MAX_LENGTH),
            Field(json_schema_extra=None if field.datetime_format else {"format": "date-time"}),
        ]
    else:
        limit = field.max_length or max_string_length
        kind = Annotated[str, Strict(), StringConstraints(max_length=limit)]
    return kind | None if field.nullable else kind


def _describe(field: FieldSchema, timezone: str) -> str:
    parts = {
        "number": "A number",
        "boolean": "true or false",
        "category": "A category",
        "datetime": "ISO 8601 date-time",
        "text": "Free text",
    }
    words = [parts[field.type]]
    if field.type == "datetime":
        if field.datetime_format:
            words.append(f"or {field.datetime_format!r} (strptime)")
        words.append(f"; naive values are in {timezone}")
    if field.min is not None and field.max is not None:
        words.append(f"(training range {field.min:g} to {field.max:g})")
    if field.categories:
        shown = ", ".join(field.categories[:20])
        words.append(f"seen in training: {shown}; any other value is scored as unseen")
    if field.nullable:
        words.append("(null when unknown)")
    return " ".join(words) + "."


def record_model(contract: Contract, max_string_length: int) -> tuple[type[BaseModel], list[str]]:
    """The model of one record, and its Python field names in input-schema order."""
    fields: dict[str, Any] = {
        f"f{i}": (
            field_type(field, max_string_length),
            Field(alias=field.name, description=_describe(field, contract.features.timezone)),
        )
        for i, field in enumerate(contract.input_schema)
    }
    keys = list(fields)
    if contract.id:
        schema = {
            "anyOf": [
                {"type": "string", "maxLength": ID_MAX_LENGTH},
                {"type": "integer", "minimum": -INT64, "maximum": INT64 - 1},
            ]
        }
        id_type = Annotated[str | int, PlainValidator(_record_id), WithJsonSchema(schema)]
        fields["record_id"] = (
            id_type | None,
            Field(None, alias=contract.id, description="The record's id, echoed back."),
        )
    config = ConfigDict(extra="forbid", title="Record")
    return create_model("Record", __config__=config, **fields), keys


def predict_request(contract: Contract, record: type[BaseModel], max_records: int) -> type[Any]:
    """`{"records": [...], "model": optional}`."""
    model: Any = Literal[tuple(contract.models)] | None
    record_example = {name: values[0] for name, values in warmup_columns(contract).items()}
    example: dict[str, Any] = {"records": [record_example]}
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
        model=(model, Field(None, description=f"A served model; default {contract.champion}.")),
    )


def predict_response(contract: Contract) -> type[BaseModel]:
    """The answer to `/v1/predict` (documentation only: answers are rendered directly)."""
    fields: dict[str, Any] = {}
    if contract.task == "regression":
        fields["value"] = (float, Field(description=f"Predicted {contract.target}."))
        interval = "[lower, upper], from models trained with quantiles."
        fields["interval"] = (list[float] | None, Field(None, description=interval))
    else:
        columns: Any = {f"p{i}": (float, Field(alias=c)) for i, c in enumerate(contract.labels)}
        label: Any = Literal[tuple(contract.labels)]
        fields["label"] = (label, ...)
        fields["probabilities"] = (create_model("Probabilities", **columns), ...)
    if contract.task == "binary":
        tuned = "The positive class's probability at or above which it is the label (tuned)."
        fields["threshold"] = (float, Field(description=tuned))
    head: dict[str, Any] = {"model": (str, ...), "version": (str, ...)}
    echoed = Field(None, description="The record's id, when it sent one.")
    prediction: Any = create_model("Prediction", **fields, **head, id=(str | int | None, echoed))
    return create_model("PredictResponse", **head, predictions=(list[prediction], ...))


def as_columns(records: list[BaseModel], keys: list[str], names: list[str]) -> dict[str, list]:
    """Validated records → raw values per input field, as `check_columns` reads them."""
    get = itemgetter(*keys)
    rows = [get(r.__dict__) for r in records]
    if len(keys) == 1:  # itemgetter of one key returns the value, not a tuple
        rows = [(value,) for value in rows]
    return {name: list(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


def render(scorer: Scorer, outputs: Outputs, ids: Sequence[Any] | None) -> bytes:
    """The `/v1/predict` answer."""
    base = {"model": scorer.name, "version": scorer.version}
    predictions: list[dict[str, Any]]
    if "probabilities" in outputs:
        labels = scorer.labels
        extra = base if scorer.threshold is None else {"threshold": scorer.threshold, **base}
        predictions = [
            {"label": labels[k], "probabilities": dict(zip(labels, row, strict=True)), **extra}
            for k, row in zip(
                outputs["label"].tolist(), outputs["probabilities"].tolist(), strict=True
            )
        ]
    else:
        predictions = [{"value": value, **base} for value in outputs["value"].tolist()]
        if "interval" in outputs:
            for item, bounds in zip(predictions, outputs["interval"].tolist(), strict=True):
                item["interval"] = bounds
    if ids is not None:
        for item, record_id in zip(predictions, ids, strict=True):
            if record_id is not None:
                item["id"] = record_id
    return orjson.dumps({**base, "predictions": predictions})
