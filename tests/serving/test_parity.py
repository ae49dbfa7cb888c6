"""Serving parity: predictions for raw records over HTTP equal the offline predictions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.contract import load_contract, with_int8_text
from tests.serving.conftest import (
    ROOT,
    ServerProcess,
    call,
    post_json,
    start_app,
    start_server,
    stop_app,
    wait_ready,
)

MODELS = ("baseline", "lightgbm", "text_model")


def _served(
    url: str, records: list[dict[str, Any]], model: str, labels: list[str], batch: int
) -> np.ndarray:
    rows = []
    for start in range(0, len(records), batch):
        status, _, out = post_json(
            url + "/v1/predict", {"records": records[start : start + batch], "model": model}
        )
        assert status == 200, out
        rows += [[p["probabilities"][label] for label in labels] for p in out["predictions"]]
    return np.array(rows)


@pytest.mark.parametrize("model", MODELS)
def test_served_predictions_equal_offline_predictions(
    server: ServerProcess, reference: dict[str, Any], model: str
) -> None:
    labels = ["no", "yes"]
    want = np.array(reference[model])
    # Batches of 64, then one record per request: the text model pads differently in each.
    for batch in (64, 1):
        got = _served(server.url, reference["records"], model, labels, batch)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=f"{model}, batch {batch}")


def test_parity_on_the_pipeline_exports(tmp_path: Path) -> None:
    """The real exports, when `dvc repro` has produced them: the test split over HTTP."""
    export = ROOT / "models" / "export"
    test_split = ROOT / "data" / "processed" / "test.parquet"
    if not (export / "contract.json").is_file() or not test_split.is_file():
        pytest.skip("no pipeline exports yet (run `make repro`)")
    import polars as pl

    contract = json.loads((export / "contract.json").read_text())
    fields = [f["name"] for f in contract["input_schema"]]
    frame = pl.read_parquet(test_split).head(200)
    records = [
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
        for row in frame.select(fields).to_dicts()
    ]
    server = start_server(export, tmp_path)
    try:
        server.wait_ready(timeout=120)
        for model in contract["models"]:
            offline = pl.read_parquet(ROOT / "models" / model / "predictions_test.parquet")
            want = (
                offline.head(200)
                .select([f"proba_{i}" for i in range(len(contract["labels"]))])
                .to_numpy()
            )
            got = _served(server.url, records, model, contract["labels"], 64)
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=model)
    finally:
        assert server.terminate() == 0


def test_int8_text_model_is_served_when_asked(export_dir: Path, reference: dict[str, Any]) -> None:
    async def scenario() -> dict[str, Any]:
        app, task = await start_app(export_dir, with_int8_text(load_contract(export_dir)))
        await wait_ready(app)
        body = json.dumps({"records": reference["records"], "model": "text_model"}).encode()
        reply = await call(app, "POST", "/v1/predict", body)
        await stop_app(app, task)
        assert reply.status == 200, reply.body
        result: dict[str, Any] = reply.json()
        return result

    out = asyncio.run(scenario())
    assert out["version"] == "2+int8"
    got = np.array([[p["probabilities"][c] for c in ("no", "yes")] for p in out["predictions"]])
    fp32 = np.array(reference["text_model"])
    # int8 weights: close to fp32, but not equal (that would mean fp32 was served).
    assert 0 < np.abs(got - fp32).max() < 0.05
