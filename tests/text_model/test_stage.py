"""The text model through the shared runner: files, parity, MLflow curves, skip, resume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.common.config import compose
from pipeline.common.data import Splits
from pipeline.common.train import ModelPaths, train_model
from pipeline.text_model.core import TextModel
from serving.schemas import ModelCard, read_file
from tests.text_model.conftest import REPO, fit, tiny_config


def stage_paths(root: Path, processed_dir: Path) -> ModelPaths:
    return replace(ModelPaths.for_model("text_model", root), processed_dir=processed_dir)


@pytest.mark.slow  # about 40 s: training, export, calibration, parity and MLflow
def test_stage_writes_a_calibrated_graph_that_passes_parity_and_tracks_curves(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    db = tmp_path / "mlflow.db"
    cfg = compose(
        ["profile=tiny", f"tracking.uri=sqlite:///{db}",
         f"text_model.checkpoint_dir={tmp_path / 'ckpt'}"],
        config_dir=REPO / "configs",
    )  # fmt: skip
    paths = stage_paths(tmp_path, processed("binary") / "data" / "processed")
    scores = train_model(TextModel, cfg, "text_model", paths, 7)

    assert scores["test"]["roc_auc"] > 0.75
    card = read_file(paths.model_dir / "card.json", ModelCard)
    assert card.parity is not None and card.parity.passed
    assert {c.name for c in card.parity.checks} >= {"test", "edge:texts", "edge:text_lengths"}
    entry = card.entry
    assert entry is not None and entry.kind == "text" and entry.calibration is not None
    assert entry.outputs.probabilities == "probabilities"
    assert card.params["pooling"] == "cls" and card.params["steps"] == 60
    for name in ("model.onnx", "tokenizer.json", "hf/model.safetensors", "hf/head.safetensors"):
        assert (paths.model_dir / name).is_file(), name
    assert not list(paths.model_dir.rglob("*.bin")) and not list(paths.model_dir.rglob("*.pkl"))

    import mlflow

    assert entry.mlflow is not None
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    assert len(client.get_metric_history(entry.mlflow.run_id, "fit/val_loss")) == 6
    logged = {a.path for a in client.list_artifacts(entry.mlflow.run_id, "native")}
    assert "native/model.safetensors" in logged and "native/head.safetensors" in logged


def test_stage_without_a_text_column_writes_a_skipped_card(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    source = processed("binary") / "data" / "processed"
    target = tmp_path / "processed"
    target.mkdir()
    for split in ("train", "val", "test"):
        (target / f"{split}.parquet").symlink_to(source / f"{split}.parquet")
    profile = Splits.load(source).profile
    features = profile.features.model_copy(update={"text": None})
    (target / "profile.json").write_text(
        profile.model_copy(update={"features": features}).model_dump_json()
    )
    cfg = compose(["profile=tiny"], config_dir=REPO / "configs")  # skipping opens no run
    paths = stage_paths(tmp_path, target)

    assert train_model(TextModel, cfg, "text_model", paths, 7) == {}
    card = read_file(paths.model_dir / "card.json", ModelCard)
    assert card.entry is None and "no text column" in (card.skipped or "")


def test_training_resumes_from_the_last_checkpoint(
    processed: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    settings = {"val_check_interval": 5, "early_stopping_patience": 3}
    first = fit(data, tiny_config(tmp_path, max_steps=20, **settings))
    assert first.params()["steps"] == 20 and (tmp_path / "last.ckpt").is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.text_model.core"):
        resumed = fit(data, tiny_config(tmp_path, max_steps=40, resume_from="last", **settings))
    steps = resumed.params()["steps"]
    assert isinstance(steps, int) and steps > 20
    # Only the steps after the checkpoint saw data in the second run.
    assert f"{steps} optimizer steps, {(steps - 20) * 32} samples" in caplog.text
