"""MLflow tracking: params, metrics, artifacts, lineage tags, registry, and loud failures."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.common.errors import PipelineError
from pipeline.common.lineage import input_hash
from pipeline.common.tracking import start_run

CLOSED_PORT_URI = "http://127.0.0.1:9"  # discard port: nothing listens there


def _client(uri: str):  # type: ignore[no-untyped-def]
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def test_run_holds_params_metrics_artifacts_lineage_and_a_registered_version(
    tracking_cfg: DictConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.sklearn

    data = tmp_path / "inputs.csv"
    data.write_text("a,b\n1,2\n")
    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40) ** 2})
    y = (X["a"] > 0.5).astype(int).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)

    with start_run(tracking_cfg, "toy", [data]) as run:
        assert run is not None
        run.log_metrics({"val": {"roc_auc": 0.9}, "test": {"roc_auc": 0.8, "brier": 0.1}})
        plots = tmp_path / "plots"
        plots.mkdir()
        (plots / "roc.png").write_bytes(b"png")
        run.log_artifacts(plots, "plots")
        run.log_sklearn_model(model, X.head(3), "toy_model")
        summary = run.summary()

    client = _client(tracking_cfg.tracking.uri)
    stored = client.get_run(summary["run_id"])
    assert stored.info.status == "FINISHED" and stored.info.run_name == "toy"
    assert stored.data.params["seed"] == "7"
    assert stored.data.params["tracking.experiment"] == "tests"
    assert stored.data.metrics == {"val_roc_auc": 0.9, "test_roc_auc": 0.8, "test_brier": 0.1}
    assert stored.data.tags[f"data.md5.{data.as_posix()}"] == input_hash(data)
    assert "git_commit" in stored.data.tags and "git_dirty" in stored.data.tags
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"])}
    assert {"plots", "lineage.json"} <= artifacts

    assert summary["registered_model"] == "toy_model" and summary["version"] is not None
    version = client.get_model_version("toy_model", summary["version"])
    assert version.run_id == summary["run_id"]
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    loaded = mlflow.sklearn.load_model(f"models:/toy_model/{summary['version']}")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_an_error_in_the_block_marks_the_run_failed(tracking_cfg: DictConfig) -> None:
    with pytest.raises(RuntimeError, match="boom"), start_run(tracking_cfg, "fails", []) as run:
        assert run is not None
        run_id = run.run_id
        raise RuntimeError("boom")
    assert _client(tracking_cfg.tracking.uri).get_run(run_id).info.status == "FAILED"


def test_non_zero_rank_does_not_track(
    tracking_cfg: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_run(tracking_cfg, "rank", [], rank=1) as run:
        assert run is None
    monkeypatch.setenv("LOCAL_RANK", "2")
    with start_run(tracking_cfg, "rank", []) as run:
        assert run is None


def _server_cfg(optional: bool) -> DictConfig:
    return OmegaConf.create({"seed": 1, "tracking": {"uri": CLOSED_PORT_URI, "optional": optional}})


def test_unreachable_server_fails_loudly_and_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    started = time.perf_counter()
    with pytest.raises(PipelineError, match="unreachable"), start_run(_server_cfg(False), "x", []):
        pass
    assert time.perf_counter() - started < 10


def test_optional_tracking_degrades_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with caplog.at_level(logging.WARNING), start_run(_server_cfg(True), "x", []) as run:
        assert run is None
    assert "tracking disabled" in caplog.text


def test_environment_uri_wins_over_config(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    with start_run(_server_cfg(False), "env", []) as run:
        assert run is not None and run.tracking_uri == tracking_uri


def test_relative_sqlite_uri_is_anchored_at_the_project_not_a_queued_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.common.tracking import TrackingConfig, tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = TrackingConfig(uri="sqlite:///mlflow.db")
    queued = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpk3j2"
    assert tracking_uri(cfg, tmp_path / "proj") == f"sqlite:///{tmp_path}/proj/mlflow.db"
    assert tracking_uri(cfg, queued) == f"sqlite:///{tmp_path}/proj/mlflow.db"
    assert tracking_uri(TrackingConfig(uri="sqlite:////srv/m.db"), queued) == "sqlite:////srv/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(cfg, queued) == "http://127.0.0.1:5000"


def test_params_keyed_by_a_users_column_names_are_logged(tracking_cfg: DictConfig) -> None:
    with start_run(tracking_cfg, "toy", []) as run:
        assert run is not None
        run.log_params({"data.bounds.Weight (kg)": [0, 500], "data.bounds.km/h": [0, 300]})
        summary = run.summary()
    params = _client(tracking_cfg.tracking.uri).get_run(summary["run_id"]).data.params
    assert params["data.bounds.Weight _kg_"] == "[0, 500]"
    assert params["data.bounds.km_h"] == "[0, 300]"
