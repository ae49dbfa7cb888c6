"""The one interface every model implements; `pipeline.common.train.train_model` does the rest
(docs/architecture.md)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from serving.schemas import GraphInput, Outputs, Profile, TextInput, TokenizerSpec

if TYPE_CHECKING:
    from pipeline.common.data import Split, Splits
    from pipeline.common.tracking import Run

MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class ModelGraph:
    """What `to_onnx` wrote: probabilities [N, C] in `profile.labels` order, or values [N, 1]
    (and `interval` [N, 2]) in the fitted space, named in `outputs`. Compute probabilities in
    float64: calibration takes their logit, where float32 rounding near 1 is a large error."""

    file: str  # the ONNX file name, normally MODEL_FILE
    outputs: Outputs
    inputs: list[GraphInput] = field(default_factory=list)  # tabular: one [N, 1] input per column
    text_input: TextInput | None = None  # text: how the input string is built
    tokenizer: TokenizerSpec | None = None  # text: the tokenizer file written beside the graph


class Model(ABC):
    """One trainable model: fit, predict natively, write an equivalent ONNX graph. Subclasses set
    `config_class` (the dataclass of `configs/<name>/`) and implement the abstract methods."""

    kind: ClassVar[Literal["tabular", "text"]] = "tabular"  # how serving feeds the graph
    config_class: ClassVar[type]
    # Largest |ONNX - native| allowed on probabilities (classification) or on values relative
    # to max(1, |value|) (regression); a model may set its own.
    tolerance: float = 1e-5

    @classmethod
    def config_node(cls, cfg: Any, name: str) -> Any:
        """The part of the config `config_class` validates: `cfg[name]` (plus other groups)."""
        return cfg.get(name) or {}

    def __init__(self, name: str, config: Any, profile: Profile, seed: int) -> None:
        self.name = name
        self.config = config
        self.profile = profile
        self.seed = seed

    def check(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Refuse settings this model cannot train or export, in one line (PipelineError)."""

    def skip_reason(self) -> str | None:
        """Why this model cannot train on this data (e.g. no text column); None to train."""
        return None

    @abstractmethod
    def fit(self, data: Splits, run: Run | None) -> None:
        """Fit on `data.train` (`data.val` may serve early stopping); `run` logs curves."""

    @abstractmethod
    def predict(self, split: Split) -> np.ndarray:
        """Native predictions: probabilities [N, C] (uncalibrated) or values [N] (fitted space)."""

    def predict_interval(self, split: Split) -> np.ndarray | None:
        """Quantile intervals [N, 2] (lower, upper) in the fitted space, or None."""
        return None

    @abstractmethod
    def to_onnx(self, out_dir: Path) -> ModelGraph:
        """Write the ONNX graph (and any file it needs) into `out_dir`; outputs as `predict`."""

    def edge_splits(self, data: Splits) -> dict[str, Split]:
        """Named rows the graph must agree on besides the test split (nulls, odd values...)."""
        from pipeline.common.parity import edge_splits

        return edge_splits(data)

    def save(self, out_dir: Path) -> None:  # noqa: B027 - optional hook
        """Write the native model files (for MLflow and for people), never read by serving."""

    def log_model(self, run: Run, out_dir: Path) -> None:  # noqa: B027 - optional hook
        """Log the native model to MLflow in its own flavor (`out_dir` holds `save`'s files)."""

    def importance(self) -> dict[str, float]:
        """Feature → importance, for the models that have one (plotted and reported)."""
        return {}

    def params(self) -> dict[str, float | int | str | bool | None]:
        """Facts learned while fitting (e.g. the best iteration), logged and put in the card."""
        return {}
