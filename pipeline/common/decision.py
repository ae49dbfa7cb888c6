"""From a model's scores to labels: calibration on the validation split (the same one is
appended to the graph), then a tuned binary threshold or a weighted multiclass argmax."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline.common.config import validate
from pipeline.common.errors import PipelineError
from serving.schemas import Calibration, Decision, Profile

log = logging.getLogger(__name__)
CALIBRATIONS = ("sigmoid", "isotonic", "none")
OBJECTIVES = ("f1", "accuracy", "cost", "recall_at_precision")
EPS = 1e-12  # probabilities are clipped to [EPS, 1 - EPS] before their logit (graph: the same)
WHERE = "configs/decision"


@dataclass
class DecisionConfig:
    """`configs/decision/`: how every model turns scores into probabilities and labels."""

    calibration: str = "sigmoid"  # sigmoid | isotonic | none; fitted on the validation split
    objective: str = "f1"  # binary threshold: f1 | accuracy | cost | recall_at_precision
    cost_fp: float = 1.0  # objective cost: the price of a false positive ...
    cost_fn: float = 1.0  # ... and of a false negative
    min_precision: float = 0.8  # objective recall_at_precision: the precision to keep
    class_prior: dict[str, float] | None = None  # multiclass: class → weight before the argmax


def settings(node: Any, profile: Profile) -> DecisionConfig:
    """The validated decision config, refused in one line where the task cannot use it."""
    config = validate(node if node is not None else {}, DecisionConfig, "decision")
    for key, allowed in (("calibration", CALIBRATIONS), ("objective", OBJECTIVES)):
        if getattr(config, key) not in allowed:
            _refuse(f"{key} '{getattr(config, key)}' is not one of {allowed}", "pick one")
    default = asdict(DecisionConfig())
    changed = [k for k, v in asdict(config).items() if v != default[k]]
    if profile.task == "regression":
        bad = [k for k in changed if k != "calibration" or config.calibration != "none"]
        if bad:
            _refuse(
                f"'{bad[0]}' applies to classification, but the task is regression",
                f"set decision.{bad[0]} back to its default",
            )
    elif profile.task == "multiclass":
        bad = [k for k in changed if k in {"objective", "cost_fp", "cost_fn", "min_precision"}]
        if bad:
            _refuse(
                f"'{bad[0]}' sets a binary threshold, but the task is multiclass (argmax)",
                "set it back to its default; weight classes with decision.class_prior instead",
            )
        unknown = sorted(set(config.class_prior or {}) - set(profile.labels))
        if unknown or any(w <= 0 for w in (config.class_prior or {}).values()):
            _refuse(
                f"class_prior must give positive weights to classes of {profile.labels}",
                f"fix {unknown or 'the weights'}",
            )
    elif config.class_prior is not None:
        _refuse(
            "class_prior applies to multiclass tasks; binary labels use a threshold",
            "remove decision.class_prior and pick decision.objective",
        )
    if not 0.0 < config.min_precision <= 1.0 or min(config.cost_fp, config.cost_fn) < 0:
        _refuse("min_precision must lie in (0, 1] and costs must be >= 0", "fix the values")
    return config


def _refuse(message: str, fix: str) -> NoReturn:
    raise PipelineError(message, where=WHERE, fix=fix)


def logit(proba: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of clipped probabilities, computed as the graph computes it."""
    p = np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0 - EPS)
    return np.asarray(np.log(p) - np.log(1.0 - p))


class Scores(ClassifierMixin, BaseEstimator):
    """Probabilities as a fitted classifier whose `decision_function` gives their logits."""

    def __init__(self, n_classes: int = 2) -> None:
        self.n_classes = n_classes

    def fit(self, X: Any, y: Any = None) -> Scores:
        self.classes_ = np.arange(self.n_classes)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        z = logit(X)
        return z[:, 1] if self.n_classes == 2 else z

    def predict(self, X: Any) -> np.ndarray:  # scikit-learn's validation asks for it
        return np.asarray(np.argmax(X, axis=1))


@dataclass(frozen=True)
class Calibrator:
    """Calibration fitted on validation probabilities; `fitted` is None for method none."""

    method: str
    fitted: Any = None  # CalibratedClassifierCV over Scores

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities [N, C] (the input itself when there is no calibration)."""
        if self.fitted is None:
            return np.asarray(proba, dtype=np.float64)
        return np.asarray(self.fitted.predict_proba(np.asarray(proba, dtype=np.float64)))

    def gain(self, proba: np.ndarray, step: float = 1e-6) -> float:
        """The steepest slope (at least 1) of calibrated against raw probabilities on these rows:
        a steep calibration magnifies a graph's float32 noise, so parity scales its tolerance."""
        p = np.asarray(proba, dtype=np.float64)
        if self.fitted is None or len(p) == 0:
            return 1.0
        base, slope = self.apply(p), 1.0
        for k in range(p.shape[1]):
            h = np.where(p[:, k] + step < 1.0, step, -step)
            moved = p.copy()
            moved[:, k] += h
            if p.shape[1] == 2:  # binary: the pair moves together, as probabilities do
                moved[:, 1 - k] -= h
            diff = np.abs(self.apply(moved) - base).max(axis=1) / step
            slope = max(slope, float(diff.max()))
        return slope

    def parts(self) -> list[Any]:
        """The per-class `_SigmoidCalibration`s or `IsotonicRegression`s (binary: one)."""
        return (
            [] if self.fitted is None else list(self.fitted.calibrated_classifiers_[0].calibrators)
        )

    @property
    def spec(self) -> Calibration:
        return Calibration(method=self.method)  # type: ignore[arg-type]


