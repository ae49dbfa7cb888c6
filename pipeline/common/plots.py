"""The plots of one model on the test split: PNGs with fixed bytes for the same predictions.

Classification: roc, pr, confusion (at the decision), reliability (calibration) and, for binary
tasks, precision/recall/F1 against the threshold with the chosen one marked. Regression:
predicted vs actual, residuals vs predicted, residual histogram. Both: feature importance when the
model has one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from pipeline.common.data import Predictions
from pipeline.common.decision import positive_index
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
) -> list[Path]:
    """Render every plot of the task into `out_dir`; offline (Agg), no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawers = (
        classification(pred, profile, decision) if profile.is_classification else regression(pred)
    )
    if importance:
        drawers["feature_importance"] = lambda ax: _importance(ax, importance)
    written = []
    for kind, draw in drawers.items():
        fig, ax = plt.subplots(figsize=(6, 7 if kind == "feature_importance" else 5))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Glyph")  # words in scripts the font lacks
                draw(ax)
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(loc="best", fontsize="small")
                fig.suptitle(title, fontsize="small")
                left = 0.4 if kind == "feature_importance" else 0.14
                fig.subplots_adjust(left=left, right=0.96, bottom=0.14, top=0.88)
                path = Path(out_dir) / f"{kind}.png"
                fig.savefig(path, dpi=100, metadata={"Software": None})  # no version, no date
            written.append(path)
        finally:
            plt.close(fig)
    return written


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
            fpr, tpr, _ = skm.roc_curve(y == k, proba[:, k])
            auc = skm.roc_auc_score(y == k, proba[:, k])
            ax.plot(fpr, tpr, label=f"{profile.labels[k]} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")

    def pr(ax: Any) -> None:
        for k in curves:
            precision, recall, _ = skm.precision_recall_curve(y == k, proba[:, k])
            ap = skm.average_precision_score(y == k, proba[:, k])
            ax.plot(recall, precision, label=f"{profile.labels[k]} (AP {ap:.3f})")
        ax.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))

    def confusion(ax: Any) -> None:
        classes = list(range(profile.n_classes))
        matrix = skm.confusion_matrix(y, labels, labels=classes)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            color = "white" if count > matrix.max() / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
        ax.set_xticks(classes, profile.labels, rotation=45, ha="right")
        ax.set_yticks(classes, profile.labels)
        ax.set(xlabel="predicted (at the decision)", ylabel="true", title="confusion matrix")

    def reliability(ax: Any) -> None:
        from sklearn.calibration import calibration_curve

        if binary:
            k = positive_index(profile)
            confidence, hit, what = proba[:, k], y == k, f"P({profile.labels[k]})"
        else:
            confidence, hit, what = proba.max(axis=1), proba.argmax(axis=1) == y, "top-class"
        rate, mean = calibration_curve(hit, confidence, n_bins=10, strategy="uniform")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.plot(mean, rate, marker="o", label=what)
        ax.set(xlabel="predicted probability", ylabel="observed frequency", title="reliability")

    drawers: dict[str, Drawer] = {"roc": roc, "pr": pr, "confusion": confusion}
    drawers["reliability"] = reliability
    if binary and decision is not None and decision.threshold is not None and curves:
        drawers["threshold"] = lambda ax: _threshold(
            ax, proba[:, curves[0]], y == curves[0], decision
        )
    return drawers


def _threshold(ax: Any, score: np.ndarray, hit: np.ndarray, decision: Decision) -> None:
    precision, recall, cuts = skm.precision_recall_curve(hit, score)
    precision, recall = precision[:-1], recall[:-1]
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(precision),
        where=precision + recall > 0,
    )
    for values, name in ((precision, "precision"), (recall, "recall"), (f1, "F1")):
        ax.plot(cuts, values, label=name)
    ax.axvline(
        decision.threshold,
        color="black",
        linestyle="--",
        linewidth=0.8,
        label=f"chosen {decision.threshold:.3f} ({decision.objective})",
    )
    ax.set(xlabel="threshold on P(positive)", ylabel="score", title="threshold", ylim=(0, 1.02))


def regression(pred: Predictions) -> dict[str, Drawer]:
    assert pred.values is not None
    y, v = pred.y_true, pred.values
    residual = y - v

    def actual(ax: Any) -> None:
        lo, hi = float(min(y.min(), v.min())), float(max(y.max(), v.max()))
        ax.scatter(y, v, s=6, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=0.8)
        ax.set(xlabel="actual", ylabel="predicted", title="predicted vs actual")

    def residuals(ax: Any) -> None:
        ax.scatter(v, residual, s=6, alpha=0.4)
        ax.axhline(0.0, linestyle="--", color="grey", linewidth=0.8)
        ax.set(xlabel="predicted", ylabel="actual - predicted", title="residuals")

    def histogram(ax: Any) -> None:
        ax.hist(residual, bins=50)
        ax.set(xlabel="actual - predicted", ylabel="rows", title="residual distribution")

    return {"predicted_vs_actual": actual, "residuals": residuals, "residual_histogram": histogram}


def _importance(ax: Any, importance: Mapping[str, float]) -> None:
    ranked = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:TOP_FEATURES][::-1]
    ax.barh([k for k, _ in ranked], [v for _, v in ranked])
    ax.set(xlabel="importance", title=f"top {len(ranked)} features")
