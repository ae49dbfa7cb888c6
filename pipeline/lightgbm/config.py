"""Typed configuration of the `lightgbm` stage (`configs/lightgbm/`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.common.tabular import FeaturesConfig, TfidfConfig

OBJECTIVES = ("l2", "l1", "huber", "quantile")  # regression; classification is binary/multiclass


@dataclass
class LGBMParams:
    """Keyword arguments of LGBMClassifier / LGBMRegressor (LightGBM's names)."""

    n_estimators: int = 2000  # an upper bound: early stopping on val picks the number of trees
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    subsample: float = 0.8  # row bagging, re-drawn every `subsample_freq` iterations
    subsample_freq: int = 1
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    # Fixed thread count: float sums, hence splits, can depend on it, so it is part of the config.
    n_jobs: int = 2


@dataclass
class OptunaConfig:
    """Optional search, scored by the early-stopping loss on val; each trial a nested run."""

    enabled: bool = False
    n_trials: int = 20
    timeout_s: int = 1800  # no new trial starts after this many seconds


def _features() -> FeaturesConfig:
    # Trees need no scaling and take NaN as it is; a small vocabulary is enough for them.
    tfidf = TfidfConfig(max_features=2000, min_df=5)
    return FeaturesConfig(numeric="passthrough", categorical="ordinal", tfidf=tfidf)


@dataclass
class LightGBMConfig:
    """`configs/lightgbm/`."""

    params: LGBMParams = field(default_factory=LGBMParams)
    objective: str = "l2"  # regression only: l2 | l1 | huber | quantile
    alpha: float = 0.5  # objective quantile: the quantile; huber: the loss's delta
    interval: list[float] | None = None  # regression: [lo, hi] quantiles → graph output interval
    early_stopping_rounds: int = 50
    features: FeaturesConfig = field(default_factory=_features)
    optuna: OptunaConfig = field(default_factory=OptunaConfig)
