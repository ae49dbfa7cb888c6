"""Open Inference Protocol (KServe v2) REST, beside `/v1/predict`, on the same batchers.

Inputs are raw records as one tensor per input field, named after it, shape `[N]` or `[N, 1]`
(as MLServer's pandas codec encodes a table): `BYTES` for categories, texts and datetimes;
`FP64` (or any float or integer type) for numbers; `BOOL` (or 0/1 numbers) for booleans.
Missing values: `null` in `data` for any tensor; in the binary tensor extension, NaN in a float
tensor and an empty string in a `BYTES` tensor (a missing category or datetime, an empty text:
as an empty cell in a file). Outputs: classification `label` (BYTES [N]) and `probabilities`
(FP64 [N, C], columns in the order of the model metadata's `labels` parameter), with the
binary decision's `threshold` in the response parameters; regression `value` (FP64 [N]) and,
for quantile models, `interval` (FP64 [N, 2]).
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Literal, get_args

import orjson
from fastapi import APIRouter, Response
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from serving.http import ApiError
from serving.schemas import FieldSchema
from serving.scoring import Outputs, Rejection, Scorer

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
NUMERIC = set(get_args(Datatype)) - {"BOOL", "BYTES"}
ACCEPTED = {
    "number": NUMERIC,
    "boolean": NUMERIC | {"BOOL"},
    "category": {"BYTES"},
    "text": {"BYTES"},
    "datetime": {"BYTES"},
}
Parameters = dict[str, str | int | float | bool]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] = Field(description="Row-major, flat or nested; null = missing.")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ResponseOutput(TensorMetadata):
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: Parameters | None = None


def model_metadata(scorer: Scorer) -> ModelMetadata:
    """The tensors `infer` takes and answers with, for one model."""
    fields = scorer.contract.input_schema
    datatype: dict[str, Datatype] = {"number": "FP64", "boolean": "BOOL"}
    inputs = [
        TensorMetadata(name=f.name, datatype=datatype.get(f.type, "BYTES"), shape=[-1, 1])
        for f in fields
    ]
    if scorer.labels:
        outputs = [
            TensorMetadata(name="label", datatype="BYTES", shape=[-1]),
            TensorMetadata(name="probabilities", datatype="FP64", shape=[-1, len(scorer.labels)]),
        ]
        parameters: Parameters = {"labels": ",".join(scorer.labels)}
    else:
        outputs = [TensorMetadata(name="value", datatype="FP64", shape=[-1])]
        if scorer.entry.outputs.interval:
            outputs.append(TensorMetadata(name="interval", datatype="FP64", shape=[-1, 2]))
        parameters = {}
    if scorer.threshold is not None:
        parameters["threshold"] = scorer.threshold
    return ModelMetadata(
        name=scorer.name,
        versions=[scorer.version],
        platform="onnxruntime",
        inputs=inputs,
        outputs=outputs,
        parameters=parameters or None,
    )


def decode_inputs(
    request: InferenceRequest, fields: list[FieldSchema], max_rows: int
) -> tuple[dict[str, list[Any]], int]:
    """Raw values per input field and the row count; ApiError 422 naming the tensor."""
    by_name = {f.name: f for f in fields}
    columns: dict[str, list[Any]] = {}
    rows = None
    for tensor in request.inputs:
        where = f"inputs.{tensor.name}"
        field = by_name.get(tensor.name)
        if field is None:
            raise ApiError(
                422,
                "unknown_input",
                f"no input field {tensor.name[:64]!r}; the inputs are {sorted(by_name)}",
                where,
            )
        if tensor.name in columns:
            raise ApiError(422, "duplicate_input", "this input is sent twice", where)
        if tensor.datatype not in ACCEPTED[field.type]:
            takes = " or ".join(sorted(ACCEPTED[field.type]))
            raise ApiError(422, "wrong_datatype", f"a {field.type} field takes {takes}", where)
        data = tensor.data
        if data and isinstance(data[0], list):  # nested row-major: [[v], [v], ...]
            nested = (row if isinstance(row, list) else [row] for row in data)
            data = list(itertools.chain.from_iterable(nested))
        if len(tensor.shape) not in (1, 2) or tensor.shape[1:] not in ([], [1]):
            expected = "expected [N] or [N, 1] (one value per record)"
            raise ApiError(422, "wrong_shape", f"shape {tensor.shape}: {expected}", where)
        if tensor.shape[0] != len(data):
            raise ApiError(
                422, "wrong_shape", f"shape {tensor.shape} but {len(data)} values", where
            )
        if rows is not None and len(data) != rows:
            raise ApiError(422, "wrong_shape", f"{len(data)} rows, other inputs have {rows}", where)
        rows = len(data)
        _check_types(data, tensor.datatype, where)
        columns[tensor.name] = data
    missing = [name for name in by_name if name not in columns]
    if missing:
        message = "every input field needs a tensor (null for an unknown value)"
        raise ApiError(422, "missing_input", message, f"inputs.{missing[0]}")
    assert rows is not None
    if not 0 < rows <= max_rows:
        status = 413 if rows else 422
        raise ApiError(status, "batch_size", f"{rows} rows; send 1 to {max_rows}", "inputs")
    return columns, rows


def _check_types(data: list[Any], datatype: str, where: str) -> None:
    if datatype == "BYTES":
        allowed: tuple[type, ...] = (str,)
    elif datatype == "BOOL":
        allowed = (bool,)
    else:
        allowed = (int, float)
    for i, value in enumerate(data):
        if value is not None and type(value) not in allowed:
            message = f"element {i} is {type(value).__name__}, not {datatype}"
            raise ApiError(422, "wrong_type", message, where)


def encode_outputs(scorer: Scorer, outputs: Outputs, wanted: set[str] | None) -> list[Any]:
    """The answer's tensors (every one, or those the request names), FP64 but for `label`."""
    tensors: list[dict[str, Any]] = []
    if "label" in outputs:
        labels = [scorer.labels[k] for k in outputs["label"].tolist()]
        tensors.append(
            {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels}
        )
    for name in ("probabilities", "value", "interval"):
        if name in outputs:
            array = outputs[name]
            data = array.ravel().tolist()
            tensors.append(
                {"name": name, "datatype": "FP64", "shape": list(array.shape), "data": data}
            )
    return [t for t in tensors if wanted is None or t["name"] in wanted]


