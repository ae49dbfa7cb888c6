"""The Open Inference Protocol (v2), driven by tritonclient, answers as /v1/predict does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import ServerProcess, app_client, post_json, reference_of, wait_ready

FIELDS = (
    ("amount", "FP64"),
    ("channel", "BYTES"),
    ("is_member", "BOOL"),
    ("created_at", "BYTES"),
    ("review", "BYTES"),
)


def triton_inputs(records: list[dict[str, Any]], binary: bool) -> list[Any]:
    """One tensor per column; missing values: NaN (binary FP64) and "" (BYTES)."""
    import tritonclient.http as httpclient

    inputs = []
    for name, datatype in FIELDS:
        values = [r[name] for r in records]
        if datatype == "FP64":
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif datatype == "BOOL":
            array = np.array(values, dtype=bool)
        else:
            array = np.array(["" if v is None else v for v in values], dtype=object)
        tensor = httpclient.InferInput(name, [len(values), 1], datatype)
        tensor.set_data_from_numpy(array.reshape(-1, 1), binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("model", ["baseline", "text_model"])
def test_tritonclient_gets_the_same_probabilities_as_v1(
    server: ServerProcess, export_dir: Path, model: str
) -> None:
    import tritonclient.http as httpclient

    records = reference_of(export_dir)["records"]
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(model)
    meta = client.get_model_metadata(model)
    assert [i["name"] for i in meta["inputs"]] == [name for name, _ in FIELDS]
    status, _, v1 = post_json(server.url + "/v1/predict", {"records": records, "model": model})
    assert status == 200
    want = np.array([[p["probabilities"][k] for k in ("no", "yes")] for p in v1["predictions"]])
    labels = [p["label"] for p in v1["predictions"]]
    # Binary tensors carry the missing numbers as NaN; JSON ones cannot, so those rows go
    # through binary only.
    plain = [i for i, r in enumerate(records) if r["amount"] is not None]
    for binary, rows in ((True, list(range(len(records)))), (False, plain)):
        result = client.infer(model, triton_inputs([records[i] for i in rows], binary))
        # (the text model pads differently for other row sets: float32 rounding)
        np.testing.assert_allclose(result.as_numpy("probabilities"), want[rows], atol=1e-6)
        assert [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")] == [
            labels[i] for i in rows
        ]
        assert result.get_response()["parameters"]["threshold"] == v1["predictions"][0]["threshold"]


def test_json_nulls_are_missing_values(server: ServerProcess) -> None:
    inputs = [
        {"name": "amount", "shape": [2, 1], "datatype": "FP64", "data": [None, 12.5]},
        {"name": "channel", "shape": [2], "datatype": "BYTES", "data": [None, "email"]},
        {"name": "is_member", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {
            "name": "created_at",
            "shape": [2],
            "datatype": "BYTES",
            "data": [None, "01-05-2024 13.45"],
        },
        {"name": "review", "shape": [2, 1], "datatype": "BYTES", "data": [[None], ["great"]]},
    ]
    status, _, v2 = post_json(server.url + "/v2/models/forest/infer", {"id": "a", "inputs": inputs})
    assert status == 200 and v2["id"] == "a" and v2["model_name"] == "forest"
    records = [{t["name"]: json.loads(json.dumps(t["data"]))[i] for t in inputs} for i in (0, 1)]
    records[1]["review"] = "great"
    records[0]["review"] = None
    status, _, v1 = post_json(server.url + "/v1/predict", {"records": records, "model": "forest"})
    proba = [p["probabilities"][k] for p in v1["predictions"] for k in ("no", "yes")]
    by_name = {o["name"]: o for o in v2["outputs"]}
    assert by_name["probabilities"]["shape"] == [2, 2]
    assert by_name["probabilities"]["data"] == proba


V2_ERRORS = [
    ("unknown input", {"name": "colour"}, 422, "unknown_input", "inputs.colour"),
    (
        "wrong datatype",
        {"name": "amount", "datatype": "BYTES", "data": ["1"]},
        422,
        "wrong_datatype",
        "inputs.amount",
    ),
    (
        "wrong shape",
        {"name": "amount", "shape": [1, 2], "data": [1.0, 2.0]},
        422,
        "wrong_shape",
        "inputs.amount",
    ),
    (
        "shape and data disagree",
        {"name": "amount", "shape": [3], "data": [1.0]},
        422,
        "wrong_shape",
        "inputs.amount",
    ),
    (
        "string in a number tensor",
        {"name": "amount", "data": ["1"]},
        422,
        "wrong_type",
        "inputs.amount",
    ),
    (
        "poison datetime",
        {"name": "created_at", "datatype": "BYTES", "data": ["0001-01-01T00:00:00+01:00"]},
        422,
        "invalid_value",
        "inputs.created_at[0]",
    ),
]


def _tensors(**change: Any) -> list[dict[str, Any]]:
    base = {
        "amount": {"datatype": "FP64", "data": [1.0]},
        "channel": {"datatype": "BYTES", "data": ["email"]},
        "is_member": {"datatype": "BOOL", "data": [True]},
        "created_at": {"datatype": "BYTES", "data": [None]},
        "review": {"datatype": "BYTES", "data": ["ok"]},
    }
    tensors = [{"name": n, "shape": [1], **t} for n, t in base.items()]
    name = change.get("name")
    tensors = [t for t in tensors if t["name"] != name]
    return [*tensors, {"shape": [1], "datatype": "FP64", "data": [1.0], **change}]


def test_bad_tensors_get_422_naming_the_tensor(export_dir: Path) -> None:
    with app_client(export_dir) as client:
        wait_ready(client)
        good = client.post("/v2/models/baseline/infer", json={"inputs": _tensors(name="amount")})
        assert good.status_code == 200
        for what, change, status, code, field in V2_ERRORS:
            reply = client.post("/v2/models/baseline/infer", json={"inputs": _tensors(**change)})
            error = reply.json()["error"]
            assert (reply.status_code, error["code"], error["field"]) == (status, code, field), what
        missing = [t for t in _tensors(name="amount") if t["name"] != "review"]
        reply = client.post("/v2/models/baseline/infer", json={"inputs": missing})
        assert reply.json()["error"]["field"] == "inputs.review"
        unknown = client.post("/v2/models/nope/infer", json={"inputs": _tensors(name="amount")})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_model"
        assert client.get("/v2/models/nope").status_code == 404
        assert client.get("/v2/models/baseline/versions/9").status_code == 404
        assert client.get("/v2/models/baseline/versions/3").json()["versions"] == ["3"]
        text = client.post(
            "/v2/models/baseline/infer",
            content=json.dumps({"inputs": _tensors(name="amount")}),
            headers={"content-type": "text/plain"},
        )
        assert text.status_code == 415
