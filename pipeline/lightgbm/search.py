"""Optional Optuna search over LightGBM's main hyperparameters, minimising `score(params)`: the
caller's early-stopping loss on val, what training itself optimises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.lightgbm.config import OptunaConfig

if TYPE_CHECKING:
    from pipeline.common.tracking import Run

log = logging.getLogger(__name__)
Params = dict[str, float | int]


@dataclass(frozen=True)
class SearchResult:
    best_params: Params
    best_score: float
    n_trials: int


def search(
    score: Callable[[Params], float], config: OptunaConfig, seed: int, run: Run | None
) -> SearchResult:
    """Minimise `score` with a seeded TPE sampler; trials are nested MLflow runs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        value = score(
            {
                "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
                "num_leaves": trial.suggest_int("num_leaves", 8, 255, log=True),
                "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
                "subsample": trial.suggest_float("subsample", 0.5, 1.0),
                "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
                "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            }
        )
        if run is not None:
            with run.child(f"trial-{trial.number}") as child:
                child.log_params(trial.params)
                child.log_metrics({"val": {"loss": value}})
        return value

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=config.n_trials, timeout=config.timeout_s)
    log.info("optuna: best val loss %.5f after %d trials", study.best_value, len(study.trials))
    return SearchResult(dict(study.best_params), float(study.best_value), len(study.trials))
