"""Text model fixtures: the shared processed tickets, the tiny profile's config, a fitted model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.common.config import compose, validate
from pipeline.common.data import Splits
from pipeline.text_model.config import TextModelConfig
from pipeline.text_model.core import TextModel
from serving.runtime import LoadedModel, load_model
from serving.schemas import ModelEntry
from tests.common.processed import processed, trained  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def tiny_config(checkpoints: Path, *overrides: str, **fields: Any) -> TextModelConfig:
    """`configs/text_model/tiny.yaml` as the stage validates it, checkpoints under `checkpoints`."""
    cfg = compose(["profile=tiny", *overrides], config_dir=REPO / "configs")
    node = TextModel.config_node(cfg, "text_model")
    node.update({"checkpoint_dir": str(checkpoints), **fields})
    return validate(node, TextModelConfig, "text_model")


def fit(data: Splits, config: TextModelConfig, seed: int = 7) -> TextModel:
    model = TextModel("text_model", config, data.profile, seed)
    model.check()
    model.fit(data, None)
    return model


def served(model: TextModel, out: Path) -> LoadedModel:
    """The model's graph as the server loads it (checksums, tokenizer file, length groups)."""
    out.mkdir(parents=True, exist_ok=True)
    graph = model.to_onnx(out)
    entry = ModelEntry(
        name="text_model",
        kind="text",
        file=graph.file,
        sha256=hashlib.sha256((out / graph.file).read_bytes()).hexdigest(),
        text_input=graph.text_input,
        tokenizer=graph.tokenizer,
        outputs=graph.outputs,
    )
    return load_model(out, entry)


@dataclass(frozen=True)
class Fitted:
    data: Splits
    model: TextModel
    out: Path  # to_onnx's directory
    loaded: LoadedModel


@pytest.fixture(scope="module")
def fitted_for(
    processed: Callable[..., Path],  # noqa: F811 - the shared fixture, imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], Fitted]:
    """`fitted_for(task)`: the tiny model fitted on the tickets and exported, once per module."""
    made: dict[str, Fitted] = {}

    def make(task: str) -> Fitted:
        if task not in made:
            root = tmp_path_factory.mktemp(f"text_{task}")
            data = Splits.load(processed(task) / "data" / "processed")
            # Regression pools by mean, classification by [CLS] (auto, no pooling config):
            # both poolings go through the graph and its parity.
            pooling = "mean" if task == "regression" else "auto"
            model = fit(data, tiny_config(root / "checkpoints", pooling=pooling))
            made[task] = Fitted(data, model, root / "out", served(model, root / "out"))
        return made[task]

    return make
