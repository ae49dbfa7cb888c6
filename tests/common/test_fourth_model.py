"""The model interface proven by a fourth model that lives only in tests/fixtures/forest/.

The package, its config file and its dvc.yaml stage are what docs/add-a-model.md walks through;
here the runner trains it like any stage and everything downstream reads the same outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from pipeline.common.config import validate
from pipeline.common.data import Splits
from pipeline.common.train import ModelPaths
from serving.runtime import load_model
from tests.common.processed import Trained
from tests.fixtures.forest.core import Forest, ForestConfig

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "forest"


@pytest.mark.parametrize("task", ["binary", pytest.param("regression", marks=pytest.mark.slow)])
def test_a_fourth_model_trains_through_the_runner(
    trained: Callable[..., Trained], task: str
) -> None:
    run = trained(Forest, "forest", task, n=1500)
    card, entry = run.card, run.card.entry
    assert entry is not None and card.parity is not None and card.parity.passed
    assert {c.name for c in card.parity.checks} >= {"test", "edge:nulls", "edge:texts"}
    assert all(i.dtype in ("float32", "string") for i in entry.inputs)
    assert card.importance  # feature_importances_ of the forest
    frame = run.predictions()
    data = Splits.load(run.paths.processed_dir)
    graph = load_model(run.paths.model_dir, entry).run(data.test.columns)
    if task == "binary":
        assert set(run.scores["test"]) >= {"roc_auc", "log_loss", "ece"}
        assert run.scores["test"]["roc_auc"] > 0.85
        np.testing.assert_allclose(graph["probabilities"], frame[["proba_0", "proba_1"]], atol=1e-5)
    else:
        assert run.scores["test"]["r2"] > 0.3
        np.testing.assert_allclose(graph["value"], frame["value"], rtol=1e-5)


def test_its_config_and_dvc_stage_fit_the_conventions() -> None:
    assert validate(OmegaConf.load(FIXTURE / "default.yaml"), ForestConfig, "forest")
    stage = yaml.safe_load((FIXTURE / "stage.yaml").read_text())["forest"]
    paths = ModelPaths.for_model("forest")
    outs = {next(iter(o)) for o in stage["outs"] + stage["metrics"] + stage["plots"]}
    assert outs == {str(paths.model_dir), str(paths.metrics_file), str(paths.plots_dir)}
    assert stage["cmd"] == "python -m pipeline.forest" and "decision" in stage["params"]
