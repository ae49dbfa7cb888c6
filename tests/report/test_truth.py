"""The report's fast metric formulas equal `pipeline.common.metrics`; intervals, standings."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.common.data import Predictions, Split
from pipeline.common.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, evaluate
from pipeline.report.truth import Interval, bootstrap, standings, statistic
from serving.schemas import FeatureSpec, Profile, SplitSettings


def profile(task: str, labels: list[str], positive: str | None = None) -> Profile:
    return Profile(
        data="d", source="s", format="csv", task=task, target="t", id="id", labels=labels,  # type: ignore[arg-type]
        positive=positive, features=FeatureSpec(), rows_in=1, rows={},
        split=SplitSettings(method="hash", train=0.6, val=0.2, test=0.2), seed=0,
    )  # fmt: skip


def outputs(y: np.ndarray, *args: np.ndarray, **kwargs: np.ndarray) -> Predictions:
    """Predictions on test rows numbered 0..n-1."""
    return Predictions(Split("test", {}, y, np.arange(len(y))), y, *args, **kwargs)


@pytest.mark.parametrize(
    ("labels", "positive"),
    [(["no", "yes"], "yes"), (["yes", "no"], "yes"), (["a", "b", "c"], None)],
)
def test_statistics_equal_the_pipeline_metrics(labels: list[str], positive: str | None) -> None:
    rng = np.random.default_rng(3)
    n, k = 500, len(labels)
    task = "binary" if k == 2 else "multiclass"
    spec = profile(task, labels, positive)
    raw = np.round(rng.random((n, k)), 1) + 0.01  # coarse: many tied scores
    proba = raw / raw.sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    out = outputs(y, proba, predicted)
    rows = np.arange(n)
    full = evaluate(out, spec)
    assert set(full) == set(CLASSIFICATION_METRICS)
    for metric, value in full.items():
        assert statistic(metric, out, spec)(rows) == pytest.approx(value, rel=1e-12, abs=1e-12), (
            metric
        )
    resample = rng.integers(0, n, n)  # with repeats, as the bootstrap draws them
    again = evaluate(outputs(y[resample], proba[resample], predicted[resample]), spec)
    assert set(again) == set(CLASSIFICATION_METRICS)  # `evaluate` drops a non-finite metric
    for metric, value in again.items():
        assert statistic(metric, out, spec)(resample) == pytest.approx(
            value, rel=1e-12, abs=1e-12
        ), metric


def test_regression_statistics_equal_the_pipeline_metrics() -> None:
    rng = np.random.default_rng(4)
    y = rng.lognormal(3, 1, 300)
    out = outputs(y, values=y * rng.normal(1, 0.2, 300))
    spec = profile("regression", [])
    full = evaluate(out, spec)
    assert set(full) == set(REGRESSION_METRICS)
    for metric, value in full.items():
        assert statistic(metric, out, spec)(np.arange(300)) == pytest.approx(value, rel=1e-12), (
            metric
        )


def test_bootstrap_is_seeded_paired_and_honest_about_width() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    near, far = outputs(y, values=y + rng.normal(0, 1, 2000)), outputs(y, values=y + 3.0)
    spec = profile("regression", [])
    stats = {"near": statistic("mae", near, spec), "far": statistic("mae", far, spec)}
    first = bootstrap(stats, len(y), 300, seed=1)
    assert first == bootstrap(stats, len(y), 300, seed=1)
    assert first != bootstrap(stats, len(y), 300, seed=2)
    near_ci, far_ci = first["near"], first["far"]
    assert near_ci is not None and far_ci is not None
    assert near_ci.low < 0.7979 < near_ci.high  # E|N(0, 1)| = sqrt(2 / pi)
    assert far_ci.low == pytest.approx(3.0) and far_ci.high == pytest.approx(3.0)
    small = bootstrap({"near": stats["near"]}, 2000, 300, seed=1)["near"]
    assert small == near_ci  # the same resamples whatever else is bootstrapped


def test_standings_do_not_rank_overlapping_intervals() -> None:
    points = {"a": 0.90, "b": 0.88, "c": 0.70}
    intervals = {"a": Interval(0.87, 0.93), "b": Interval(0.85, 0.91), "c": Interval(0.65, 0.75)}
    assert standings(points, intervals, "roc_auc") == {
        "a": "best", "b": "within noise of the best", "c": "below the best"
    }  # fmt: skip
    errors = {"a": 10.0, "b": 12.0}  # rmse: lower is better
    assert (
        standings(errors, {"a": Interval(9, 11), "b": Interval(11.5, 12.5)}, "rmse")["a"] == "best"
    )
    assert standings({"a": 0.9}, {"a": None}, "roc_auc") == {"a": "only model"}
    assert standings(points, {**intervals, "b": None}, "roc_auc")["b"] == "not ranked (no interval)"
