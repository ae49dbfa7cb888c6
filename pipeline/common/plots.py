"""The plots of one model on the test split: PNGs with fixed bytes for the same predictions."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from pipeline.common.data import Predictions
from pipeline.common.decision import cut_scores, positive_index
from serving.schemas import Decision, Profile

TOP_FEATURES = 20
Drawer = Callable[[Any], None]


def write_plots(
    title: str,
    pred: Predictions,
    profile: Profile,
    out_dir: Path,
    importance: Mapping[str, float],
    decision: Decision | None,
) -> None:
    """Render every plot of the task into `out_dir`, without pyplot's global state or a display."""
    from matplotlib.figure import Figure

    drawers = (
        classification(pred, profile, decision) if profile.is_classification else regression(pred)
    )
    if importance:
        drawers["feature_importance"] = lambda ax: _importance(ax, importance)
    for kind, draw in drawers.items():
        fig = Figure(figsize=(6, 7 if kind == "feature_importance" else 5), layout="constrained")
        ax = fig.subplots()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Glyph")  # words in scripts the font lacks
            draw(ax)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize="small")
            fig.suptitle(title, fontsize="small")
            # no version, no date: the same predictions give the same bytes
            fig.savefig(Path(out_dir) / f"{kind}.png", dpi=100, metadata={"Software": None})


def classification(
    pred: Predictions, profile: Profile, decision: Decision | None
) -> dict[str, Drawer]:
    assert pred.proba is not None and pred.labels is not None
    proba, y, labels = pred.proba, pred.y_true, pred.labels
    binary = profile.task == "binary"
    # Binary: the positive class; multiclass: each class against the rest.
    curves = [positive_index(profile)] if binary else list(range(profile.n_classes))
    curves = [k for k in curves if 0 < (y == k).sum() < len(y)]

    def roc(ax: Any) -> None:
        for k in curves:
            chance = k == curves[-1]
            skm.RocCurveDisplay.from_predictions(
                y == k, proba[:, k], name=profile.labels[k], ax=ax, plot_chance_level=chance
            )
        ax.set(title="ROC")

    def pr(ax: Any) -> None:
        for k in curves:
            skm.PrecisionRecallDisplay.from_predictions(
                y == k, proba[:, k], name=profile.labels[k], ax=ax
            )
        ax.set(title="precision-recall")

    def confusion(ax: Any) -> None:
        skm.ConfusionMatrixDisplay.from_predictions(
            y,
            labels,
            labels=list(range(profile.n_classes)),
            display_labels=profile.labels,
            ax=ax,
            cmap="Blues",
            colorbar=False,
            xticks_rotation=45,
        )
        ax.set(xlabel="predicted (at the decision)", title="confusion matrix")

    def reliability(ax: Any) -> None:
        from sklearn.calibration import CalibrationDisplay

        if binary:
            k = positive_index(profile)
            confidence, hit, what = proba[:, k], y == k, f"P({profile.labels[k]})"
        else:
            confidence, hit, what = proba.max(axis=1), proba.argmax(axis=1) == y, "top-class"
        CalibrationDisplay.from_predictions(hit, confidence, n_bins=10, name=what, ax=ax)
        ax.set(title="reliability")

    drawers: dict[str, Drawer] = dict(roc=roc, pr=pr, confusion=confusion, reliability=reliability)
    if binary and decision is not None and decision.threshold is not None and curves:
        drawers["threshold"] = lambda ax: _threshold(
            ax, proba[:, curves[0]], y == curves[0], decision
        )
    return drawers


def _threshold(ax: Any, score: np.ndarray, hit: np.ndarray, decision: Decision) -> None:
    at = cut_scores(hit, score)
    for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        ax.plot(at["cut"][1:], at[key][1:], label=name)
    chosen = f"chosen {decision.threshold:.3f} ({decision.objective})"
    ax.axvline(decision.threshold, color="black", linestyle="--", linewidth=0.8, label=chosen)
    ax.set(xlabel="threshold on P(positive)", ylabel="score", title="threshold", ylim=(0, 1.02))


def regression(pred: Predictions) -> dict[str, Drawer]:
    assert pred.values is not None
    y, v = pred.y_true, pred.values

    def errors(kind: str, title: str) -> Drawer:
        def draw(ax: Any) -> None:
            points = {"s": 6, "alpha": 0.4}
            skm.PredictionErrorDisplay.from_predictions(
                y, v, kind=kind, subsample=None, ax=ax, scatter_kwargs=points
            )
            ax.set(title=title)

        return draw

    def histogram(ax: Any) -> None:
        ax.hist(y - v, bins=50)
        ax.set(xlabel="actual - predicted", ylabel="rows", title="residual distribution")

    return {
        "predicted_vs_actual": errors("actual_vs_predicted", "predicted vs actual"),
        "residuals": errors("residual_vs_predicted", "residuals"),
        "residual_histogram": histogram,
    }


def _importance(ax: Any, importance: Mapping[str, float]) -> None:
    ranked = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:TOP_FEATURES][::-1]
    ax.barh([k for k, _ in ranked], [v for _, v in ranked])
    ax.set(xlabel="importance", title=f"top {len(ranked)} features")
