"""The baseline: impute + scale numerics, one-hot categoricals, TF-IDF text, then a classifier.

The estimator comes from `baseline.estimator` (`_target_` plus its keyword arguments, one level
deep), so any scikit-learn classifier with `predict_proba` can replace the logistic regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import get_tags

from pipeline.common.config import validate
from pipeline.common.dataset import PROCESSED_DIR, Profile, load_profile
from pipeline.common.errors import PipelineError
from pipeline.common.tabular import ModelPaths, Splits, TfidfConfig, build_tfidf, save_model
from pipeline.common.tracking import Run, start_run

NAME = "baseline"


def _default_estimator() -> dict[str, Any]:
    return {
        "_target_": "sklearn.linear_model.LogisticRegression",
        "C": 1.0,
        "max_iter": 2000,
        "class_weight": "balanced",
    }


@dataclass
class ImputerConfig:
    strategy: str = "median"  # numeric imputation (SimpleImputer)


@dataclass
class OneHotConfig:
    # Levels rarer than min_frequency share one "infrequent" column; unseen levels encode as all
    # zeros (handle_unknown="ignore": the only unknown handling skl2onnx converts).
    min_frequency: int = 5
    max_categories: int = 100


@dataclass
class BaselineConfig:
    """`configs/baseline/`."""

    estimator: dict[str, Any] = field(default_factory=_default_estimator)
    imputer: ImputerConfig = field(default_factory=ImputerConfig)
    onehot: OneHotConfig = field(default_factory=OneHotConfig)
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)


def build_estimator(spec: dict[str, Any], seed: int) -> Any:
    """Instantiate the classifier named by `_target_`; seed it when it takes a random_state."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    where = "configs/baseline: estimator"
    if "_target_" not in spec:
        raise PipelineError("no '_target_' key", where=where, fix="name a classifier class")
    try:
        estimator = instantiate(OmegaConf.create(spec), _convert_="all")
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0]
        raise PipelineError(
            first, where=where, fix="check the class path and its arguments"
        ) from None
    if not is_classifier(estimator) or not hasattr(estimator, "predict_proba"):
        raise PipelineError(
            f"{spec['_target_']} is not a classifier with predict_proba",
            where=where,
            fix="use e.g. sklearn.linear_model.LogisticRegression",
        )
    if "random_state" in estimator.get_params() and "random_state" not in spec:
        estimator.set_params(random_state=seed)
    return estimator


def build_preprocessor(
    profile: Profile, config: BaselineConfig, dense: bool = False
) -> ColumnTransformer:
    """Columns in, one (sparse unless `dense`) matrix out; every step converts to ONNX."""
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy=config.imputer.strategy)), ("scale", StandardScaler())]
    )
    parts: list[tuple[str, Any, Any]] = [("numeric", numeric, profile.model_numeric)]
    if profile.categorical:
        onehot = OneHotEncoder(
            handle_unknown="ignore",
            min_frequency=config.onehot.min_frequency,
            max_categories=config.onehot.max_categories,
        )
        parts.append(("categorical", onehot, profile.categorical))
    if profile.text:
        # The column as a name, not a list: TF-IDF wants 1-D input.
        parts.append(("text", build_tfidf(config.tfidf), profile.text))
    return ColumnTransformer(parts, sparse_threshold=0.0 if dense else 0.3)


def train_baseline(
    config: BaselineConfig,
    seed: int,
    processed_dir: Path,
    paths: ModelPaths,
    run: Run | None,
) -> dict[str, dict[str, float]]:
    """Fit on train, evaluate on val and test, write the model outputs; returns the metrics."""
    splits = Splits.load(processed_dir)
    estimator = build_estimator(config.estimator, seed)
    # Estimators without sparse support (e.g. HistGradientBoostingClassifier) get a dense
    # matrix; with a text column, keep tfidf.max_features modest for them.
    dense = not get_tags(estimator).input_tags.sparse
    model = Pipeline(
        [("features", build_preprocessor(splits.profile, config, dense)), ("model", estimator)]
    )
    model.fit(splits.frames["train"], splits.labels["train"])
    return save_model(NAME, model, splits, paths, run)


def main(cfg: DictConfig) -> str:
    """Stage entry: validate `baseline`, train inside an MLflow run, summarise."""
    config = validate(cfg.baseline, BaselineConfig, NAME)
    # User errors (no processed data, a bad estimator) fail before an MLflow run is opened.
    load_profile(PROCESSED_DIR)
    build_estimator(config.estimator, int(cfg.seed))
    with start_run(cfg, NAME, [PROCESSED_DIR]) as run:
        metrics = train_baseline(
            config, int(cfg.seed), PROCESSED_DIR, ModelPaths.for_model(NAME), run
        )
    test = metrics["test"]
    return f"test roc_auc={test['roc_auc']:.4f} macro_f1={test['macro_f1']:.4f} → models/{NAME}"
