"""Open Inference Protocol (KServe v2) REST beside `/v1/predict`, on the same batchers.

Inputs are raw records as one tensor per input field; tensors, missing values and outputs are
described in docs/serving.md.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Response
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from serving.http import BINARY_DTYPES, ApiError
from serving.schemas import FieldSchema
from serving.scoring import Outputs, Scorer

NUMERIC = set(BINARY_DTYPES) - {"BOOL"}
ACCEPTED = {"number": NUMERIC, "boolean": NUMERIC | {"BOOL"}}  # other fields: BYTES
PYTHON_TYPES: dict[str, tuple[type, ...]] = {"BYTES": (str,), "BOOL": (bool,)}  # else numbers
Parameters = dict[str, str | int | float | bool]
Datatype = Annotated[str, Field(description=f"one of {', '.join([*BINARY_DTYPES, 'BYTES'])}")]


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
    datatype = {"number": "FP64", "boolean": "BOOL"}
    inputs = [
        (f.name, datatype.get(f.type, "BYTES"), [-1, 1]) for f in scorer.contract.input_schema
    ]
    parameters: Parameters = {}
    if scorer.labels:
        outputs = [("label", "BYTES", [-1]), ("probabilities", "FP64", [-1, len(scorer.labels)])]
        parameters["labels"] = ",".join(scorer.labels)
    else:
        outputs = [("value", "FP64", [-1])]
        if scorer.entry.outputs.interval:
            outputs.append(("interval", "FP64", [-1, 2]))
    if scorer.threshold is not None:
        parameters["threshold"] = scorer.threshold
    return ModelMetadata(
        name=scorer.name,
        versions=[scorer.version],
        platform="onnxruntime",
        inputs=[TensorMetadata(name=n, datatype=d, shape=s) for n, d, s in inputs],
        outputs=[TensorMetadata(name=n, datatype=d, shape=s) for n, d, s in outputs],
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
        where, field, data = f"inputs.{tensor.name}", by_name.get(tensor.name), tensor.data
        if field is None:
            message = f"no input field {tensor.name[:64]!r}; the inputs are {sorted(by_name)}"
            raise ApiError(422, "unknown_input", message, where)
        if tensor.name in columns:
            raise ApiError(422, "duplicate_input", "this input is sent twice", where)
        if tensor.datatype not in (accepted := ACCEPTED.get(field.type, {"BYTES"})):
            takes = " or ".join(sorted(accepted))
            raise ApiError(422, "wrong_datatype", f"a {field.type} field takes {takes}", where)
        if data and isinstance(data[0], list):  # nested row-major: [[v], [v], ...]
            data = [v for row in data for v in (row if isinstance(row, list) else [row])]
        if not tensor.shape or tensor.shape[1:] not in ([], [1]):
            message = f"shape {tensor.shape}: expected [N] or [N, 1] (one value per record)"
            raise ApiError(422, "wrong_shape", message, where)
        if tensor.shape[0] != len(data):
            message = f"shape {tensor.shape} but {len(data)} values"
            raise ApiError(422, "wrong_shape", message, where)
        if rows is not None and len(data) != rows:
            raise ApiError(422, "wrong_shape", f"{len(data)} rows, other inputs have {rows}", where)
        rows = len(data)
        allowed = PYTHON_TYPES.get(tensor.datatype, (int, float))
        for i, value in enumerate(data):
            if value is not None and type(value) not in allowed:
                message = f"element {i} is {type(value).__name__}, not {tensor.datatype}"
                raise ApiError(422, "wrong_type", message, where)
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


def encode_outputs(scorer: Scorer, outputs: Outputs, wanted: set[str] | None) -> list[Any]:
    """The answer's tensors (every one, or those the request names), FP64 but for `label`."""
    tensors = []
    for name in ("label", "probabilities", "value", "interval"):
        if name in outputs and (wanted is None or name in wanted):
            array = np.asarray(scorer.labels)[outputs[name]] if name == "label" else outputs[name]
            datatype, data = "BYTES" if name == "label" else "FP64", array.ravel().tolist()
            tensors.append(
                {"name": name, "datatype": datatype, "shape": [*array.shape], "data": data}
            )
    return tensors


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
            message = f"no model {name[:64]!r}; the models are {sorted(serving.contract.models)}"
            raise ApiError(404, "unknown_model", message, "model")
        if version is not None and version != scorer.version:
            message = f"{name} is at version {scorer.version}"
            raise ApiError(404, "unknown_version", message, "version")
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
        columns, rows = decode_inputs(
            body, serving.contract.input_schema, serving.settings.max_records
        )
        outputs = await serving.score(name, columns, rows, "inputs.{field}[{row}]")
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
        serving.count(name, time.perf_counter() - started)
        return Response(orjson.dumps(answer), media_type="application/json")

    return v2
