"""On 10,000 tickets (2,000 test rows, enough to read an ECE), both tabular models are calibrated
within 0.03, beat the base rate on log loss and Brier, and LightGBM beats the linear baseline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from pipeline.baseline.core import Baseline
from pipeline.lightgbm.core import LightGBM
from tests.common.processed import Trained

ROWS = 10_000


@pytest.mark.slow
def test_binary_probabilities_are_calibrated_and_lightgbm_wins(
    trained: Callable[..., Trained],
) -> None:
    runs = {
        name: trained(cls, name, "binary", n=ROWS)
        for name, cls in (("baseline", Baseline), ("lightgbm", LightGBM))
    }
    split = runs["baseline"].paths.processed_dir
    p = pd.read_parquet(split / "train.parquet")["__label__"].mean()
    y = pd.read_parquet(split / "test.parquet")["__label__"].to_numpy()
    base_log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    for run in runs.values():
        test = run.scores["test"]
        assert test["ece"] <= 0.03
        assert test["log_loss"] < base_log_loss and test["brier"] < np.mean((p - y) ** 2)
        assert test["accuracy"] > max(y.mean(), 1 - y.mean())
    assert runs["lightgbm"].scores["test"]["roc_auc"] > runs["baseline"].scores["test"]["roc_auc"]


@pytest.mark.slow
def test_regression_lightgbm_beats_the_baseline_and_both_beat_the_mean(
    trained: Callable[..., Trained],
) -> None:
    boosted = trained(LightGBM, "lightgbm", "regression", n=ROWS)
    linear = trained(Baseline, "baseline", "regression", n=ROWS)
    y = pd.read_parquet(linear.paths.processed_dir / "test.parquet")["__label__"]
    mean = pd.read_parquet(linear.paths.processed_dir / "train.parquet")["__label__"].mean()
    mean_rmse = float(np.sqrt(np.mean((y - mean) ** 2)))
    assert boosted.scores["test"]["rmse"] < linear.scores["test"]["rmse"] < mean_rmse