def fit_calibrator(
    proba: np.ndarray, y: np.ndarray, profile: Profile, config: DecisionConfig
) -> Calibrator:
    """Fit the configured calibration on validation probabilities (identity for regression)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    if not profile.is_classification or config.calibration == "none":
        return Calibrator("none")
    missing = sorted(set(range(profile.n_classes)) - set(np.unique(y).tolist()))
    if missing:
        raise PipelineError(
            f"class '{profile.labels[missing[0]]}' does not occur in the validation split, so "
            "its probability cannot be calibrated",
            where="data/processed/val.parquet",
            fix="give the split more rows (etl split settings) or set decision.calibration=none",
        )
    scores = FrozenEstimator(Scores(profile.n_classes).fit(None))
    fitted = CalibratedClassifierCV(scores, method=config.calibration).fit(proba, y)
    return Calibrator(config.calibration, fitted)


def positive_index(profile: Profile) -> int:
    """The binary class whose probability is thresholded: `profile.positive`, else the last."""
    return profile.labels.index(profile.positive) if profile.positive else len(profile.labels) - 1


def tune(
    proba: np.ndarray, y: np.ndarray, profile: Profile, config: DecisionConfig
) -> Decision | None:
    """The decision for calibrated validation probabilities (None for regression)."""
    if not profile.is_classification:
        return None
    if profile.task == "multiclass":
        prior = config.class_prior or {}
        weights = [float(prior.get(label, 1.0)) for label in profile.labels]
        return Decision(kind="argmax", objective="argmax", class_weights=weights)
    pos = positive_index(profile)
    threshold = choose_threshold(proba[:, pos], y == pos, config)
    return Decision(
        kind="threshold",
        objective=config.objective,
        threshold=threshold,
        positive=profile.labels[pos],
    )


def choose_threshold(score: np.ndarray, positive: np.ndarray, config: DecisionConfig) -> float:
    """The best threshold (positive when score >= it) for the objective, halfway below the chosen
    score so that float rounding between graph and native model cannot flip a validation row."""
    if positive.all() or not positive.any():
        return 0.5  # no ranking to tune on
    at = cut_scores(positive, score)
    reached = at["precision"] >= config.min_precision
    if config.objective == "recall_at_precision" and not reached.any():
        log.warning(
            "no threshold reaches precision %.3f on val; using the most precise",
            config.min_precision,
        )
    gain = {
        "f1": at["f1"],
        "accuracy": at["tp"] + at["tn"],
        "cost": -(at["fp"] * config.cost_fp + at["fn"] * config.cost_fn),
        "recall_at_precision": np.where(reached, at["recall"], at["precision"] - 1.0),
    }[config.objective]
    i, cuts = int(np.argmax(gain)), at["cut"]  # ties: the highest cut
    if i == 0:  # nothing positive
        return float(np.nextafter(1.0, 2.0)) if cuts[1] >= 1.0 else float((cuts[1] + 1) / 2)
    return float((cuts[i] + (cuts[i + 1] if i + 1 < len(cuts) else 0.0)) / 2)


def cut_scores(hit: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion counts, precision, recall and F1 at each distinct score as the cut, highest
    first, after a first cut (inf) that leaves every row negative."""
    from sklearn.metrics import confusion_matrix_at_thresholds

    _, fp, _, tp, cuts = confusion_matrix_at_thresholds(hit, score)
    tp, fp, n_pos = np.r_[0, tp], np.r_[0, fp], np.count_nonzero(hit)
    fn, tn = n_pos - tp, len(hit) - n_pos - fp
    rates = {"precision": tp / np.maximum(tp + fp, 1), "recall": tp / max(n_pos, 1)}
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return dict(cut=np.r_[np.inf, cuts], tp=tp, fp=fp, fn=fn, tn=tn, f1=f1, **rates)


def labels(proba: np.ndarray, decision: Decision, profile: Profile) -> np.ndarray:
    """Class index per row under the decision."""
    if decision.kind == "threshold":
        assert decision.threshold is not None
        pos = positive_index(profile)
        return np.where(proba[:, pos] >= decision.threshold, pos, 1 - pos).astype(np.int64)
    weights = np.asarray(decision.class_weights or [1.0] * proba.shape[1])
    return np.asarray(np.argmax(proba * weights, axis=1), dtype=np.int64)
