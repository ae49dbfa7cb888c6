"""LightGBM: deterministic, early-stopped by its own loss, exact in ONNX, intervals, search."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.baseline.core import Baseline
from pipeline.common.config import validate
from pipeline.common.data import Splits
from pipeline.common.errors import PipelineError
from pipeline.common.train import ModelPaths, train_model
from pipeline.lightgbm.config import LightGBMConfig
from pipeline.lightgbm.core import LightGBM
from serving.runtime import load_model
from tests.common.processed import FAST, Trained, stage_cfg

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline" / "lightgbm"


def model(data: Splits, seed: int = 7, **changes: Any) -> LightGBM:
    config = validate(OmegaConf.merge(FAST["lightgbm"], changes), LightGBMConfig, "lightgbm")
    return LightGBM("lightgbm", config, data.profile, seed)


def test_the_same_config_gives_a_byte_identical_booster_and_graph(
    processed: Callable[..., Path],
) -> None:
    data = Splits.load(processed("binary", n=1500) / "data" / "processed")
    fitted = []
    for seed in (7, 7, 8):
        m = model(data, seed)
        m.fit(data, None)
        graph = m.onnx_model(m.graph_inputs()).SerializeToString()
        fitted.append((m.pipeline_[-1].booster_.model_to_string(), graph))
    assert fitted[0] == fitted[1]
    assert fitted[0][0] != fitted[2][0]  # the seed matters, so the test can fail


def test_it_beats_the_baseline_where_features_interact(trained: Callable[..., Trained]) -> None:
    boosted, linear = (
        trained(LightGBM, "lightgbm", "binary"),
        trained(Baseline, "baseline", "binary"),
    )
    assert boosted.scores["test"]["log_loss"] < linear.scores["test"]["log_loss"]
    assert boosted.scores["test"]["roc_auc"] > linear.scores["test"]["roc_auc"]
    card = boosted.card
    assert card.parity is not None and card.parity.passed
    thresholds = next(c for c in card.parity.checks if c.name == "edge:thresholds")
    assert thresholds.rows > 100 and thresholds.label_mismatches == 0
    assert 0 < int(card.params["best_iteration"]) < 300  # early stopping fired
    assert next(iter(card.importance)).startswith(("numeric__", "categorical__", "text__"))
    assert (boosted.paths.model_dir / "booster.txt").is_file()


@pytest.mark.parametrize(
    ("task", "changes", "metric"),
    [
        ("binary", {}, "binary_logloss"),
        ("multiclass", {}, "multi_logloss"),
        ("regression", {"objective": "l2"}, "l2"),
        ("regression", {"objective": "l1"}, "l1"),
        ("regression", {"objective": "huber", "alpha": 2.0}, "huber"),
        ("regression", {"objective": "quantile", "alpha": 0.8}, "quantile"),
    ],
)
def test_early_stopping_watches_the_loss_it_trains_for(
    processed: Callable[..., Path], task: str, changes: dict[str, Any], metric: str
) -> None:
    data = Splits.load(processed(task, n=1500) / "data" / "processed")
    m = model(data, **changes)
    features = m.preprocessor()
    columns = m.columns()
    train = (features.fit_transform(data.train.frame(columns), data.train.y), data.train.y)
    val = (features.transform(data.val.frame(columns)), data.val.y)
    booster = m.boost(train, val, n_estimators=30)
    assert list(booster.best_score_["valid_0"]) == [metric]


def test_a_regression_interval_reaches_the_graph_and_the_predictions(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    source = processed("regression", n=1500, target_transform="log1p") / "data" / "processed"
    paths = replace(ModelPaths.for_model("lightgbm", tmp_path), processed_dir=source)
    changes = {"objective": "huber", "alpha": 1.0, "interval": [0.1, 0.9]}
    scores = train_model(LightGBM, stage_cfg("lightgbm", lightgbm=changes), "lightgbm", paths, 7)
    run = Trained(paths, scores)
    entry = run.card.entry
    assert entry is not None and entry.outputs.interval == "interval"
    frame = run.predictions()
    assert list(frame.columns) == ["ticket_id", "y_true", "value", "lower", "upper"]
    assert (frame["lower"] <= frame["upper"]).all()
    assert 0.5 < scores["test"]["interval_coverage"] < 0.95
    graph = load_model(paths.model_dir, entry).run(Splits.load(source).test.columns)
    np.testing.assert_allclose(graph["interval"], frame[["lower", "upper"]], rtol=1e-5)
    assert {"booster_q0.1.txt", "booster_q0.9.txt"} <= {p.name for p in paths.model_dir.iterdir()}
    assert "best_iteration_q0.9" in run.card.params


@pytest.mark.parametrize(
    ("task", "changes", "message"),
    [
        ("binary", {"objective": "l1"}, "objective and interval apply to regression"),
        ("binary", {"interval": [0.1, 0.9]}, "objective and interval apply to regression"),
        ("regression", {"interval": [0.9, 0.1]}, "must be two quantiles"),
        ("regression", {"objective": "poisson"}, "objective 'poisson' is not one of"),
        ("multiclass", {"features": {"categorical": "target"}}, "cannot be exported to ONNX"),
    ],
)
def test_settings_it_cannot_train_are_refused_before_work(
    processed: Callable[..., Path], tmp_path: Path, task: str, changes: dict[str, Any], message: str
) -> None:
    source = processed(task, n=1500) / "data" / "processed"
    paths = replace(ModelPaths.for_model("lightgbm", tmp_path), processed_dir=source)
    with pytest.raises(PipelineError, match=message):
        train_model(LightGBM, stage_cfg("lightgbm", lightgbm=changes), "lightgbm", paths, 7)
    assert not paths.model_dir.exists()


def test_the_search_tunes_by_the_validation_loss_and_records_it(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    data = Splits.load(processed("binary", n=1500) / "data" / "processed")
    m = model(data, optuna={"enabled": True, "n_trials": 2})
    m.fit(data, None)
    m.save(tmp_path)
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["n_trials"] == 2 and set(search["best_params"]) >= {"learning_rate", "num_leaves"}
    params = m.params()
    assert params["tuned.learning_rate"] == search["best_params"]["learning_rate"]
    assert params["val_loss"] == pytest.approx(search["best_score"])  # the final fit = best trial


def test_the_search_module_does_not_import_the_model() -> None:
    tree = ast.parse((PACKAGE / "search.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    ours = {m for m in imported if m.startswith("pipeline.lightgbm")}
    assert ours == {"pipeline.lightgbm.config"}  # core imports search, never the reverse