def router(serving: Any, auth: list[DependsParam], route_class: type[APIRoute]) -> APIRouter:
    """The v2 routes, over the app's `Serving` (models, batchers, metrics)."""
    # tritonclient sends no content type: a body without one is read as JSON here.
    v2 = APIRouter(
        prefix="/v2",
        tags=["open inference protocol (v2)"],
        route_class=route_class,
        strict_content_type=False,
    )

    def scorer_for(name: str, version: str | None = None) -> Scorer:
        scorer: Scorer | None = serving.scorers.get(name)
        if scorer is None:
            if not serving.ready and name in serving.contract.models:
                raise serving.not_ready()
            raise ApiError(
                404,
                "unknown_model",
                f"no model {name[:64]!r}; the models are {sorted(serving.contract.models)}",
                "model",
            )
        if version is not None and version != scorer.version:
            raise ApiError(
                404, "unknown_version", f"{name} is at version {scorer.version}", "version"
            )
        return scorer

    @v2.get("/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @v2.get("/health/ready")
    async def ready() -> dict[str, bool]:
        if not serving.ready:
            raise serving.not_ready()
        return {"ready": True}

    @v2.get("/models/{name}", dependencies=auth)
    @v2.get("/models/{name}/versions/{version}", dependencies=auth, include_in_schema=False)
    async def metadata(name: str, version: str | None = None) -> ModelMetadata:
        """The tensors `infer` takes and answers with."""
        return model_metadata(scorer_for(name, version))

    @v2.get("/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, str | bool]:
        scorer_for(name)
        return {"name": name, "ready": True}

    options: dict[str, Any] = {"dependencies": auth, "response_model": InferenceResponse}

    @v2.post("/models/{name}/infer", **options)
    @v2.post("/models/{name}/versions/{version}/infer", include_in_schema=False, **options)
    async def infer(name: str, body: InferenceRequest, version: str | None = None) -> Response:
        """Score raw records sent as one tensor per input field (see the module's notes)."""
        scorer = scorer_for(name, version)
        started = time.perf_counter()
        fields = serving.contract.input_schema
        columns, rows = decode_inputs(body, fields, serving.settings.max_records)
        outputs = await serving.score(name, columns, rows, _tensor_field)
        wanted = {o.name for o in body.outputs} if body.outputs else None
        answer: dict[str, Any] = {
            "model_name": name,
            "model_version": scorer.version,
            "outputs": encode_outputs(scorer, outputs, wanted),
        }
        if body.id is not None:
            answer["id"] = body.id
        if scorer.threshold is not None:
            answer["parameters"] = {"threshold": scorer.threshold}
        serving.metrics.request(name, 200, time.perf_counter() - started)
        return Response(orjson.dumps(answer), media_type="application/json")

    return v2


def _tensor_field(rejection: Rejection) -> str:
    return f"inputs.{rejection.field}[{rejection.row}]"
