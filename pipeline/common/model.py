"""The one interface every model implements; `pipeline.common.train` does everything else.

A model stage is a package `pipeline/<name>/` whose `core.py` defines a `Model` subclass and
whose `__main__.py` is `sys.exit(run_stage("<name>", train_entry(MyModel, "<name>")))`. The
training runner (`pipeline.common.train.train_model`) then, for every model alike:

1. validates the config (`config_class`, `configs/<name>/`) and `configs/decision/`, asks
   `skip_reason` and `check` before any work, then loads the processed splits (`Splits`);
2. fits the model on train (`fit`; early stopping may use val);
3. predicts val and test natively (`predict`), calibrates classification probabilities on val
   (`calibration` config) and, for binary tasks, tunes the decision threshold on val;
4. evaluates val and test the same way for every model (metrics, plots, predictions files);
5. writes the ONNX graph (`to_onnx`), appends the calibration and any target transform's
   inverse to it, and checks it against the native model on the test split and the model's edge
   rows (`edge_splits`) within `tolerance`, through the same code the server runs;
6. writes `models/trained/<name>/` (graph, `card.json`, predictions, native files from `save`),
   `metrics/<name>.json` and `plots/<name>/` atomically, and logs all of it to MLflow.

Export, report and serving read only the card and the graph, so they never name a model.
"""

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
    """What `to_onnx` wrote into the directory it was given.

    The graph's outputs are `probabilities` [N, C] (float, rows summing to 1, classes in
    `profile.labels` order) for classification, or `value` [N, 1] (float) for regression, in
    the space the model was fitted in (log1p units when the profile says so). Optional extra
    outputs, e.g. `interval` [N, 2], are named in `outputs`. The runner renames them to the
    contract names (`graph.finish`). Compute probabilities in float64 (e.g. a float64 softmax of
    float32 logits): calibration turns them into logits, and near 1 a float32 probability's
    rounding becomes a large logit error.
    """

    file: str  # the ONNX file name, normally MODEL_FILE
    outputs: Outputs
    inputs: list[GraphInput] = field(default_factory=list)  # tabular: one [N, 1] input per column
    text_input: TextInput | None = None  # text: how the input string is built
    tokenizer: TokenizerSpec | None = None  # text: the tokenizer file written beside the graph
    extra_files: list[str] = field(default_factory=list)  # more files the graph needs


class Model(ABC):
    """One trainable model: fit, predict natively, write an equivalent ONNX graph.

    Subclasses set `config_class` (a dataclass validated from `configs/<name>/`) and implement
    the abstract methods; everything else has a default that suits most models.
    """

    kind: ClassVar[Literal["tabular", "text"]] = "tabular"  # how serving feeds the graph
    config_class: ClassVar[type]
    # Largest |ONNX - native| allowed on probabilities (classification) or on values relative
    # to max(1, |value|) (regression); a model may set its own.
    tolerance: float = 1e-5

    @classmethod
    def config_node(cls, cfg: Any, name: str) -> Any:
        """The part of the composed config that `config_class` validates: `cfg[name]`. A model
        that also reads another group (the text model reads `trainer`) merges it in here."""
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
        """Regression with quantile intervals: [N, 2] (lower, upper) in the fitted space; the
        graph then has an `interval` output too. None when the model has no interval."""
        return None

    @abstractmethod
    def to_onnx(self, out_dir: Path) -> ModelGraph:
        """Write the ONNX graph (and any file it needs) into `out_dir`; outputs as `predict`."""

    def edge_splits(self, data: Splits) -> dict[str, Split]:
        """Extra named rows the graph must agree on besides the test split (nulls, unseen
        categories, extreme numbers and odd texts by default; a model may add its own)."""
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
