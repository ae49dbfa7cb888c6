"""One evaluation for every model: the metrics equal scikit-learn's, undefined ones are left out."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.common import metrics
from tests.common.test_decision import profile


def test_binary_metrics_are_those_of_the_positive_class_at_the_decision() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(int)
    p1 = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 500), 0.001, 0.999)
    proba = np.column_stack([1 - p1, p1])
    labels = (p1 >= 0.4).astype(int)  # a tuned threshold, not 0.5
    got = metrics.classification(y, proba, labels, profile("binary"))
    assert got["accuracy"] == skm.accuracy_score(y, labels)
    assert got["f1"] == skm.f1_score(y, labels)
    assert got["roc_auc"] == skm.roc_auc_score(y, p1)
    assert got["pr_auc"] == skm.average_precision_score(y, p1)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["brier"] == pytest.approx(np.mean((p1 - y) ** 2))
    assert 0 < got["ece"] < 0.5


def test_ece_is_the_row_weighted_gap_per_bin() -> None:
    confidence = np.array([0.05, 0.05, 0.95, 0.95, 0.55, 0.55])
    hit = np.array([0, 0, 1, 0, 1, 1])
    # bins: [0.0, 0.1) gap 0.05 (2 rows), [0.9, 1.0] gap 0.45 (2 rows), [0.5, 0.6) gap 0.45
    assert metrics.ece(confidence, hit) == pytest.approx((2 * 0.05 + 2 * 0.45 + 2 * 0.45) / 6)
    assert metrics.ece(np.array([1.0]), np.array([1])) == 0.0  # p = 1 falls in the last bin


def test_multiclass_scores_the_classes_present_and_leaves_nothing_undefined() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])  # class 2 absent
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.3, 0.5, 0.2],
            [0.5, 0.4, 0.1],
            [0.1, 0.8, 0.1],
        ]
    )
    got = metrics.classification(y, proba, proba.argmax(axis=1), profile("multiclass"))
    assert got["roc_auc"] == 1.0 and got["accuracy"] == 1.0
    assert got["f1"] == pytest.approx(
        skm.f1_score(y, proba.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0)
    )
    assert all(np.isfinite(v) for v in got.values())


def test_a_single_class_split_has_no_ranking_metrics() -> None:
    y = np.zeros(4, dtype=int)
    proba = np.array([[0.9, 0.1]] * 4)
    got = metrics.classification(y, proba, np.zeros(4, dtype=int), profile("binary"))
    assert "roc_auc" not in got and "pr_auc" not in got and got["accuracy"] == 1.0


def test_regression_metrics_leave_out_mape_when_a_target_is_zero() -> None:
    y = np.array([10.0, 20.0, 30.0, 40.0])
    v = np.array([12.0, 18.0, 33.0, 40.0])
    got = metrics.regression(y, v, np.column_stack([v - 2.5, v + 2.5]))
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((y - v) ** 2)))
    assert got["mae"] == pytest.approx(1.75) and got["r2"] == pytest.approx(skm.r2_score(y, v))
    assert got["mape"] == pytest.approx(np.mean(np.abs(y - v) / y))
    assert got["interval_coverage"] == 0.75
    assert "mape" not in metrics.regression(np.array([0.0, 1.0]), np.array([0.5, 1.0]), None)


def test_improvement_knows_which_way_each_metric_is_better() -> None:
    assert metrics.improvement("roc_auc", 0.9, 0.8) == pytest.approx(0.1)
    assert metrics.improvement("log_loss", 0.3, 0.4) == pytest.approx(0.1)
    assert metrics.improvement("rmse", 12.0, 10.0) == pytest.approx(-2.0)
    names = set(metrics.CLASSIFICATION_METRICS) | set(metrics.REGRESSION_METRICS)
    assert names >= metrics.HIGHER_IS_BETTER
