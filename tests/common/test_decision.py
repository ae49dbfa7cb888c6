"""Calibration and decisions: config refusals, calibration that helps, thresholds per objective."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.common import decision
from pipeline.common.decision import DecisionConfig, choose_threshold, fit_calibrator
from pipeline.common.errors import PipelineError
from pipeline.common.metrics import ece
from serving.schemas import FeatureSpec, Profile, SplitSettings


def profile(task: str, labels: list[str] | None = None) -> Profile:
    default = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "regression": []}[task]
    return Profile(
        data="t",
        source="t.csv",
        format="csv",
        task=task,
        target="y",
        id="id",  # type: ignore[arg-type]
        labels=labels if labels is not None else default,
        positive="yes" if task == "binary" else None,
        features=FeatureSpec(numeric=["x"]),
        rows_in=1,
        rows={},
        split=SplitSettings(method="hash", train=0.6, val=0.2, test=0.2),
        seed=0,
    )


@pytest.mark.parametrize(
    ("task", "node", "expected"),
    [
        ("regression", {"objective": "cost"}, "'objective' applies to classification"),
        ("regression", {"class_prior": {"a": 2.0}}, "'class_prior' applies to classification"),
        ("regression", {"calibration": "isotonic"}, "'calibration' applies to classification"),
        ("multiclass", {"objective": "accuracy"}, "'objective' sets a binary threshold"),
        ("multiclass", {"class_prior": {"zzz": 2.0}}, "class_prior must give positive weights"),
        ("multiclass", {"class_prior": {"a": 0.0}}, "class_prior must give positive weights"),
        ("binary", {"class_prior": {"yes": 2.0}}, "class_prior applies to multiclass"),
        ("binary", {"calibration": "platt"}, "calibration 'platt' is not one of"),
        ("binary", {"objective": "auc"}, "objective 'auc' is not one of"),
        ("binary", {"min_precision": 1.5}, "min_precision must lie in"),
        ("binary", {"threshold": 0.3}, "decision.threshold"),
    ],
)
def test_settings_the_task_cannot_use_are_refused_in_one_line(
    task: str, node: dict[str, object], expected: str
) -> None:
    with pytest.raises(PipelineError, match=expected) as caught:
        decision.settings(node, profile(task))
    assert "\n" not in str(caught.value) and "fix:" in str(caught.value)


def test_defaults_and_none_calibration_suit_regression() -> None:
    assert decision.settings(None, profile("regression")) == DecisionConfig()
    assert decision.settings({"calibration": "none"}, profile("regression")).calibration == "none"
    weights = decision.settings({"class_prior": {"b": 2.0}}, profile("multiclass")).class_prior
    assert weights == {"b": 2.0}


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary scores whose logits are three times too large, and labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    truth = 1 / (1 + np.exp(-rng.normal(-1.0, 1.5, n)))
    y = (rng.random(n) < truth).astype(np.int64)
    p = 1 / (1 + np.exp(-3 * np.log(truth / (1 - truth))))
    return np.column_stack([1 - p, p]), y


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_fitted_on_val_fixes_overconfident_scores_on_test(method: str) -> None:
    val, y_val = overconfident(4000, 0)
    test, y_test = overconfident(4000, 1)
    cal = fit_calibrator(val, y_val, profile("binary"), DecisionConfig(calibration=method))
    before = ece(test[:, 1], y_test == 1)
    after = ece(cal.apply(test)[:, 1], y_test == 1)
    assert before > 0.08 and after < 0.03 and after < before / 3
    np.testing.assert_allclose(cal.apply(test).sum(axis=1), 1.0)
    assert cal.spec.method == method and len(cal.parts()) == 1


def test_multiclass_calibration_renormalises_and_improves_top_class_ece() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1.2, (6000, 3))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in truth])
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    cal = fit_calibrator(sharp[:3000], y[:3000], profile("multiclass"), DecisionConfig())
    calibrated = cal.apply(sharp[3000:])
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    hit = sharp[3000:].argmax(axis=1) == y[3000:]
    assert ece(calibrated.max(axis=1), hit) < ece(sharp[3000:].max(axis=1), hit) / 2


def test_a_class_missing_from_val_cannot_be_calibrated() -> None:
    proba = np.full((10, 3), 1 / 3)
    with pytest.raises(PipelineError, match="class 'c' does not occur in the validation split"):
        fit_calibrator(proba, np.array([0, 1] * 5), profile("multiclass"), DecisionConfig())


def scores(n: int = 600, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    return np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), y


def confusion(score: np.ndarray, y: np.ndarray, cut: float) -> tuple[int, int, int, int]:
    pred = score >= cut
    return (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum(), (~pred & ~y).sum()


GAINS = {  # by brute force over every cut: tp, fp, fn, tn → value
    "f1": lambda tp, fp, fn, tn: 2 * tp / max(2 * tp + fp + fn, 1),
    "accuracy": lambda tp, fp, fn, tn: (tp + tn) / (tp + fp + fn + tn),
    "cost": lambda tp, fp, fn, tn: -(3.0 * fp + 7.0 * fn),
}


@pytest.mark.parametrize("objective", sorted(GAINS))
def test_the_threshold_reaches_the_best_value_of_its_objective(objective: str) -> None:
    score, y = scores()
    gain = GAINS[objective]
    t = choose_threshold(score, y, DecisionConfig(objective=objective, cost_fp=3.0, cost_fn=7.0))
    best = max(gain(*confusion(score, y, c)) for c in [*np.unique(score), np.inf])
    assert gain(*confusion(score, y, t)) == pytest.approx(best)
    assert t not in set(score)  # halfway between two validation scores


def test_recall_at_precision_keeps_the_precision_with_the_most_recall() -> None:
    score, y = scores()
    t = choose_threshold(
        score, y, DecisionConfig(objective="recall_at_precision", min_precision=0.6)
    )
    tp, fp, fn, _ = confusion(score, y, t)
    assert tp / (tp + fp) >= 0.6
    cuts = [confusion(score, y, c) for c in np.unique(score)]
    feasible = [tp / (tp + fn) for tp, fp, fn, _ in cuts if tp / max(tp + fp, 1) >= 0.6]
    assert tp / (tp + fn) == pytest.approx(max(feasible))


def test_costlier_misses_lower_the_threshold() -> None:
    score, y = scores()
    cheap = choose_threshold(score, y, DecisionConfig(objective="cost", cost_fn=1.0))
    dear = choose_threshold(score, y, DecisionConfig(objective="cost", cost_fn=10.0))
    assert dear < cheap


def test_class_prior_weights_move_the_argmax_but_not_the_probabilities() -> None:
    p = profile("multiclass")
    proba = np.array([[0.5, 0.3, 0.2], [0.2, 0.45, 0.35]])
    plain = decision.tune(proba, np.array([0, 1]), p, DecisionConfig())
    weighted = decision.tune(proba, np.array([0, 1]), p, DecisionConfig(class_prior={"c": 2.0}))
    assert plain is not None and weighted is not None
    assert decision.labels(proba, plain, p).tolist() == [0, 1]
    assert decision.labels(proba, weighted, p).tolist() == [0, 2]
    assert weighted.class_weights == [1.0, 1.0, 2.0] and weighted.kind == "argmax"


def test_binary_threshold_is_on_the_positive_class_whatever_its_position() -> None:
    p = profile("binary", labels=["yes", "no"])  # positive first
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    chosen = decision.tune(proba, np.array([0, 1]), p, DecisionConfig())
    assert chosen is not None and chosen.positive == "yes"
    assert decision.labels(proba, chosen, p).tolist() == [0, 1]
