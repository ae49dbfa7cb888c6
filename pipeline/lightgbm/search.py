"""Optional Optuna search over LightGBM's main hyperparameters, scored on the val split."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.common.evaluation import compute_metrics
from pipeline.common.tracking import Run
from pipeline.lightgbm.config import SEARCH_METRICS, LightGBMConfig

log = logging.getLogger(__name__)


def suggest(trial: Any) -> dict[str, Any]:
    """One point of the search space (LGBMClassifier argument names)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 255, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def search_params(
    config: LightGBMConfig,
    base_params: dict[str, Any],
    seed: int,
    data: dict[str, Any],
    n_classes: int,
    run: Run | None,
) -> dict[str, Any]:
    """Run the study (seeded TPE sampler); returns best params, best value and trial count."""
    import optuna

    from pipeline.lightgbm.core import fit_classifier

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = config.optuna.metric

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params, **suggest(trial)}
        clf = fit_classifier(params, seed, config.early_stopping_rounds, data)
        scores = compute_metrics(data["y_val"], clf.predict_proba(data["val"]), n_classes)
        if run is not None:
            with run.child(f"trial-{trial.number}") as child:
                child.log_params({**trial.params, "best_iteration": clf.best_iteration_})
                child.log_metrics({"val": scores})
        return scores[metric]

    maximize = SEARCH_METRICS[metric] == "maximize"
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    study.optimize(objective, n_trials=config.optuna.n_trials, timeout=config.optuna.timeout_s)
    result = {
        "metric": f"val_{metric}",
        "best_value": float(study.best_value),
        "best_params": dict(study.best_params),
        "n_trials": len(study.trials),
    }
    log.info(
        "optuna: best val %s=%.4f after %d trials", metric, study.best_value, len(study.trials)
    )
    if run is not None:
        run.log_params({f"best.{k}": v for k, v in study.best_params.items()})
        run.log_dict(result, "optuna_best.json")
    return result
