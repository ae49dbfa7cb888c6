"""The LightGBM stage: accuracy, determinism, robust inputs, the Optuna path and tracking."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig

from pipeline.common.dataset import LABEL
from pipeline.common.errors import PipelineError
from pipeline.common.tabular import ModelPaths
from pipeline.common.tracking import start_run
from pipeline.lightgbm.config import OptunaConfig
from pipeline.lightgbm.core import main, train_lightgbm
from tests.tabular.conftest import Trained, small_lightgbm
from tests.tabular.tabular_helpers import (
    REPO,
    assert_valid_proba,
    hostile_rows,
    load_model,
    stage_cfg,
)


@pytest.mark.parametrize(("dataset", "min_accuracy"), [("breast_cancer", 0.93), ("wine", 0.9)])
def test_usual_accuracy_on_sklearn_datasets(
    dataset: str, min_accuracy: float, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    processed = request.getfixturevalue(f"{dataset}_dir")
    paths = ModelPaths.for_model("lgbm", tmp_path)
    metrics = train_lightgbm(small_lightgbm(), 0, processed, paths, None)
    assert metrics["test"]["accuracy"] >= min_accuracy
    assert metrics["test"]["roc_auc"] >= 0.97
    assert (tmp_path / "plots/lgbm/feature_importance.png").is_file()


def test_same_seed_gives_byte_identical_model_files(
    lightgbm_synthetic: Trained, synthetic_dir: Path, tmp_path: Path
) -> None:
    # The second run is another process: memory addresses and hash seeds differ there.
    first = lightgbm_synthetic.paths
    second = ModelPaths.for_model("lightgbm", tmp_path)
    code = (
        "import sys; from pathlib import Path; from tests.tabular.conftest import small_lightgbm;"
        "from pipeline.common.tabular import ModelPaths;"
        "from pipeline.lightgbm.core import train_lightgbm;"
        "train_lightgbm(small_lightgbm(), 5, Path(sys.argv[1]),"
        " ModelPaths.for_model('lightgbm', Path(sys.argv[2])), None)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "random"}
    subprocess.run(
        [sys.executable, "-c", code, str(synthetic_dir), str(tmp_path)], env=env, check=True
    )
    booster = (first.model_dir / "booster.txt").read_bytes()
    assert booster == (second.model_dir / "booster.txt").read_bytes()
    assert b"[deterministic: 1]" in booster and b"[force_row_wise: 1]" in booster
    for name in ("model.skops", "predictions_test.parquet", "evaluation.json"):
        assert (first.model_dir / name).read_bytes() == (second.model_dir / name).read_bytes()
    assert first.metrics_path.read_bytes() == second.metrics_path.read_bytes()
    for png in first.plots_dir.iterdir():
        assert png.read_bytes() == (second.plots_dir / png.name).read_bytes(), png.name


def test_synthetic_quality_nulls_and_unseen_levels(
    lightgbm_synthetic: Trained, baseline_synthetic: Trained, synthetic_dir: Path
) -> None:
    test = lightgbm_synthetic.metrics["test"]
    majority = 1 - pd.read_parquet(synthetic_dir / "test.parquet")[LABEL].mean()
    assert test["roc_auc"] >= 0.88
    assert test["accuracy"] > majority
    assert test["roc_auc"] > baseline_synthetic.metrics["test"]["roc_auc"]
    model = load_model(lightgbm_synthetic.paths.model_dir / "model.skops")
    rows = hostile_rows(synthetic_dir)
    assert_valid_proba(model.predict_proba(rows), len(rows), 2)


def test_multiclass_with_categoricals_text_nulls_and_unseen_levels(
    synthetic_multiclass_dir: Path, tmp_path: Path
) -> None:
    paths = ModelPaths.for_model("lgbm", tmp_path)
    metrics = train_lightgbm(small_lightgbm(), 0, synthetic_multiclass_dir, paths, None)
    majority = pd.read_parquet(synthetic_multiclass_dir / "test.parquet")[LABEL]
    assert metrics["test"]["accuracy"] > majority.value_counts(normalize=True).max() + 0.2
    assert metrics["test"]["roc_auc"] >= 0.8
    model = load_model(paths.model_dir / "model.skops")
    rows = hostile_rows(synthetic_multiclass_dir)
    assert_valid_proba(model.predict_proba(rows), len(rows), 3)


@pytest.mark.slow
def test_ordinal_encoding_variant(synthetic_dir: Path, tmp_path: Path) -> None:
    paths = ModelPaths.for_model("lgbm", tmp_path)
    config = small_lightgbm(categorical_encoding="ordinal")
    metrics = train_lightgbm(config, 0, synthetic_dir, paths, None)
    assert metrics["test"]["roc_auc"] >= 0.88
    model = load_model(paths.model_dir / "model.skops")
    rows = hostile_rows(synthetic_dir)
    assert_valid_proba(model.predict_proba(rows), len(rows), 2)


@pytest.mark.parametrize(("encoding", "message"), [("native", "not one of"), ("target", "ONNX")])
def test_bad_encoding_is_one_clear_error(
    encoding: str, message: str, synthetic_multiclass_dir: Path, tmp_path: Path
) -> None:
    config = small_lightgbm(categorical_encoding=encoding)
    paths = ModelPaths.for_model("x", tmp_path)
    with pytest.raises(PipelineError, match=message):
        train_lightgbm(config, 0, synthetic_multiclass_dir, paths, None)


def test_optuna_search_logs_nested_trials_and_best_params(
    tracking_cfg: DictConfig, synthetic_dir: Path, tmp_path: Path
) -> None:
    import mlflow

    config = small_lightgbm(optuna=OptunaConfig(enabled=True, n_trials=2, metric="roc_auc"))
    paths = ModelPaths.for_model("lgbm", tmp_path)
    tracking_cfg.tracking.register = False
    with start_run(tracking_cfg, "lightgbm-search", [synthetic_dir]) as run:
        assert run is not None
        metrics = train_lightgbm(config, 0, synthetic_dir, paths, run)
        parent = run.run_id
    search = json.loads((paths.model_dir / "search.json").read_text())
    assert search["n_trials"] == 2 and search["metric"] == "val_roc_auc"
    assert set(search["best_params"]) >= {"learning_rate", "num_leaves"}
    assert metrics["test"]["roc_auc"] >= 0.85

    client = mlflow.MlflowClient(tracking_uri=tracking_cfg.tracking.uri)
    stored = client.get_run(parent)
    for key, value in search["best_params"].items():
        assert stored.data.params[f"best.{key}"] == str(value)
    children = client.search_runs(
        [stored.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert len(children) == 2
    assert all("val_roc_auc" in child.data.metrics for child in children)
    best = max(child.data.metrics["val_roc_auc"] for child in children)
    assert best == pytest.approx(search["best_value"])
    assert json.loads((paths.model_dir / "run.json").read_text())["version"] is None


def test_stage_entry_tracks_and_writes_fixed_paths(
    synthetic_dir: Path, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = stage_cfg(tracking_uri)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(synthetic_dir, tmp_path / "data" / "processed")
    assert main(cfg).startswith("test roc_auc=")
    model_dir = tmp_path / "models/lightgbm"
    assert {p.name for p in model_dir.iterdir()} == {
        "model.skops",
        "booster.txt",
        "predictions_val.parquet",
        "predictions_test.parquet",
        "evaluation.json",
        "run.json",
    }
    run = json.loads((model_dir / "run.json").read_text())
    assert run["registered_model"] == "lightgbm" and int(run["version"]) >= 1
    stored = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run["run_id"])
    assert stored.data.params["lightgbm.params.n_jobs"] == "1"
    assert "best_iteration" in stored.data.params
    assert stored.data.metrics["test_roc_auc"] == pytest.approx(
        json.loads((tmp_path / "metrics/lightgbm.json").read_text())["test"]["roc_auc"]
    )
    assert stored.data.tags["data.md5.data/processed"].endswith(".dir")
