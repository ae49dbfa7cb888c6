"""The baseline: honest probabilities, labels that beat the majority, a swappable estimator."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.baseline.core import Baseline, BaselineConfig
from pipeline.common.config import validate
from pipeline.common.decision import DecisionConfig
from pipeline.common.train import train_entry
from pipeline.lightgbm.config import LightGBMConfig
from serving.schemas import ModelCard, read_file
from tests.common.processed import Trained, stage_cfg

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def base_rate(run: Trained) -> dict[str, float]:
    """Log loss, Brier and accuracy of always predicting the train split's positive rate."""
    train = pd.read_parquet(run.paths.processed_dir / "train.parquet")["__label__"]
    y = pd.read_parquet(run.paths.processed_dir / "test.parquet")["__label__"].to_numpy()
    p = train.mean()
    return {
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((p - y) ** 2)),
        "accuracy": float(max(y.mean(), 1 - y.mean())),
        "f1_all_positive": float(2 * y.mean() / (1 + y.mean())),
    }


def test_probabilities_beat_the_base_rate_and_labels_the_majority(
    trained: Callable[..., Trained],
) -> None:
    run = trained(Baseline, "baseline", "binary")
    test, base = run.scores["test"], base_rate(run)
    assert test["log_loss"] < base["log_loss"] - 0.1 and test["brier"] < base["brier"] - 0.03
    assert test["accuracy"] > base["accuracy"] and test["f1"] > base["f1_all_positive"] + 0.2
    assert test["ece"] < 0.06  # 600 test rows: the estimate itself is noisy at ~0.02


def test_an_estimator_named_by_target_trains_through_the_stage_entry(
    processed: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").symlink_to(processed("binary", n=1500) / "data")
    monkeypatch.chdir(tmp_path)
    sgd = {"_target_": "sklearn.linear_model.SGDClassifier", "loss": "log_loss", "alpha": 1e-3}
    cfg = stage_cfg("baseline", baseline={"classifier": sgd})  # as `classifier._target_=...`
    summary = train_entry(Baseline, "baseline")(cfg)
    assert summary.startswith("test accuracy=") and summary.endswith("→ models/trained/baseline")
    card = read_file(Path("models/trained/baseline/card.json"), ModelCard)
    assert card.parity is not None and card.parity.passed
    assert os.path.isfile("metrics/baseline.json") and os.path.isdir("plots/baseline")
    assert card.entry is not None and card.entry.metrics["test"]["roc_auc"] > 0.8


@pytest.mark.parametrize(
    ("group", "schema"),
    [("baseline", BaselineConfig), ("lightgbm", LightGBMConfig), ("decision", DecisionConfig)],
)
def test_config_files_hold_only_dataclass_keys(group: str, schema: type) -> None:
    default = OmegaConf.load(CONFIGS / group / "default.yaml")
    assert validate(default, schema, group)
    tiny = CONFIGS / group / "tiny.yaml"
    if tiny.is_file():
        node = OmegaConf.load(tiny)
        node.pop("defaults")
        assert validate(OmegaConf.merge(default, node), schema, group)
