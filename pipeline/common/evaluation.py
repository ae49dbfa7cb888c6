"""One evaluation for every model: metrics, confusion matrix, per-class report, predictions, plots.

Every model stage (baseline, LightGBM, the text model) hands its class probabilities for the
validation and test splits to `evaluate_model`, so `dvc metrics show` compares like with like and
the saved test predictions are the reference that export and serving parity are checked against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from pipeline.common.dataset import Profile
from pipeline.common.io import atomic_dir, atomic_path, write_json

METRICS = ("accuracy", "macro_f1", "log_loss", "roc_auc", "pr_auc", "brier")
PLOT_SPLIT = "test"  # plots describe the held-out split; val is used for early stopping


@dataclass(frozen=True)
class SplitPredictions:
    """A model's output on one split."""

    ids: np.ndarray  # id column values
    y_true: np.ndarray  # int class indices into profile.labels
    proba: np.ndarray  # [N, n_classes] float64, columns in profile.labels order

    def __post_init__(self) -> None:
        n = len(self.y_true)
        if self.proba.ndim != 2 or self.proba.shape[0] != n or len(self.ids) != n:
            raise ValueError(
                f"inconsistent predictions: ids {len(self.ids)}, y_true {n}, "
                f"proba {self.proba.shape}"
            )


def _one_vs_rest(y_true: np.ndarray, proba: np.ndarray, score: Any) -> float:
    """Macro average of a binary ranking score over classes that occur (and not all rows)."""
    if proba.shape[1] == 2:
        return float(score(y_true == 1, proba[:, 1])) if 0 < y_true.sum() < len(y_true) else 0.5
    values = [
        float(score(y_true == k, proba[:, k]))
        for k in range(proba.shape[1])
        if 0 < (y_true == k).sum() < len(y_true)
    ]
    # A split holding a single class has no ranking to score; 0.5 is chance level.
    return float(np.mean(values)) if values else 0.5


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1, log loss, ROC-AUC, PR-AUC (one-vs-rest macro) and Brier score."""
    y_true = np.asarray(y_true).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (len(y_true), n_classes):
        raise ValueError(f"proba shape {proba.shape} != ({len(y_true)}, {n_classes})")
    labels = list(range(n_classes))
    y_pred = proba.argmax(axis=1)
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "log_loss": log_loss(y_true, proba, labels=labels),
        "roc_auc": _one_vs_rest(y_true, proba, roc_auc_score),
        "pr_auc": _one_vs_rest(y_true, proba, average_precision_score),
        "brier": brier_score_loss(y_true, proba, labels=labels),
    }
    return {name: float(value) for name, value in metrics.items()}


def split_report(pred: SplitPredictions, profile: Profile) -> dict[str, Any]:
    """Metrics, confusion matrix (rows = true class) and per-class report for one split."""
    labels = list(range(profile.n_classes))
    y_pred = pred.proba.argmax(axis=1)
    report = classification_report(
        pred.y_true,
        y_pred,
        labels=labels,
        target_names=profile.labels,
        output_dict=True,
        zero_division=0,
    )
    return {
        "rows": len(pred.y_true),
        "metrics": compute_metrics(pred.y_true, pred.proba, profile.n_classes),
        "confusion_matrix": {
            "labels": profile.labels,
            "matrix": confusion_matrix(pred.y_true, y_pred, labels=labels).tolist(),
        },
        "per_class": report,
    }


def predictions_frame(pred: SplitPredictions, profile: Profile) -> pd.DataFrame:
    """Id, predicted class name and `proba_<i>` per class: the parity reference."""
    names = np.asarray(profile.labels, dtype=object)
    columns: dict[str, Any] = {
        profile.id: pred.ids,
        "label": names[pred.proba.argmax(axis=1)],
    }
    for k in range(profile.n_classes):
        columns[f"proba_{k}"] = pred.proba[:, k].astype(np.float64)
    return pd.DataFrame(columns)


def _curve_classes(profile: Profile) -> list[int]:
    # Binary: one curve for the positive class; multiclass: one curve per class (one-vs-rest).
    return [1] if profile.n_classes == 2 else list(range(profile.n_classes))


def _plot_roc(ax: Any, pred: SplitPredictions, profile: Profile) -> None:
    for k in _curve_classes(profile):
        positives = pred.y_true == k
        if 0 < positives.sum() < len(positives):
            fpr, tpr, _ = roc_curve(positives, pred.proba[:, k])
            auc = roc_auc_score(positives, pred.proba[:, k])
            ax.plot(fpr, tpr, label=f"{profile.labels[k]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")


def _plot_pr(ax: Any, pred: SplitPredictions, profile: Profile) -> None:
    for k in _curve_classes(profile):
        positives = pred.y_true == k
        if 0 < positives.sum() < len(positives):
            precision, recall, _ = precision_recall_curve(positives, pred.proba[:, k])
            ap = average_precision_score(positives, pred.proba[:, k])
            ax.plot(recall, precision, label=f"{profile.labels[k]} (AP {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))


def _plot_confusion(ax: Any, pred: SplitPredictions, profile: Profile) -> None:
    labels = list(range(profile.n_classes))
    matrix = confusion_matrix(pred.y_true, pred.proba.argmax(axis=1), labels=labels)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(labels, profile.labels, rotation=45, ha="right")
    ax.set_yticks(labels, profile.labels)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")


def _plot_calibration(ax: Any, pred: SplitPredictions, profile: Profile) -> None:
    # Binary: P(positive) against the positive rate; multiclass: top-label confidence.
    if profile.n_classes == 2:
        confidence, hit = pred.proba[:, 1], pred.y_true == 1
    else:
        confidence = pred.proba.max(axis=1)
        hit = pred.proba.argmax(axis=1) == pred.y_true
    bins = np.minimum((confidence * 10).astype(int), 9)
    used = [b for b in range(10) if (bins == b).any()]
    mean_conf = [confidence[bins == b].mean() for b in used]
    rate = [hit[bins == b].mean() for b in used]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.plot(mean_conf, rate, marker="o")
    ax.set(xlabel="predicted probability", ylabel="observed frequency", title="calibration")


def _plot_importance(ax: Any, importance: Mapping[str, float], top: int = 20) -> None:
    ranked = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    ax.barh([k for k, _ in ranked], [v for _, v in ranked])
    ax.set(xlabel="importance (total gain)", title=f"top {len(ranked)} features")


def write_plots(
    title: str,
    pred: SplitPredictions,
    profile: Profile,
    plots_dir: Path,
    feature_importance: Mapping[str, float] | None = None,
) -> list[Path]:
    """Render roc/pr/confusion/calibration (and feature_importance) PNGs; offline, no display."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    drawers: dict[str, Any] = {
        "roc": lambda ax: _plot_roc(ax, pred, profile),
        "pr": lambda ax: _plot_pr(ax, pred, profile),
        "confusion": lambda ax: _plot_confusion(ax, pred, profile),
        "calibration": lambda ax: _plot_calibration(ax, pred, profile),
    }
    if feature_importance:
        drawers["feature_importance"] = lambda ax: _plot_importance(ax, feature_importance)
    written = []
    for kind, draw in drawers.items():
        fig, ax = plt.subplots(figsize=(6, 5 if kind != "feature_importance" else 7))
        try:
            draw(ax)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize="small")
            fig.suptitle(title, fontsize="small")
            # Fixed margins instead of tight_layout, which renders every figure twice.
            left = 0.4 if kind == "feature_importance" else 0.14
            fig.subplots_adjust(left=left, right=0.96, bottom=0.14, top=0.88)
            path = Path(plots_dir) / f"{kind}.png"
            # No Software/date metadata: same predictions give byte-identical PNGs.
            fig.savefig(path, dpi=100, metadata={"Software": None})
            written.append(path)
        finally:
            plt.close(fig)
    return written


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    # JSON has no NaN; DVC and the report would choke on it.
    return {k: (v if math.isfinite(v) else -1.0) for k, v in metrics.items()}


