"""The baseline stage: usual accuracy on scikit-learn data, robust inputs, swappable estimator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.baseline.core import BaselineConfig, main, train_baseline
from pipeline.common.dataset import LABEL
from pipeline.common.errors import PipelineError
from pipeline.common.tabular import ModelPaths
from tests.tabular.conftest import Trained
from tests.tabular.tabular_helpers import assert_valid_proba, hostile_rows, load_model, stage_cfg


@pytest.mark.parametrize(("dataset", "min_accuracy"), [("breast_cancer", 0.93), ("wine", 0.9)])
def test_usual_accuracy_on_sklearn_datasets(
    dataset: str, min_accuracy: float, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    processed = request.getfixturevalue(f"{dataset}_dir")
    metrics = train_baseline(
        BaselineConfig(), 0, processed, ModelPaths.for_model("b", tmp_path), None
    )
    assert metrics["test"]["accuracy"] >= min_accuracy
    assert metrics["test"]["roc_auc"] >= 0.97


def test_synthetic_beats_majority_and_survives_nulls_and_unseen_levels(
    baseline_synthetic: Trained, synthetic_dir: Path
) -> None:
    metrics, model_dir = baseline_synthetic.metrics, baseline_synthetic.paths.model_dir
    majority = 1 - pd.read_parquet(synthetic_dir / "test.parquet")[LABEL].mean()
    assert metrics["test"]["roc_auc"] >= 0.85
    assert metrics["test"]["accuracy"] > majority
    assert json.loads((model_dir / "run.json").read_text())["run_id"] is None

    model = load_model(model_dir / "model.skops")
    rows = hostile_rows(synthetic_dir)
    assert_valid_proba(model.predict_proba(rows), len(rows), 2)


def test_estimator_is_swappable_from_config(breast_cancer_dir: Path, tmp_path: Path) -> None:
    config = BaselineConfig(
        estimator={"_target_": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 20}
    )
    paths = ModelPaths.for_model("rf", tmp_path)
    metrics = train_baseline(config, 3, breast_cancer_dir, paths, None)
    forest = load_model(paths.model_dir / "model.skops").named_steps["model"]
    assert type(forest).__name__ == "RandomForestClassifier"
    assert forest.random_state == 3  # seeded from the pipeline seed
    assert metrics["test"]["accuracy"] >= 0.93


def test_estimator_without_sparse_support_gets_dense_features(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    config = BaselineConfig(
        estimator={"_target_": "sklearn.ensemble.HistGradientBoostingClassifier", "max_iter": 50}
    )
    config.tfidf.max_features = 300
    metrics = train_baseline(config, 0, synthetic_dir, ModelPaths.for_model("h", tmp_path), None)
    assert metrics["test"]["roc_auc"] >= 0.85


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        ({"_target_": "sklearn.preprocessing.StandardScaler"}, "not a classifier"),
        ({"_target_": "sklearn.linear_model.NoSuchModel"}, "estimator"),
        ({"C": 1.0}, "_target_"),
    ],
)
def test_bad_estimator_config_is_one_clear_error(
    estimator: dict[str, object], message: str, breast_cancer_dir: Path, tmp_path: Path
) -> None:
    config = BaselineConfig(estimator=estimator)
    with pytest.raises(PipelineError, match=message):
        train_baseline(config, 0, breast_cancer_dir, ModelPaths.for_model("x", tmp_path), None)


def test_stage_entry_tracks_and_writes_fixed_paths(
    synthetic_dir: Path, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = stage_cfg(tracking_uri)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(synthetic_dir, tmp_path / "data" / "processed")
    summary = main(cfg)
    assert summary.startswith("test roc_auc=")
    run = json.loads((tmp_path / "models/baseline/run.json").read_text())
    assert run["registered_model"] == "baseline" and int(run["version"]) >= 1
    assert json.loads((tmp_path / "metrics/baseline.json").read_text())["test"]["roc_auc"] > 0.85
    assert {p.name for p in (tmp_path / "plots/baseline").iterdir()} == {
        "roc.png",
        "pr.png",
        "confusion.png",
        "calibration.png",
    }
