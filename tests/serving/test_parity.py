"""Serving parity: predictions for raw records over HTTP equal the offline predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import (
    ServerProcess,
    post_json,
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
