"""The base rate, scored like every model, and bootstrap intervals of the headline test metric by
NumPy versions of `pipeline.common.metrics` (fast enough for 1,000 resamples; tested equal)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.common import metrics
from pipeline.common.data import Predictions
from pipeline.common.decision import positive_index
from serving.schemas import Profile

Statistic = Callable[[np.ndarray], float]  # row indices → metric value
# A model's standing on the headline metric (`standings`).
BEST, ONLY, TIED, BELOW = "best", "only model", "within noise of the best", "below the best"
NO_INTERVAL = "not ranked (no interval)"


def base_rate(test: Predictions, profile: Profile) -> tuple[Predictions, str]:
    """The base rate's predictions on a model's test rows, and what it predicts, in words."""
    n, y = len(test.y_true), test.y_true
    if not profile.is_classification:
        mean = profile.target_stats["train"].mean
        return Predictions(test.split, y, values=np.full(n, mean)), f"the training mean, {mean:.4g}"
    counts = profile.label_distribution["train"]
    prior = np.array([counts.get(label, 0) for label in profile.labels], dtype=np.float64)
    prior /= prior.sum()
    majority = int(prior.argmax())
    outputs = Predictions(test.split, y, np.tile(prior, (n, 1)), np.full(n, majority, np.int64))
    shares = ", ".join(f"{label} {p:.1%}" for label, p in zip(profile.labels, prior, strict=True))
    return outputs, f"the training prior ({shares}); labels: always {profile.labels[majority]}"


def statistic(metric: str, out: Predictions, profile: Profile) -> Statistic:
    """`metric` on a resample of the rows, by the formulas of `pipeline.common.metrics`."""
    y = out.y_true
    if out.values is not None:
        error = out.values - y
        regression: dict[str, Statistic] = {
            "rmse": lambda i: float(np.sqrt(np.mean(error[i] ** 2))),
            "mae": lambda i: float(np.mean(np.abs(error[i]))),
            "r2": lambda i: 1.0 - float(np.sum(error[i] ** 2) / np.sum((y[i] - y[i].mean()) ** 2)),
            "mape": lambda i: float(
                np.mean(np.abs(error[i]) / np.maximum(np.abs(y[i]), np.finfo(float).eps))
            ),
        }
        return regression[metric]
    assert out.proba is not None and out.labels is not None
    proba, labels, n_classes = out.proba, out.labels, out.proba.shape[1]
    binary = profile.task == "binary"
    pos = positive_index(profile) if binary else -1
    eps = np.finfo(np.float64).eps
    if binary:
        brier = (proba[:, pos] - (y == pos)) ** 2
        confidence, hit = proba[:, pos], y == pos
    else:
        brier = np.sum((np.eye(n_classes)[y] - proba) ** 2, axis=1)
        confidence, hit = proba.max(axis=1), proba.argmax(axis=1) == y
    loss = -np.log(np.clip(proba[np.arange(len(y)), y], eps, 1 - eps))
    ranked = [pos] if binary else list(range(n_classes))
    table: dict[str, Statistic] = {
        "accuracy": lambda i: float(np.mean(labels[i] == y[i])),
        "f1": lambda i: _f1(y[i], labels[i], ranked),
        "log_loss": lambda i: float(np.mean(loss[i])),
        "brier": lambda i: float(np.mean(brier[i])),
        "ece": lambda i: metrics.ece(confidence[i], hit[i]),
        "roc_auc": _one_vs_rest([_ranking(y == k, proba[:, k], "roc_auc") for k in ranked]),
        "pr_auc": _one_vs_rest([_ranking(y == k, proba[:, k], "pr_auc") for k in ranked]),
    }
    return table[metric]


def _f1(y: np.ndarray, labels: np.ndarray, classes: list[int]) -> float:
    """F1 of one class, or the macro average; 0 where a class has no true or predicted rows."""
    values = []
    for k in classes:
        tp = np.count_nonzero((labels == k) & (y == k))
        wrong = np.count_nonzero(labels == k) + np.count_nonzero(y == k) - 2 * tp
        values.append(2 * tp / (2 * tp + wrong) if tp or wrong else 0.0)
    return float(np.mean(values))


def _one_vs_rest(per_class: list[Statistic]) -> Statistic:
    """The mean over the classes present and absent in the resample (NaN when there is none)."""

    def stat(rows: np.ndarray) -> float:
        values = [v for v in (f(rows) for f in per_class) if not np.isnan(v)]
        return float(np.mean(values)) if values else np.nan

    return stat


def _ranking(hit: np.ndarray, score: np.ndarray, metric: str) -> Statistic:
    """ROC-AUC or average precision of `score` for `hit` on resampled rows."""
    # Tied scores grouped once (ascending); a resample only weighs each row by how often it was
    # drawn, so it costs a few linear passes instead of a sort.
    groups, group = np.unique(score, return_inverse=True)

    def stat(rows: np.ndarray) -> float:
        weight = np.bincount(rows, minlength=len(score)).astype(np.float64)
        pos = np.bincount(group, weight * hit, len(groups))
        neg = np.bincount(group, weight * ~hit, len(groups))
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return np.nan
        if metric == "roc_auc":  # Mann-Whitney: ties count a half
            return float(np.sum(pos * (np.cumsum(neg) - neg + 0.5 * neg)) / (n_pos * n_neg))
        drawn = (pos + neg)[::-1] > 0  # thresholds from the highest score down
        tp, fp = np.cumsum(pos[::-1])[drawn], np.cumsum(neg[::-1])[drawn]
        return float(np.sum(np.diff(np.r_[0.0, tp / n_pos]) * tp / (tp + fp)))

    return stat


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap(
    statistics: dict[str, Statistic], n_rows: int, resamples: int, seed: int
) -> dict[str, Interval | None]:
    """Paired 95% percentile intervals; None when under half the resamples give a value."""
    out: dict[str, Interval | None] = {}
    for name, stat in statistics.items():
        rng = np.random.default_rng(seed)  # the same resamples for every statistic: paired
        with np.errstate(divide="ignore", invalid="ignore"):
            found = np.array([stat(rng.integers(0, n_rows, n_rows)) for _ in range(resamples)])
        finite = found[np.isfinite(found)]
        enough = len(finite) * 2 >= resamples
        out[name] = Interval(*np.percentile(finite, [2.5, 97.5]).tolist()) if enough else None
    return out


def standings(
    points: dict[str, float], intervals: dict[str, Interval | None], metric: str
) -> dict[str, str]:
    """Per model: best, within noise of the best (overlapping intervals) or below the best."""
    best = max(points, key=lambda n: metrics.improvement(metric, points[n], 0.0))
    top = intervals.get(best)
    out = {}
    for name in points:
        mine = intervals.get(name)
        if name == best:
            out[name] = BEST if len(points) > 1 else ONLY
        elif top is None or mine is None:
            out[name] = NO_INTERVAL
        elif mine.low <= top.high and top.low <= mine.high:
            out[name] = TIED
        else:
            out[name] = BELOW
    return out
