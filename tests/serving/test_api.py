"""The app in-process: every malformed request gets its 4xx JSON; routes, decisions, limits."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import serving.app
from tests.serving.conftest import app_client, reference_of, wait_ready
from tests.serving.fixtures import THRESHOLD

WEIGHTS = [1.0, 1.3, 0.8]  # the multiclass fixture's class weights

VALID = {
    "amount": 12.5,
    "channel": "email",
    "is_member": True,
    "created_at": "2024-05-01T13:45:00",
    "review": "great fit, love it",
}
JSON = {"content-type": "application/json"}


def body(records: Any = None, **extra: Any) -> bytes:
    return json.dumps({"records": [VALID] if records is None else records, **extra}).encode()


def with_field(**changes: Any) -> bytes:
    return body([{**VALID, **changes}])


def without(name: str) -> bytes:
    return body([{k: v for k, v in VALID.items() if k != name}])


R0 = "records[0]"
MALFORMED: list[tuple[str, bytes, dict[str, str], int, str, str | None]] = [
    ("missing field", without("amount"), JSON, 422, "missing", f"{R0}.amount"),
    ("extra field", with_field(colour="red"), JSON, 422, "extra_forbidden", f"{R0}.colour"),
    ("extra top-level key", body(foo=1), JSON, 422, "extra_forbidden", "foo"),
    ("string for number", with_field(amount="12"), JSON, 422, "float_type", f"{R0}.amount"),
    ("bool for number", with_field(amount=True), JSON, 422, "float_type", f"{R0}.amount"),
    ("number for category", with_field(channel=3), JSON, 422, "string_type", f"{R0}.channel"),
    ("word for boolean", with_field(is_member="yes"), JSON, 422, "bool_type", f"{R0}.is_member"),
    ("null, not nullable", with_field(is_member=None), JSON, 422, "bool_type", f"{R0}.is_member"),
    (
        "bad datetime",
        with_field(created_at="yesterday"),
        JSON,
        422,
        "invalid_value",
        f"{R0}.created_at",
    ),
    (
        "datetime before year 1 in the zone",
        with_field(created_at="0001-01-01T00:00:00+01:00"),
        JSON,
        422,
        "invalid_value",
        f"{R0}.created_at",
    ),
    ("NaN", body().replace(b"12.5", b"NaN"), JSON, 400, "non_finite_number", None),
    ("Infinity", body().replace(b"12.5", b"-Infinity"), JSON, 400, "non_finite_number", None),
    (
        "overflowing number",
        body().replace(b"12.5", b"1e999"),
        JSON,
        400,
        "number_out_of_range",
        None,
    ),
    (
        "5,000-digit integer",
        body().replace(b"12.5", b"9" * 5000),
        JSON,
        400,
        "number_out_of_range",
        None,
    ),
    (
        "beyond float32",
        body().replace(b"12.5", b"1e300"),
        JSON,
        422,
        "invalid_value",
        f"{R0}.amount",
    ),
    ("empty batch", body([]), JSON, 422, "too_short", "records"),
    ("batch over the limit", body([VALID] * 9), JSON, 422, "too_long", "records"),
    (
        "records not a list",
        json.dumps({"records": VALID}).encode(),
        JSON,
        422,
        "list_type",
        "records",
    ),
    ("record not an object", body([[1, 2]]), JSON, 422, "model_attributes_type", R0),
    ("no records key", b'{"model": "forest"}', JSON, 422, "missing", "records"),
    ("body not an object", b"[1, 2]", JSON, 422, "model_attributes_type", None),
    (
        "text over its limit",
        with_field(review="x" * 5001),
        JSON,
        422,
        "string_too_long",
        f"{R0}.review",
    ),
    (
        "category over its limit",
        with_field(channel="y" * 201),
        JSON,
        422,
        "string_too_long",
        f"{R0}.channel",
    ),
    (
        "body over the size limit",
        body([{**VALID, "review": "z" * 4000}] * 2),
        JSON,
        413,
        "body_too_large",
        None,
    ),
    ("not JSON", b"records=1", JSON, 400, "invalid_json", None),
    ("truncated JSON", body()[:-3], JSON, 400, "invalid_json", None),
    ("not UTF-8", b'{"records": "\xff"}', JSON, 400, "invalid_utf8", None),
    ("lone surrogate", b'{"records": "\\ud800"}', JSON, 400, "invalid_utf8", None),
    ("nested 2,000 deep", b"[" * 2000 + b"]" * 2000, JSON, 400, "too_deep", None),
    (
        "model nested 1,000 deep",
        body()[:-1] + b', "model": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        JSON,
        422,
        "literal_error",
        "model",
    ),
    (
        "wrong content type",
        body(),
        {"content-type": "text/plain"},
        415,
        "unsupported_media_type",
        "content-type",
    ),
    ("no content type", body(), {}, 415, "unsupported_media_type", "content-type"),
    (
        "compressed body",
        body(),
        {**JSON, "content-encoding": "gzip"},
        415,
        "unsupported_media_type",
        "content-encoding",
    ),
    ("unknown model", body(model="gpt"), JSON, 422, "literal_error", "model"),
    (
        "id not a string or integer",
        with_field(ticket_id=[1]),
        JSON,
        422,
        "id_type",
        f"{R0}.ticket_id",
    ),
    ("id too long", with_field(ticket_id="i" * 257), JSON, 422, "id_type", f"{R0}.ticket_id"),
]


@pytest.fixture(scope="module")
def client(export_dir: Path) -> Any:
    with app_client(export_dir, max_records=8, max_body_bytes=6000) as client:
        wait_ready(client)
        yield client


def test_every_malformed_request_gets_its_4xx_json_and_a_valid_one_is_unchanged(
    client: Any,
) -> None:
    first = client.post("/v1/predict", content=body(), headers=JSON)
    assert first.status_code == 200
    for name, payload, headers, status, code, field in MALFORMED:
        reply = client.post("/v1/predict", content=payload, headers=headers)
        assert (reply.status_code, reply.headers["content-type"]) == (status, "application/json"), (
            name,
            reply.text[:300],
        )
        error = reply.json()["error"]
        assert (error["code"], error["field"]) == (code, field), (name, error)
        assert error["message"], name
    again = client.post("/v1/predict", content=body(), headers=JSON)
    assert again.status_code == 200 and again.content == first.content
    # Duplicate keys: the last value wins (documented in serving/http.py).
    duplicated = body().replace(b'"amount": 12.5', b'"amount": "x", "amount": 12.5')
    assert client.post("/v1/predict", content=duplicated, headers=JSON).content == first.content


def test_valid_variants_are_accepted_and_ids_echoed(client: Any) -> None:
    records = [
        {**VALID, "amount": None, "channel": None, "created_at": None, "review": None},
        {**VALID, "is_member": 1, "amount": 3, "ticket_id": "T-1"},
        {**VALID, "channel": "never seen", "created_at": "2024-05-01T13:45:00+02:00"},
        {**VALID, "created_at": "01-05-2024 13.45", "ticket_id": 7},  # the contract's format
    ]
    for model in ("baseline", "forest", "text_model"):
        out = client.post("/v1/predict", content=body(records, model=model), headers=JSON).json()
        assert out["model"] == model and len(out["predictions"]) == 4
        for p in out["predictions"]:
            assert set(p["probabilities"]) == {"no", "yes"}
            assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-6)
            expected = "yes" if p["probabilities"]["yes"] >= p["threshold"] else "no"
            assert p["label"] == expected and p["model"] == model and p["version"]
        assert [p.get("id") for p in out["predictions"]] == [None, "T-1", None, 7]
    default = client.post("/v1/predict", content=body(), headers=JSON).json()
    assert default["model"] == "baseline"  # the contract's champion


def test_the_label_comes_from_the_contracts_threshold(client: Any, export_dir: Path) -> None:
    records = reference_of(export_dir)["records"]
    out = client.post("/v1/predict", content=body(records[:8]), headers=JSON).json()
    yes = [p["probabilities"]["yes"] for p in out["predictions"]]
    assert all(p["threshold"] == THRESHOLD for p in out["predictions"])
    assert [p["label"] for p in out["predictions"]] == [
        "yes" if y >= THRESHOLD else "no" for y in yes
    ]
    assert any(THRESHOLD <= y < 0.5 for y in yes), "no borderline record in the fixture"


def test_multiclass_uses_class_weights_and_regression_returns_values(
    multiclass_dir: Path, regression_dir: Path
) -> None:
    with app_client(multiclass_dir) as client:
        wait_ready(client)
        records = reference_of(multiclass_dir)["records"][:20]
        for p in client.post("/v1/predict", content=body(records), headers=JSON).json()[
            "predictions"
        ]:
            weighted = {
                k: v * w for (k, v), w in zip(p["probabilities"].items(), WEIGHTS, strict=True)
            }
            assert p["label"] == max(weighted, key=weighted.__getitem__)
            assert "threshold" not in p
    with app_client(regression_dir) as client:
        wait_ready(client)
        records = reference_of(regression_dir)["records"][:5]
        out = client.post("/v1/predict", content=body(records), headers=JSON).json()
        for p in out["predictions"]:
            assert p["interval"] == pytest.approx([p["value"] - 1.5, p["value"] + 1.5])
        forest = client.post(
            "/v1/predict", content=body(records, model="forest"), headers=JSON
        ).json()
        assert all("interval" not in p and "value" in p for p in forest["predictions"])
        schema = client.get("/openapi.json").json()["components"]["schemas"]["Prediction"]
        assert {"value", "interval"} <= set(schema["properties"])


def test_routes_methods_metadata_and_offline_docs(client: Any) -> None:
    assert client.get("/nope").json()["error"]["code"] == "not_found"
    reply = client.get("/v1/predict")
    assert reply.status_code == 405 and reply.json()["error"]["code"] == "method_not_allowed"
    assert client.delete("/metadata").status_code == 405
    meta = client.get("/metadata").json()
    assert meta["champion"] == "baseline" and meta["models"]["baseline"]["version"] == "3"
    assert meta["models"]["baseline"]["decision"]["threshold"] == THRESHOLD
    text = json.dumps(meta)
    assert "/home/" not in text and "git_dirty" not in text and "tracking" not in text
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    # Offline: the page loads its scripts from this server, never from a CDN.
    assert b"cdn." not in docs.content and b'src="http' not in docs.content
    script = docs.text.split("swagger-ui-bundle.js")[0].rsplit('"', 1)[1] + "swagger-ui-bundle.js"
    assert client.get(script).status_code == 200
    spec = client.get("/openapi.json").json()
    record = spec["components"]["schemas"]["Record"]
    assert record["required"] == ["amount", "channel", "is_member", "created_at", "review"]
    assert record["properties"]["review"]["anyOf"][0]["maxLength"] == 5000
    assert "%d-%m-%Y %H.%M" in record["properties"]["created_at"]["description"]
    model = spec["components"]["schemas"]["PredictRequest"]["properties"]["model"]
    assert model["anyOf"][0]["enum"] == ["baseline", "forest", "text_model"]
    assert {"/v2/models/{name}/infer", "/v2/health/ready"} <= set(spec["paths"])


def test_metrics_count_requests_by_model_and_status(client: Any) -> None:
    client.post("/v1/predict", content=body(model="forest"), headers=JSON)
    client.post("/v1/predict", content=with_field(amount="x"), headers=JSON)
    metrics = client.get("/metrics").text
    assert 'serving_requests_total{model="forest",status="200"}' in metrics
    assert 'serving_requests_total{model="-",status="422"}' in metrics
    assert "serving_ready 1.0" in metrics
    assert 'serving_batch_size_records_count{model="forest"}' in metrics


def test_bearer_token_guards_predict_and_metadata_only(export_dir: Path) -> None:
    with app_client(export_dir, api_key="s3cret") as client:
        wait_ready(client)
        for path in ("/metadata", "/v2/models/baseline"):
            assert client.get(path).status_code == 401
        denied = client.post("/v1/predict", content=body(), headers=JSON)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert denied.json()["error"]["code"] == "unauthorized"
        wrong = {**JSON, "authorization": "Bearer nope"}
        assert client.post("/v1/predict", content=body(), headers=wrong).status_code == 401
        right = {**JSON, "authorization": "Bearer s3cret"}
        assert client.post("/v1/predict", content=body(), headers=right).status_code == 200
        assert client.get("/metadata", headers=right).status_code == 200
        for path in ("/health/ready", "/v2/health/live", "/metrics", "/docs"):
            assert client.get(path).status_code == 200


def test_readiness_turns_200_only_after_loading_and_warm_up(
    export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = serving.app.load_scorers

    def held(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(serving.app, "load_scorers", held)
    with app_client(export_dir) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
        busy = client.post("/v1/predict", content=body(), headers=JSON)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "not_ready"
        assert client.get("/v2/models/baseline/ready").status_code == 503
        gate.set()
        wait_ready(client)
        assert client.post("/v1/predict", content=body(), headers=JSON).status_code == 200


def test_full_queue_answers_503_with_retry_after_and_late_requests_504(
    export_dir: Path,
) -> None:
    # The text batcher waits 300 ms to fill a batch: 4 queued rows fill the queue.
    with app_client(export_dir, max_queue_records=4, max_wait_ms=300) as client:
        wait_ready(client)
        text = body(model="text_model")
        replies: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda: replies.append(
                    client.post("/v1/predict", content=text, headers=JSON)
                )
            )
            for _ in range(10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        statuses = sorted(r.status_code for r in replies)
        assert statuses.count(200) >= 4 and set(statuses) <= {200, 503}, statuses
        rejected = next(r for r in replies if r.status_code == 503)
        assert rejected.headers["retry-after"] == "1"
        assert rejected.json()["error"]["code"] == "overloaded"
    with app_client(export_dir, request_timeout_s=0.05, max_wait_ms=500) as client:
        wait_ready(client)
        started = time.monotonic()
        reply = client.post("/v1/predict", content=body(model="text_model"), headers=JSON)
        assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"
        assert time.monotonic() - started < 0.45  # answered at its deadline, not the batch's
        fast = client.post("/v1/predict", content=body(model="baseline"), headers=JSON)
        assert fast.status_code == 200  # tabular batches never wait
