"""Typed configuration of the `lightgbm` stage (`configs/lightgbm/`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.common.tabular import TfidfConfig

ENCODINGS = ("auto", "target", "ordinal")
SEARCH_METRICS = {  # metric → optimisation direction
    "roc_auc": "maximize",
    "pr_auc": "maximize",
    "macro_f1": "maximize",
    "accuracy": "maximize",
    "log_loss": "minimize",
    "brier": "minimize",
}


@dataclass
class LGBMParams:
    """Keyword arguments of `lightgbm.LGBMClassifier` (the names are LightGBM's)."""

    n_estimators: int = 2000  # an upper bound: early stopping on val picks the number of trees
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    subsample: float = 0.8  # row bagging, re-drawn every `subsample_freq` iterations
    subsample_freq: int = 1
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    class_weight: str | None = "balanced"  # class-imbalance handling; null to switch it off
    # Early-stopping metric on val. null: auc (binary) / auc_mu (multiclass) — ranking metrics
    # that class_weight does not distort (weighted training inflates unweighted val log loss,
    # which then stops far too late).
    metric: str | None = None
    # Fixed thread count: float sums, hence splits, can depend on it, so it is part of the config.
    n_jobs: int = 2


@dataclass
class OptunaConfig:
    """Optional hyperparameter search; each trial is a nested MLflow run."""

    enabled: bool = False
    n_trials: int = 20
    timeout_s: int = 1800  # stop starting new trials after this many seconds
    metric: str = "roc_auc"  # on the val split; see SEARCH_METRICS


@dataclass
class LightGBMConfig:
    """`configs/lightgbm/`."""

    params: LGBMParams = field(default_factory=LGBMParams)
    early_stopping_rounds: int = 50
    # target: scikit-learn's cross-fitted TargetEncoder (best for high-cardinality columns;
    # binary tasks only, the one case skl2onnx 1.20 converts); ordinal: one integer code per
    # level (rare levels share one code, unseen ones get -1); auto: target when binary, else
    # ordinal. LightGBM's native categorical splits are avoided: onnxmltools cannot export them.
    categorical_encoding: str = "auto"
    min_frequency: int = 5  # ordinal: rarer levels in train share one code
    # Kept small: trees need few text columns.
    tfidf: TfidfConfig = field(default_factory=lambda: TfidfConfig(max_features=2000, min_df=5))
    optuna: OptunaConfig = field(default_factory=OptunaConfig)
