"""Serving parity: predictions for raw records over HTTP equal the offline predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import ServerProcess, app_client, post_json, reference_of, wait_ready


@pytest.mark.parametrize("model", ["baseline", "forest", "text_model"])
def test_served_probabilities_equal_offline_predictions(
    server: ServerProcess, export_dir: Path, model: str
) -> None:
    reference = reference_of(export_dir)
    records, want = reference["records"], np.array(reference[model])
    # Batches of 64, then one record per request: the text model pads differently in each.
    for batch in (64, 1):
        rows = []
        for start in range(0, len(records), batch):
            status, _, out = post_json(
                server.url + "/v1/predict",
                {"records": records[start : start + batch], "model": model},
            )
            assert status == 200, out
            rows += [[p["probabilities"][k] for k in ("no", "yes")] for p in out["predictions"]]
        np.testing.assert_allclose(rows, want, atol=1e-5, rtol=0, err_msg=f"{model}, {batch}")


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_other_tasks_match_offline_predictions(
    task: str, multiclass_dir: Path, regression_dir: Path
) -> None:
    models = multiclass_dir if task == "multiclass" else regression_dir
    reference = reference_of(models)
    with app_client(models) as client:
        wait_ready(client)
        for model in [k for k in reference if k != "records"]:
            out = client.post(
                "/v1/predict", json={"records": reference["records"], "model": model}
            ).json()
            want = np.array(reference[model])
            if task == "regression":
                got = np.array([p["value"] for p in out["predictions"]])
                # Relative to max(1, |value|), as the export's parity for regression.
                assert (np.abs(got - want) / np.maximum(1, np.abs(want))).max() < 1e-5, model
            else:
                got = np.array([list(p["probabilities"].values()) for p in out["predictions"]])
                np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=model)
