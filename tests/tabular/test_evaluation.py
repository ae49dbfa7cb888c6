"""The shared evaluation: metrics equal scikit-learn's; every output file follows the contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pipeline.common.dataset import Profile
from pipeline.common.evaluation import SplitPredictions, compute_metrics, evaluate_model


def _random_proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    logits = rng.normal(size=(n, k))
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _profile(labels: list[str]) -> Profile:
    return Profile(
        task="binary" if len(labels) == 2 else "multiclass",
        target="y",
        id="row_id",
        labels=labels,
        numeric=["x"],
        categorical=[],
        text=None,
        datetime=[],
        derived=[],
        rows={},
    )


def test_binary_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    proba = _random_proba(rng, 500, 2)
    proba[:, 1] = np.clip(proba[:, 1] + 0.3 * y, 0, 1)  # some signal
    proba[:, 0] = 1 - proba[:, 1]
    got = compute_metrics(y, proba, 2)
    pred = proba.argmax(axis=1)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "log_loss": skm.log_loss(y, proba),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "pr_auc": skm.average_precision_score(y, proba[:, 1]),
        "brier": skm.brier_score_loss(y, proba[:, 1]),
    }
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.6 < got["roc_auc"] < 1.0


def test_multiclass_metrics_equal_sklearn_one_vs_rest() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 800)
    proba = _random_proba(rng, 800, 4)
    got = compute_metrics(y, proba, 4)
    pred = proba.argmax(axis=1)
    onehot = np.eye(4)[y]
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "log_loss": skm.log_loss(y, proba),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "pr_auc": skm.average_precision_score(onehot, proba, average="macro"),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
    }
    assert got == pytest.approx(expected, abs=1e-12)


def test_multiclass_split_missing_a_class_still_scores() -> None:
    # A small test split may lack a class; one-vs-rest averages over the classes present.
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)  # class 2 never occurs
    proba = _random_proba(rng, 300, 3)
    got = compute_metrics(y, proba, 3)
    per_class = [skm.roc_auc_score(y == k, proba[:, k]) for k in (0, 1)]
    assert got["roc_auc"] == pytest.approx(np.mean(per_class))
    assert all(np.isfinite(v) for v in got.values())


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="proba shape"):
        compute_metrics(np.array([0, 1]), np.ones((2, 3)) / 3, 2)
    with pytest.raises(ValueError, match="inconsistent"):
        SplitPredictions(ids=np.arange(3), y_true=np.array([0, 1]), proba=np.ones((2, 2)) / 2)


@pytest.mark.parametrize("labels", [["neg", "pos"], ["a", "b", "c"]])
def test_evaluate_model_writes_the_contract(tmp_path: Path, labels: list[str]) -> None:
    rng = np.random.default_rng(3)
    profile = _profile(labels)
    k = len(labels)
    predictions = {
        split: SplitPredictions(
            ids=np.arange(n) + 1000, y_true=rng.integers(0, k, n), proba=_random_proba(rng, n, k)
        )
        for split, n in (("val", 120), ("test", 150))
    }
    model_dir, metrics_path, plots = tmp_path / "m", tmp_path / "metrics.json", tmp_path / "plots"
    returned = evaluate_model(
        "toy", profile, predictions, model_dir, metrics_path, plots, {"x": 2.0, "y": 1.0}
    )

    on_disk = json.loads(metrics_path.read_text())
    assert on_disk == returned
    assert set(on_disk) == {"val", "test"}
    assert set(on_disk["test"]) == {
        "accuracy",
        "macro_f1",
        "log_loss",
        "roc_auc",
        "pr_auc",
        "brier",
    }
    test = predictions["test"]
    assert on_disk["test"] == pytest.approx(compute_metrics(test.y_true, test.proba, k))

    frame = pd.read_parquet(model_dir / "predictions_test.parquet")
    assert list(frame.columns) == ["row_id", "label", *[f"proba_{i}" for i in range(k)]]
    assert frame["row_id"].tolist() == list(range(1000, 1150))
    assert frame["label"].tolist() == [labels[i] for i in test.proba.argmax(axis=1)]
    np.testing.assert_array_equal(frame[[f"proba_{i}" for i in range(k)]].to_numpy(), test.proba)
    assert (model_dir / "predictions_val.parquet").is_file()

    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    matrix = np.array(evaluation["test"]["confusion_matrix"]["matrix"])
    assert matrix.shape == (k, k) and matrix.sum() == 150
    assert np.trace(matrix) == round(on_disk["test"]["accuracy"] * 150)
    assert set(labels) <= set(evaluation["test"]["per_class"])

    names = {p.name for p in plots.iterdir()}
    expected = {"roc.png", "pr.png", "confusion.png", "calibration.png", "feature_importance.png"}
    assert names == expected
    for png in plots.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp-*"))  # no temporary leftovers