def evaluate_model(
    name: str,
    profile: Profile,
    predictions: Mapping[str, SplitPredictions],
    model_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
    feature_importance: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Write predictions, evaluation.json, DVC metrics and plots for one model; return metrics.

    `predictions` maps split name ("val", "test") to that split's output. `model_dir` is
    normally the temporary directory of an `atomic_dir` block; the metrics file and the plots
    directory are replaced atomically here.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    evaluation: dict[str, Any] = {"model": name, "task": profile.task, "labels": profile.labels}
    metrics: dict[str, dict[str, float]] = {}
    for split, pred in predictions.items():
        with atomic_path(model_dir / f"predictions_{split}.parquet") as tmp:
            predictions_frame(pred, profile).to_parquet(tmp, index=False)
        evaluation[split] = split_report(pred, profile)
        metrics[split] = _finite(evaluation[split]["metrics"])
    write_json(model_dir / "evaluation.json", evaluation)
    write_json(metrics_path, metrics)
    plot_split = PLOT_SPLIT if PLOT_SPLIT in predictions else next(iter(predictions))
    with atomic_dir(plots_dir) as tmp_plots:
        write_plots(
            f"{name} ({plot_split})",
            predictions[plot_split],
            profile,
            tmp_plots,
            feature_importance,
        )
    return metrics
