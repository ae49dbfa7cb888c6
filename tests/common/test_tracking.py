"""MLflow tracking: a model stage's run, its registered ONNX graph, and loud failures."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from pipeline.baseline.core import Baseline
from pipeline.common.errors import PipelineError
from pipeline.common.tracking import TrackingConfig, mlflow_errors, start_run, tracking_uri
from pipeline.common.train import ModelPaths, train_model
from serving.schemas import ModelCard, read_file
from tests.common.processed import stage_cfg

CLOSED_PORT_URI = "http://127.0.0.1:9"  # discard port: nothing listens there


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module: creating MLflow's schema takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def store(database: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    return {"uri": database, "experiment": "tests"}


@pytest.mark.slow
def test_a_stage_logs_its_run_and_registers_the_exact_graph(
    processed: Callable[..., Path], tmp_path: Path, store: dict[str, str]
) -> None:
    import mlflow

    source = processed("binary") / "data" / "processed"
    paths = replace(ModelPaths.for_model("baseline", tmp_path), processed_dir=source)
    train_model(Baseline, stage_cfg("baseline", tracking=store), "baseline", paths, 7)
    entry = read_file(paths.model_dir / "card.json", ModelCard).entry
    assert entry is not None and entry.mlflow is not None
    assert (entry.mlflow.registered_model, entry.mlflow.version, entry.version) == (
        "baseline",
        "1",
        "1",
    )
    mlflow.set_tracking_uri(store["uri"])
    client = mlflow.MlflowClient()
    run = client.get_run(entry.mlflow.run_id)
    assert run.info.status == "FINISHED" and run.data.params["seed"] == "7"
    assert run.data.metrics["test_roc_auc"] == entry.metrics["test"]["roc_auc"]
    assert "duration_fit_s" in run.data.metrics  # timings here, never in metrics/<name>.json
    assert {"card.json", "plots", "lineage.json"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    logged = mlflow.search_logged_models(
        experiment_ids=[entry.mlflow.experiment_id], output_format="list"
    )
    assert {m.name for m in logged if m.source_run_id == run.info.run_id} == {"model", "native"}
    version = client.get_model_version("baseline", "1")
    assert version.run_id == run.info.run_id
    copy = Path(
        mlflow.artifacts.download_artifacts("models:/baseline/1", dst_path=str(tmp_path / "dl"))
    )
    assert hashlib.sha256((copy / "model.onnx").read_bytes()).hexdigest() == entry.sha256


@pytest.mark.slow  # creating MLflow's SQLite schema alone takes seconds
def test_an_error_in_the_block_marks_the_run_failed(store: dict[str, str]) -> None:
    import mlflow

    cfg = OmegaConf.create({"seed": 1, "tracking": store})
    with pytest.raises(RuntimeError, match="boom"), start_run(cfg, "fails", []) as run:
        assert run is not None
        run_id = run.run_id
        raise RuntimeError("boom")
    assert mlflow.MlflowClient(tracking_uri=store["uri"]).get_run(run_id).info.status == "FAILED"


def test_disabled_tracking_and_other_ranks_open_no_run(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_run(OmegaConf.create({"tracking": {"enabled": False}}), "off", []) as run:
        assert run is None
    cfg = OmegaConf.create({"seed": 1, "tracking": store})
    monkeypatch.setenv("RANK", "1")
    with start_run(cfg, "rank", []) as run:
        assert run is None
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with start_run(cfg, "rank", []) as run:
        assert run is None


def _server_cfg(optional: bool) -> DictConfig:
    return OmegaConf.create({"seed": 1, "tracking": {"uri": CLOSED_PORT_URI, "optional": optional}})


def test_unreachable_server_fails_loudly_and_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    started = time.perf_counter()
    with pytest.raises(PipelineError, match="unreachable"), start_run(_server_cfg(False), "x", []):
        pass
    assert time.perf_counter() - started < 10


def test_mlflow_errors_keep_credentials_out_of_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ana:s3cret@mlflow.example.com:5000")
    with pytest.raises(PipelineError) as caught, mlflow_errors("log params"):
        raise OSError("connection refused")
    assert "s3cret" not in str(caught.value)
    assert "https://mlflow.example.com:5000" in str(caught.value)


def test_optional_tracking_degrades_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with caplog.at_level(logging.WARNING), start_run(_server_cfg(True), "x", []) as run:
        assert run is None
    assert "tracking disabled" in caplog.text


def test_relative_sqlite_uri_is_anchored_at_the_project_not_a_queued_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = TrackingConfig(uri="sqlite:///mlflow.db")
    queued = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpk3j2"
    assert tracking_uri(cfg, tmp_path / "proj") == f"sqlite:///{tmp_path}/proj/mlflow.db"
    assert tracking_uri(cfg, queued) == f"sqlite:///{tmp_path}/proj/mlflow.db"
    assert tracking_uri(TrackingConfig(uri="sqlite:////srv/m.db"), queued) == "sqlite:////srv/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(cfg, queued) == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_params_keyed_by_a_users_column_names_are_logged(store: dict[str, str]) -> None:
    import mlflow

    cfg = OmegaConf.create({"seed": 1, "tracking": store})
    with start_run(cfg, "toy", []) as run:
        assert run is not None
        run.log_params({"data.bounds.Weight (kg)": [0, 500], "data.bounds.km/h": [0, 300]})
        run_id = run.run_id
    params = mlflow.MlflowClient(tracking_uri=store["uri"]).get_run(run_id).data.params
    assert params["data.bounds.Weight _kg_"] == "[0, 500]"
    assert params["data.bounds.km_h"] == "[0, 300]"
