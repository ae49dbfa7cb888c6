"""LightGBM on upstream-encoded features: numerics as they are (LightGBM handles NaN), encoded
categoricals, a small TF-IDF of the text; early stopping on val, deterministic training."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, TargetEncoder

from pipeline.common.config import validate
from pipeline.common.dataset import PROCESSED_DIR, Profile, load_profile
from pipeline.common.errors import PipelineError
from pipeline.common.io import write_json
from pipeline.common.tabular import ModelPaths, Splits, build_tfidf, save_model
from pipeline.common.tracking import Run, start_run
from pipeline.lightgbm.config import ENCODINGS, SEARCH_METRICS, LightGBMConfig

NAME = "lightgbm"
UNKNOWN_CODE = -1
PROGRESS_EVERY = 100  # boosting rounds between progress lines

log = logging.getLogger(__name__)


def build_preprocessor(profile: Profile, config: LightGBMConfig, seed: int) -> ColumnTransformer:
    """Columns in, numeric matrix out; every step converts to ONNX with skl2onnx."""
    parts: list[tuple[str, Any, Any]] = [("numeric", "passthrough", profile.model_numeric)]
    if profile.categorical:
        encoder: Any
        if encoding(config, profile) == "target":
            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
            encoder = TargetEncoder(cv=folds)
        else:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=UNKNOWN_CODE,
                min_frequency=config.min_frequency,
                dtype=np.float64,
            )
        parts.append(("categorical", encoder, profile.categorical))
    if profile.text:
        # The column as a name, not a list: TF-IDF wants 1-D input.
        parts.append(("text", build_tfidf(config.tfidf), profile.text))
    return ColumnTransformer(parts)


def encoding(config: LightGBMConfig, profile: Profile) -> str:
    """The categorical encoding in effect ("auto" resolved by task)."""
    if config.categorical_encoding == "auto":
        return "target" if profile.n_classes == 2 else "ordinal"
    return config.categorical_encoding


def feature_names(preprocessor: ColumnTransformer) -> list[str]:
    """Transformed feature names, made safe for LightGBM (no JSON special characters)."""
    return [re.sub(r"[^\w]+", "_", n) for n in preprocessor.get_feature_names_out()]


def make_classifier(params: dict[str, Any], seed: int) -> Any:
    """LGBMClassifier with the settings that make two runs give the same model."""
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        **params,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,  # no timing-based row/col-wise choice, so no run-to-run change
        verbose=-1,
    )


def _progress(every: int) -> Any:
    """A LightGBM callback that logs the val score every `every` rounds (long fits stay visible)."""
    started = time.perf_counter()

    def callback(env: Any) -> None:
        if (env.iteration + 1) % every == 0 and env.evaluation_result_list:
            _, metric, value, _ = env.evaluation_result_list[0][:4]
            elapsed = time.perf_counter() - started
            log.info("round %d: val %s=%.5f (%.0fs)", env.iteration + 1, metric, value, elapsed)

    return callback


def fit_classifier(
    params: dict[str, Any], seed: int, early_stopping_rounds: int, data: dict[str, Any]
) -> Any:
    """Fit on the encoded train matrix, early-stopped on the encoded val matrix."""
    import lightgbm

    clf = make_classifier(params, seed)
    clf.fit(
        data["train"],
        data["y_train"],
        eval_X=(data["val"],),
        eval_y=(data["y_val"],),
        callbacks=[
            lightgbm.early_stopping(early_stopping_rounds, verbose=False),
            _progress(PROGRESS_EVERY),
        ],
    )
    return clf


def _check(config: LightGBMConfig, profile: Profile) -> None:
    if config.categorical_encoding not in ENCODINGS:
        raise PipelineError(
            f"categorical_encoding '{config.categorical_encoding}' is not one of {ENCODINGS}",
            where="configs/lightgbm",
            fix="use auto, target or ordinal",
        )
    if config.categorical_encoding == "target" and profile.n_classes > 2 and profile.categorical:
        raise PipelineError(
            "categorical_encoding 'target' with a multiclass label cannot be exported to ONNX",
            where="configs/lightgbm",
            fix="use auto or ordinal",
        )
    if config.optuna.metric not in SEARCH_METRICS:
        raise PipelineError(
            f"optuna.metric '{config.optuna.metric}' is not one of {sorted(SEARCH_METRICS)}",
            where="configs/lightgbm",
            fix="pick one of the evaluation metrics",
        )


def train_lightgbm(
    config: LightGBMConfig, seed: int, processed_dir: Path, paths: ModelPaths, run: Run | None
) -> dict[str, dict[str, float]]:
    """Encode, (optionally search,) fit, evaluate and write the model outputs; returns metrics."""
    from dataclasses import asdict

    from pipeline.lightgbm.search import search_params

    splits = Splits.load(processed_dir)
    _check(config, splits.profile)
    preprocessor = build_preprocessor(splits.profile, config, seed)
    data = {
        "train": preprocessor.fit_transform(splits.frames["train"], splits.labels["train"]),
        "val": preprocessor.transform(splits.frames["val"]),
        "y_train": splits.labels["train"],
        "y_val": splits.labels["val"],
        "names": feature_names(preprocessor),
    }
    params = asdict(config.params)
    if params["metric"] is None:
        params["metric"] = "auc" if splits.profile.n_classes == 2 else "auc_mu"
    search: dict[str, Any] | None = None
    if config.optuna.enabled:
        search = search_params(config, params, seed, data, splits.profile.n_classes, run)
        params = {**params, **search["best_params"]}
    clf = fit_classifier(params, seed, config.early_stopping_rounds, data)
    model = Pipeline([("features", preprocessor), ("model", clf)])
    gains = clf.booster_.feature_importance(importance_type="gain")
    importance = dict(zip(data["names"], map(float, gains), strict=True))

    def write_extra(model_dir: Path) -> None:
        clf.booster_.save_model(model_dir / "booster.txt")
        if search is not None:
            write_json(model_dir / "search.json", search)

    if run is not None:
        run.log_params({"best_iteration": clf.best_iteration_, "n_features": len(data["names"])})
    return save_model(NAME, model, splits, paths, run, importance, write_extra, ["lightgbm"])


def main(cfg: DictConfig) -> str:
    """Stage entry: validate `lightgbm`, train inside an MLflow run, summarise."""
    config = validate(cfg.lightgbm, LightGBMConfig, NAME)
    _check(config, load_profile(PROCESSED_DIR))  # user errors fail before a run is opened
    with start_run(cfg, NAME, [PROCESSED_DIR]) as run:
        metrics = train_lightgbm(
            config, int(cfg.seed), PROCESSED_DIR, ModelPaths.for_model(NAME), run
        )
    test = metrics["test"]
    return f"test roc_auc={test['roc_auc']:.4f} macro_f1={test['macro_f1']:.4f} → models/{NAME}"
