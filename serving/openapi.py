"""OpenAPI 3.1 document generated from the contract, and a self-contained HTML docs page."""

from __future__ import annotations

import html
from typing import Any

import orjson

from serving.contract import Contract, FieldSpec
from serving.settings import Settings
from serving.validation import FLOAT32_MAX, ID_MAX_LENGTH

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}


def _field_schema(spec: FieldSpec, max_string_length: int) -> dict[str, Any]:
    nullable = ["null"] if spec.nullable else []
    if spec.type == "number":
        return {"type": ["number", *nullable], "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    if spec.type == "boolean":
        return {"type": ["boolean", *nullable]}
    schema: dict[str, Any] = {
        "type": ["string", *nullable],
        "maxLength": spec.max_length or max_string_length,
    }
    if spec.type == "datetime":
        schema.update(format="date-time", maxLength=64, examples=["2024-05-01T13:45:00"])
    if spec.categories:
        # Seen in training; other values are accepted and treated as unknown by the model.
        schema["examples"] = list(spec.categories[:20])
    return schema


def _example(contract: Contract) -> dict[str, Any]:
    values = {"number": 1.0, "boolean": True, "datetime": "2024-05-01T13:45:00", "text": "Great!"}
    return {
        f.name: (f.categories[0] if f.categories else "x")
        if f.type == "category"
        else values[f.type]
        for f in contract.input_schema
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _predict_operation(contract: Contract, settings: Settings) -> dict[str, Any]:
    properties = {
        f.name: _field_schema(f, settings.max_string_length) for f in contract.input_schema
    }
    if contract.id_field:
        properties[contract.id_field] = {
            "type": ["string", "integer"],
            "maxLength": ID_MAX_LENGTH,
            "minimum": -(2**63),
            "maximum": 2**63 - 1,
        }
    record = {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in contract.input_schema],
        "properties": properties,
    }
    body = {
        "type": "object",
        "additionalProperties": False,
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.max_records,
                "items": record,
            },
            "model": {
                "type": "string",
                "enum": sorted(contract.models),
                "default": contract.champion,
            },
        },
        "example": {"records": [_example(contract)]},
    }
    prediction = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": contract.labels},
            "probabilities": {
                "type": "object",
                "properties": {label: {"type": "number"} for label in contract.labels},
            },
            "model": {"type": "string"},
            "version": {"type": "string"},
        },
    }
    errors = {
        str(code): {"description": text, **_json(_ERROR)}
        for code, text in (
            (400, "not JSON"),
            (404, "unknown model"),
            (413, "body or batch too large"),
            (415, "content type is not application/json"),
            (422, "the records do not match the input schema"),
            (503, "overloaded or not ready (see Retry-After)"),
            (504, "the request timed out"),
        )
    }
    return {
        "post": {
            "summary": "Predict labels and class probabilities for raw records",
            "operationId": "predict",
            "requestBody": {"required": True, **_json(body)},
            "responses": {
                "200": {
                    "description": "one prediction per record, in order",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "model": {"type": "string"},
                                "version": {"type": "string"},
                                "predictions": {"type": "array", "items": prediction},
                            },
                        }
                    ),
                },
                **errors,
            },
        }
    }


def _get(
    summary: str,
    operation_id: str,
    content: str = "application/json",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {content: {}}}}
    responses.update(extra or {})
    return {"get": {"summary": summary, "operationId": operation_id, "responses": responses}}


def build_openapi(contract: Contract, settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server for this contract."""
    not_ready = {"503": {"description": "models not loaded yet", **_json(_ERROR)}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Model serving API",
            "version": str(contract.raw.get("schema_version", 1)),
            "description": "ONNX Runtime models exported by the pipeline.",
        },
        "servers": [{"url": f"http://{settings.host}:{settings.port}"}],
        "paths": {
            "/health/live": _get("The process is up", "live"),
            "/health/ready": _get(
                "Every model loaded, verified and warmed up", "ready", extra=not_ready
            ),
            "/metadata": _get(
                "The serving contract: models, versions, lineage, schema", "metadata"
            ),
            "/v1/predict": _predict_operation(contract, settings),
            "/metrics": _get("Prometheus metrics", "metrics", "text/plain"),
            "/openapi.json": _get("This document", "openapi"),
            "/docs": _get("Human-readable API docs", "docs", "text/html"),
        },
    }


def build_docs_page(openapi: dict[str, Any]) -> bytes:
    """A self-contained HTML page (no CDN: works offline) with the schema and a try-it form."""
    predict = openapi["paths"]["/v1/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    record = body["properties"]["records"]["items"]
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td>"
        f"<td>{html.escape(' | '.join(s['type']) if isinstance(s['type'], list) else s['type'])}"
        f"</td><td>{html.escape(str(s.get('format', '')))} "
        f"{html.escape(', '.join(map(str, s.get('examples', []))))}</td></tr>"
        for name, s in record["properties"].items()
    )
    paths = "".join(
        f"<li><code>{m.upper()} {html.escape(p)}</code> — {html.escape(op['summary'])}</li>"
        for p, ops in openapi["paths"].items()
        for m, op in ops.items()
    )
    example = html.escape(orjson.dumps(body["example"], option=orjson.OPT_INDENT_2).decode())
    return _PAGE.format(
        title=html.escape(openapi["info"]["title"]), paths=paths, rows=rows, example=example
    ).encode()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}
textarea{{width:100%;height:14rem;font-family:monospace}}pre{{background:#f4f4f4;padding:.5rem}}
</style></head><body>
<h1>{title}</h1>
<p>Machine-readable schema: <a href="/openapi.json">/openapi.json</a>.</p>
<h2>Endpoints</h2><ul>{paths}</ul>
<h2>Record fields (all required; send <code>null</code> for unknown values)</h2>
<table><tr><th>field</th><th>type</th><th>format / known values</th></tr>{rows}</table>
<h2>Try it</h2>
<textarea id="body">{example}</textarea><br>
<button onclick="send()">POST /v1/predict</button>
<pre id="out"></pre>
<script>
async function send() {{
  const r = await fetch("/v1/predict", {{method: "POST",
    headers: {{"content-type": "application/json"}},
    body: document.getElementById("body").value}});
  document.getElementById("out").textContent =
    r.status + "\\n" + JSON.stringify(await r.json(), null, 2);
}}
</script></body></html>
"""
