"""Every malformed request gets its 4xx JSON; overload, timeouts and readiness behave."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import serving.app
from tests.serving.conftest import call, start_app, stop_app, wait_ready

VALID = {
    "amount": 12.5,
    "channel": "email",
    "is_member": True,
    "created_at": "2024-05-01T13:45:00",
    "review": "great fit, love it",
}


def body(records: Any = None, **extra: Any) -> bytes:
    return json.dumps({"records": [VALID] if records is None else records, **extra}).encode()


def with_field(**changes: Any) -> bytes:
    return body([{**VALID, **changes}])


JSON = ((b"content-type", b"application/json"),)
MALFORMED: list[tuple[str, bytes, tuple[tuple[bytes, bytes], ...], int, str, str | None]] = [
    (
        "missing field",
        body([{k: v for k, v in VALID.items() if k != "amount"}]),
        JSON,
        422,
        "missing_field",
        "records[0].amount",
    ),
    ("extra field", with_field(colour="red"), JSON, 422, "unknown_field", "records[0].colour"),
    ("extra top-level key", body(foo=1), JSON, 422, "unknown_field", "foo"),
    ("string for number", with_field(amount="12"), JSON, 422, "wrong_type", "records[0].amount"),
    ("bool for number", with_field(amount=True), JSON, 422, "wrong_type", "records[0].amount"),
    ("number for category", with_field(channel=3), JSON, 422, "wrong_type", "records[0].channel"),
    (
        "string for boolean",
        with_field(is_member="yes"),
        JSON,
        422,
        "wrong_type",
        "records[0].is_member",
    ),
    (
        "null where not nullable",
        with_field(is_member=None),
        JSON,
        422,
        "null_not_allowed",
        "records[0].is_member",
    ),
    (
        "bad datetime",
        with_field(created_at="yesterday"),
        JSON,
        422,
        "invalid_datetime",
        "records[0].created_at",
    ),
    (
        "NaN",
        b'{"records": [{"amount": NaN, "channel": null, "is_member": true, '
        b'"created_at": null, "review": null}]}',
        JSON,
        422,
        "non_finite_number",
        "records[0].amount",
    ),
    (
        "Infinity",
        body().replace(b"12.5", b"-Infinity"),
        JSON,
        422,
        "non_finite_number",
        "records[0].amount",
    ),
    (
        "overflowing number",
        body().replace(b"12.5", b"1e999"),
        JSON,
        422,
        "non_finite_number",
        "records[0].amount",
    ),
    (
        "beyond float32",
        body().replace(b"12.5", b"1e300"),
        JSON,
        422,
        "out_of_range",
        "records[0].amount",
    ),
    ("empty batch", body([]), JSON, 422, "empty_batch", "records"),
    ("batch over the limit", body([VALID] * 9), JSON, 413, "batch_too_large", "records"),
    (
        "records not a list",
        json.dumps({"records": VALID}).encode(),
        JSON,
        422,
        "wrong_type",
        "records",
    ),
    ("record not an object", body([[1, 2]]), JSON, 422, "wrong_type", "records[0]"),
    ("no records key", b'{"model": "lightgbm"}', JSON, 422, "missing_field", "records"),
    ("body not an object", b"[1, 2]", JSON, 422, "invalid_body", None),
    (
        "string over its limit",
        with_field(review="x" * 5001),
        JSON,
        422,
        "string_too_long",
        "records[0].review",
    ),
    (
        "category over its limit",
        with_field(channel="y" * 201),
        JSON,
        422,
        "string_too_long",
        "records[0].channel",
    ),
    (
        "body over the size limit",
        body([{**VALID, "review": "z" * 4000}] * 2),
        JSON,
        413,
        "body_too_large",
        None,
    ),
    ("non-JSON", b"records=1", JSON, 400, "invalid_json", None),
    ("truncated JSON", body()[:-3], JSON, 400, "invalid_json", None),
    ("not UTF-8", b'{"records": "\xff"}', JSON, 400, "invalid_json", None),
    (
        "wrong content type",
        body(),
        ((b"content-type", b"text/plain"),),
        415,
        "unsupported_media_type",
        "content-type",
    ),
    ("no content type", body(), (), 415, "unsupported_media_type", "content-type"),
    ("unknown model", body(model="gpt"), JSON, 404, "unknown_model", "model"),
    ("bad id", with_field(ticket_id=[1]), JSON, 422, "wrong_type", "records[0].ticket_id"),
]


def test_every_malformed_request_gets_its_4xx_then_a_valid_one_is_unchanged(
    export_dir: Path,
) -> None:
    async def scenario() -> None:
        app, task = await start_app(export_dir, max_records=8, max_body_bytes=6000)
        await wait_ready(app)
        first = await call(app, "POST", "/v1/predict", body())
        assert first.status == 200
        for name, payload, headers, status, code, field in MALFORMED:
            reply = await call(app, "POST", "/v1/predict", payload, headers)
            assert (reply.status, reply.headers[b"content-type"]) == (
                status,
                b"application/json",
            ), name
            error = reply.json()["error"]
            assert (error["code"], error["field"]) == (code, field), (name, error)
            assert error["message"], name
        again = await call(app, "POST", "/v1/predict", body())
        assert again.status == 200 and again.body == first.body
        # A body sent in several chunks is read whole.
        chunked = await call(app, "POST", "/v1/predict", body(), chunk=7)
        assert chunked.body == first.body
        await stop_app(app, task)

    asyncio.run(scenario())


def test_valid_variants_are_accepted(export_dir: Path) -> None:
    async def scenario() -> None:
        app, task = await start_app(export_dir)
        await wait_ready(app)
        records = [
            {**VALID, "amount": None, "channel": None, "created_at": None, "review": None},
            {**VALID, "is_member": 1, "amount": 3, "ticket_id": "T-1"},
            {**VALID, "channel": "never seen", "created_at": "2024-05-01T13:45:00+02:00"},
        ]
        for model in ("baseline", "lightgbm", "text_model"):
            reply = await call(app, "POST", "/v1/predict", body(records, model=model))
            assert reply.status == 200, reply.body
            out = reply.json()
            assert out["model"] == model and len(out["predictions"]) == 3
            for p in out["predictions"]:
                assert set(p["probabilities"]) == {"no", "yes"}
                assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-6)
                assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
                assert p["model"] == model and p["version"]
            assert out["predictions"][1]["id"] == "T-1" and "id" not in out["predictions"][0]
        default = (await call(app, "POST", "/v1/predict", body())).json()
        assert default["model"] == "lightgbm"  # the contract's champion
        await stop_app(app, task)

    asyncio.run(scenario())


def test_routes_methods_and_metadata(export_dir: Path) -> None:
    async def scenario() -> None:
        app, task = await start_app(export_dir)
        await wait_ready(app)
        assert (await call(app, "GET", "/nope")).status == 404
        assert (await call(app, "GET", "/v1/predict")).status == 405
        assert (await call(app, "DELETE", "/metadata")).status == 405
        meta = (await call(app, "GET", "/metadata")).json()
        assert meta["champion"] == "lightgbm" and "lineage" in meta and "input_schema" in meta
        docs = await call(app, "GET", "/docs")
        assert (
            docs.status == 200
            and docs.headers[b"content-type"].startswith(b"text/html")
            and b"/v1/predict" in docs.body
        )
        # Self-contained: nothing is fetched from elsewhere (the environment may be offline).
        assert not any(ref in docs.body for ref in (b'src="http', b'href="http', b"@import"))
        spec = (await call(app, "GET", "/openapi.json")).json()
        record = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]["records"]["items"]
        assert record["required"] == ["amount", "channel", "is_member", "created_at", "review"]
        assert record["properties"]["review"]["maxLength"] == 5000
        await stop_app(app, task)

    asyncio.run(scenario())


def test_readiness_turns_200_only_after_loading_and_warm_up(
    export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real_load = serving.app.load_model

    def held_load(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(10)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(serving.app, "load_model", held_load)

    async def scenario() -> None:
        app, task = await start_app(export_dir)
        await asyncio.sleep(0.1)
        assert (await call(app, "GET", "/health/live")).status == 200
        ready = await call(app, "GET", "/health/ready")
        assert ready.status == 503 and ready.headers[b"retry-after"] == b"1"
        busy = await call(app, "POST", "/v1/predict", body())
        assert busy.status == 503 and busy.json()["error"]["code"] == "not_ready"
        gate.set()
        await wait_ready(app)
        assert (await call(app, "GET", "/health/ready")).status == 200
        assert (await call(app, "POST", "/v1/predict", body())).status == 200
        await stop_app(app, task)

    asyncio.run(scenario())


def test_full_queue_answers_503_with_retry_after(export_dir: Path) -> None:
    async def scenario() -> None:
        # The text batcher waits 300 ms to fill a batch: 4 queued records fill the queue.
        app, task = await start_app(export_dir, max_queue_records=4, max_wait_ms=300)
        await wait_ready(app)
        text = body(model="text_model")
        replies = await asyncio.gather(*(call(app, "POST", "/v1/predict", text) for _ in range(10)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [200] * 4 + [503] * 6
        rejected = next(r for r in replies if r.status == 503)
        assert rejected.headers[b"retry-after"] == b"1"
        assert rejected.json()["error"]["code"] == "overloaded"
        metrics = (await call(app, "GET", "/metrics")).body.decode()
        assert 'serving_requests_total{model="text_model",status="503"} 6.0' in metrics
        await stop_app(app, task)

    asyncio.run(scenario())


def test_request_past_its_timeout_gets_504(export_dir: Path) -> None:
    async def scenario() -> None:
        app, task = await start_app(export_dir, request_timeout_s=0.05, max_wait_ms=500)
        await wait_ready(app)
        reply = await call(app, "POST", "/v1/predict", body(model="text_model"))
        assert reply.status == 504 and reply.json()["error"]["code"] == "timeout"
        fast = await call(app, "POST", "/v1/predict", body(model="baseline"))
        assert fast.status == 200  # the tabular models do not wait for a batch
        await stop_app(app, task)

    asyncio.run(scenario())
