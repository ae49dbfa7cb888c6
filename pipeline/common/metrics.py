"""One evaluation for every model, so `dvc metrics show` and the report compare like with like.
Binary scores are of the positive class, multiclass ones macro (one-vs-rest over the classes
present); undefined values are left out (JSON has no NaN)."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

from pipeline.common.data import Predictions
from pipeline.common.decision import positive_index
from serving.schemas import Profile

ECE_BINS = 10


def evaluate(pred: Predictions, profile: Profile) -> dict[str, float]:
    """The metrics of one split's predictions."""
    if profile.is_classification:
        assert pred.proba is not None and pred.labels is not None
        scores = classification(pred.y_true, pred.proba, pred.labels, profile)
    else:
        assert pred.values is not None
        scores = regression(pred.y_true, pred.values, pred.interval)
    return {k: float(v) for k, v in scores.items() if math.isfinite(v)}


def classification(
    y: np.ndarray, proba: np.ndarray, labels: np.ndarray, profile: Profile
) -> dict[str, float]:
    """Label metrics at `labels`, probability metrics of `proba`."""
    classes = list(range(profile.n_classes))
    out = {"accuracy": skm.accuracy_score(y, labels)}
    if profile.task == "binary":
        pos = positive_index(profile)
        hit, p = y == pos, proba[:, pos]
        out["f1"] = skm.f1_score(hit, labels == pos, zero_division=0)
        if 0 < hit.sum() < len(hit):
            out["roc_auc"] = skm.roc_auc_score(hit, p)
            out["pr_auc"] = skm.average_precision_score(hit, p)
        out["brier"] = skm.brier_score_loss(hit, p)
        out["ece"] = ece(p, hit)
    else:
        out["f1"] = skm.f1_score(y, labels, labels=classes, average="macro", zero_division=0)
        present = [k for k in classes if 0 < (y == k).sum() < len(y)]
        if present:
            out["roc_auc"] = np.mean([skm.roc_auc_score(y == k, proba[:, k]) for k in present])
            out["pr_auc"] = np.mean(
                [skm.average_precision_score(y == k, proba[:, k]) for k in present]
            )
        out["brier"] = skm.brier_score_loss(y, proba, labels=classes)
        out["ece"] = ece(proba.max(axis=1), proba.argmax(axis=1) == y)
    out["log_loss"] = skm.log_loss(y, proba, labels=classes)
    return out


def ece(confidence: np.ndarray, hit: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the row-weighted |mean confidence - hit rate| per bin."""
    which = np.minimum((np.asarray(confidence) * bins).astype(np.int64), bins - 1)
    rows = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=np.asarray(confidence) - hit, minlength=bins)
    return float(np.abs(gap).sum() / max(rows.sum(), 1))


def regression(y: np.ndarray, values: np.ndarray, interval: np.ndarray | None) -> dict[str, float]:
    """Errors in the target's own units."""
    out = {
        "rmse": skm.root_mean_squared_error(y, values),
        "mae": skm.mean_absolute_error(y, values),
        "r2": skm.r2_score(y, values) if len(y) > 1 else math.nan,
    }
    if not (y == 0).any():
        out["mape"] = skm.mean_absolute_percentage_error(y, values)
    if interval is not None:
        out["interval_coverage"] = float(np.mean((interval[:, 0] <= y) & (y <= interval[:, 1])))
    return out


# Which way is better, for the champion gate (export) and the report's rankings.
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
HIGHER_IS_BETTER = frozenset({"accuracy", "f1", "roc_auc", "pr_auc", "r2"})


def improvement(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` in the metric's units (negative: worse)."""
    return new - old if metric in HIGHER_IS_BETTER else old - new
