"""The runner end to end, per task: every output, consistent with each other and with serving."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.baseline.core import Baseline
from pipeline.common.data import Splits
from pipeline.common.errors import PipelineError
from pipeline.common.train import ModelPaths, train_model
from serving.runtime import load_model
from serving.schemas import ModelCard, read_file
from tests.common.processed import Trained, stage_cfg

CLASSIFICATION_PLOTS = {"roc", "pr", "confusion", "reliability", "feature_importance"}
REGRESSION_PLOTS = {"predicted_vs_actual", "residuals", "residual_histogram", "feature_importance"}
CLASSIFICATION_METRICS = {"accuracy", "f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece"}


def served(run: Trained, split: str = "test") -> dict[str, np.ndarray]:
    """The card's graph run as the server runs it, on the split's prepared columns."""
    entry = run.card.entry
    assert entry is not None
    data = Splits.load(run.paths.processed_dir)
    return load_model(run.paths.model_dir, entry).run(data[split].columns)


def plots(run: Trained) -> set[str]:
    return {p.stem for p in run.paths.plots_dir.glob("*.png")}


def test_binary_stage_writes_consistent_outputs(trained: Callable[..., Trained]) -> None:
    run = trained(Baseline, "baseline", "binary")
    card, entry = run.card, run.card.entry
    assert entry is not None and card.parity is not None and card.parity.passed
    names = {c.name for c in card.parity.checks}
    assert {"test", "edge:nulls", "edge:unseen_categories", "edge:texts"} <= names
    assert (
        entry.sha256 == hashlib.sha256((run.paths.model_dir / entry.file).read_bytes()).hexdigest()
    )
    assert entry.calibration is not None and entry.calibration.method == "sigmoid"
    decision = entry.decision
    assert decision is not None and decision.kind == "threshold" and decision.positive == "yes"
    assert decision.threshold is not None and 0.05 < decision.threshold < 0.95
    on_disk = json.loads(run.paths.metrics_file.read_text())
    assert on_disk == entry.metrics == run.scores
    assert set(on_disk["test"]) == CLASSIFICATION_METRICS  # no timings
    frame = run.predictions()
    assert list(frame.columns) == ["ticket_id", "y_true", "label", "proba_0", "proba_1"]
    np.testing.assert_allclose(frame[["proba_0", "proba_1"]].sum(axis=1), 1.0)
    assert ((frame["proba_1"] >= decision.threshold) == (frame["label"] == "yes")).all()
    np.testing.assert_allclose(
        served(run)["probabilities"], frame[["proba_0", "proba_1"]], atol=1e-9
    )
    assert plots(run) == CLASSIFICATION_PLOTS | {"threshold"}
    assert (run.paths.model_dir / "model.skops").is_file()
    assert card.importance and len(card.importance) <= 50


def test_multiclass_stage_decides_by_argmax(trained: Callable[..., Trained]) -> None:
    run = trained(Baseline, "baseline", "multiclass")
    entry = run.card.entry
    assert entry is not None and entry.decision is not None
    assert entry.decision.kind == "argmax" and entry.decision.class_weights == [1.0, 1.0, 1.0]
    frame = run.predictions()
    proba = frame[["proba_0", "proba_1", "proba_2"]].to_numpy()
    labels = np.array(["low", "medium", "high"])[proba.argmax(axis=1)]
    assert (frame["label"] == labels).all()
    np.testing.assert_allclose(served(run)["probabilities"], proba, atol=1e-9)
    assert plots(run) == CLASSIFICATION_PLOTS
    assert run.card.parity is not None and run.card.parity.passed


def test_regression_with_log1p_leaves_in_target_units(trained: Callable[..., Trained]) -> None:
    run = trained(Baseline, "baseline", "regression", target_transform="log1p")
    entry = run.card.entry
    assert entry is not None and entry.decision is None and entry.calibration is None
    assert entry.outputs.value == "value" and entry.outputs.probabilities is None
    frame = run.predictions()
    raw = pd.read_parquet(run.paths.processed_dir / "test.parquet")
    np.testing.assert_allclose(frame["y_true"], raw["__label__"], rtol=1e-12)  # not log units
    assert list(frame.columns) == ["ticket_id", "y_true", "value"]
    assert frame["value"].between(0.5 * raw["__label__"].min(), 2 * raw["__label__"].max()).all()
    np.testing.assert_allclose(served(run)["value"], frame["value"], rtol=1e-9)
    assert set(run.scores["test"]) == {"rmse", "mae", "r2", "mape"}
    mean_rmse = np.sqrt(np.mean((raw["__label__"] - raw["__label__"].mean()) ** 2))
    assert run.scores["test"]["rmse"] < mean_rmse
    assert plots(run) == REGRESSION_PLOTS


def test_the_objective_moves_a_borderline_label_but_not_the_probabilities(
    trained: Callable[..., Trained], tmp_path: Path
) -> None:
    f1 = trained(Baseline, "baseline", "binary")
    paths = replace(
        ModelPaths.for_model("baseline", tmp_path), processed_dir=f1.paths.processed_dir
    )
    cfg = stage_cfg("baseline", decision={"objective": "cost", "cost_fn": 6.0})
    train_model(Baseline, cfg, "baseline", paths, 7)
    cost = Trained(paths, {})
    a, b = f1.card.entry, cost.card.entry
    assert a is not None and b is not None and a.decision and b.decision
    assert b.decision.threshold is not None and a.decision.threshold is not None
    assert b.decision.threshold < a.decision.threshold  # missing a positive costs 6x
    before, after = f1.predictions(), cost.predictions()
    pd.testing.assert_frame_equal(before.filter(like="proba_"), after.filter(like="proba_"))
    moved = before["label"] != after["label"]
    assert 0 < moved.sum() < len(before) / 2
    assert (after.loc[moved, "label"] == "yes").all()  # borderline rows turned positive
    assert a.sha256 == b.sha256  # the graph holds no threshold: the contract does


class Skipping(Baseline):
    def skip_reason(self) -> str | None:
        return "this data has no column the model reads"

    def fit(self, data: Any, run: Any) -> None:
        raise AssertionError("a skipped model must not train")


def test_a_skipped_model_leaves_a_card_saying_why(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    source = processed("binary") / "data" / "processed"
    paths = replace(ModelPaths.for_model("odd", tmp_path), processed_dir=source)
    assert train_model(Skipping, stage_cfg("odd"), "odd", paths, 7) == {}
    card = read_file(paths.model_dir / "card.json", ModelCard)
    assert card.skipped == "this data has no column the model reads" and card.entry is None
    assert json.loads(paths.metrics_file.read_text()) == {} and paths.plots_dir.is_dir()


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ({"decision": {"objective": "cost"}}, "'objective' applies to classification"),
        ({"baseline": {"features": {"tfidf": {"analyzer": "char_wb"}}}}, "analyzer"),
        ({"baseline": {"regressor": {"_target_": "sklearn.linear_model.Nope"}}}, "Nope"),
        (
            {"baseline": {"regressor": {"_target_": "sklearn.linear_model.Lasso", "C": 1}}},
            "unexpected keyword argument 'C'",
        ),
        (
            {"baseline": {"regressor": {"_target_": "sklearn.linear_model.RidgeClassifier"}}},
            "does not suit a regression task",
        ),
    ],
)
def test_bad_settings_fail_in_one_line_before_work_and_keep_previous_outputs(
    processed: Callable[..., Path], tmp_path: Path, groups: dict[str, Any], expected: str
) -> None:
    source = processed("regression", target_transform="log1p") / "data" / "processed"
    paths = replace(ModelPaths.for_model("baseline", tmp_path), processed_dir=source)
    for directory in (paths.model_dir, paths.plots_dir):
        directory.mkdir(parents=True)
        (directory / "previous.txt").write_text("previous run")
    paths.metrics_file.parent.mkdir()
    paths.metrics_file.write_text('{"test": {}}')
    before = snapshot(tmp_path)
    with pytest.raises(PipelineError, match=expected) as caught:
        train_model(Baseline, stage_cfg("baseline", **groups), "baseline", paths, 7)
    assert "\n" not in str(caught.value)
    assert snapshot(tmp_path) == before


def test_a_class_missing_from_train_is_refused(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    source = processed("multiclass") / "data" / "processed"
    copy = tmp_path / "processed"
    copy.mkdir()
    for split in ("train", "val", "test"):
        (copy / f"{split}.parquet").symlink_to(source / f"{split}.parquet")
    profile = json.loads((source / "profile.json").read_text())
    profile["labels"].append("ghost")
    (copy / "profile.json").write_text(json.dumps(profile))
    paths = replace(ModelPaths.for_model("baseline", tmp_path), processed_dir=copy)
    with pytest.raises(PipelineError, match="class 'ghost' does not occur in the train split"):
        train_model(Baseline, stage_cfg("baseline"), "baseline", paths, 7)


class Drifting(Baseline):
    """Native probabilities nudged away from what its graph computes."""

    def predict(self, split: Any) -> np.ndarray:
        proba = super().predict(split) ** 1.02
        return np.asarray(proba / proba.sum(axis=1, keepdims=True))


def test_a_graph_that_disagrees_fails_the_stage_in_one_line(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    source = processed("binary") / "data" / "processed"
    paths = replace(ModelPaths.for_model("baseline", tmp_path), processed_dir=source)
    with pytest.raises(
        PipelineError, match=r"ONNX parity failed for \w+ on test: max \|Δ\|"
    ) as caught:
        train_model(Drifting, stage_cfg("baseline"), "baseline", paths, 7)
    assert "\n" not in str(caught.value)
    assert not paths.model_dir.exists() and not paths.metrics_file.exists()
