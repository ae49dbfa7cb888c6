"""One served model: raw columns → checked rows → prepared features → graph outputs → labels.

The API (`/v1/predict`, the Open Inference Protocol) and batch scoring both score through
`Scorer`, so a record gets the same checks, features, outputs and label wherever it is scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.checks import Rejection, check_columns
from serving.features import prepare_columns
from serving.runtime import LoadedModel, load_model
from serving.schemas import Contract, ModelEntry

Outputs = dict[str, np.ndarray]  # probabilities [N, C] + label [N] (indices) | value [N] ...


class Scorer:
    """Checks, features, the graph and the contract's decision for one model."""

    def __init__(self, contract: Contract, model: LoadedModel, max_string_length: int) -> None:
        self.contract = contract
        self.model = model
        self.max_string_length = max_string_length
        self.labels = contract.labels
        decision = model.entry.decision
        self.threshold: float | None = None
        self.positive = -1  # index of the positive class (binary)
        self.weights: np.ndarray | None = None
        if contract.task == "binary":
            positive = (decision.positive if decision else None) or self.labels[-1]
            self.positive = self.labels.index(positive)
            # No tuned threshold in the contract: the label is the likelier class.
            tuned = decision.threshold if decision is not None else None
            self.threshold = 0.5 if tuned is None else tuned
        elif decision is not None and decision.class_weights:
            self.weights = np.asarray(decision.class_weights, dtype=np.float64)

    @property
    def entry(self) -> ModelEntry:
        return self.model.entry

    @property
    def name(self) -> str:
        return self.model.entry.name

    @property
    def version(self) -> str:
        return self.model.entry.version

    @property
    def is_text(self) -> bool:
        return self.model.entry.kind == "text"

    def check(
        self, raw: Mapping[str, Sequence[Any] | np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[Rejection]]:
        """Typed columns and the rows that cannot be scored (see `serving.checks`)."""
        return check_columns(
            raw, self.contract.input_schema, self.contract.features, self.max_string_length
        )

    def score(self, typed: Mapping[str, np.ndarray]) -> Outputs:
        """Graph outputs (float64) for checked rows, plus `label` indices for classification."""
        outputs = self.model.run(prepare_columns(typed, self.contract.features))
        proba = outputs.get("probabilities")
        if proba is not None:
            outputs["label"] = self.decide(proba)
        return outputs

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Label indices: the tuned threshold on the positive class (binary), else argmax of the
        probabilities times the contract's class weights."""
        if self.threshold is not None:
            other = 1 - self.positive
            return np.where(proba[:, self.positive] >= self.threshold, self.positive, other)
        weighted = proba if self.weights is None else proba * self.weights
        return np.asarray(weighted.argmax(axis=1))


def load_scorers(
    contract: Contract, directory: Path, threads: int, text_threads: int, max_string_length: int
) -> dict[str, Scorer]:
    """Every model of the contract, checksums verified, each warmed up on one synthetic record."""
    scorers = {}
    for name, entry in contract.models.items():
        model = load_model(directory, entry, text_threads if entry.kind == "text" else threads)
        scorer = Scorer(contract, model, max_string_length)
        typed, rejected = scorer.check(warmup_columns(contract))
        assert not rejected, rejected
        scorer.score(typed)
        scorers[name] = scorer
    return scorers


def warmup_columns(contract: Contract) -> dict[str, list[Any]]:
    """One valid raw record, column-oriented, for the first (slow) run of each graph."""
    values = {"number": 0.0, "boolean": True, "datetime": "2024-01-01T12:00:00", "text": "ok"}
    out: dict[str, list[Any]] = {}
    for field in contract.input_schema:
        if field.type == "category":
            out[field.name] = [(field.categories or ["unknown"])[0][: field.max_length or None]]
        elif field.type == "number" and field.min is not None:
            out[field.name] = [field.min]
        else:
            out[field.name] = [values[field.type]]
    return out


def slice_outputs(outputs: Outputs, start: int, stop: int) -> Outputs:
    return {name: values[start:stop] for name, values in outputs.items()}


def concat_outputs(parts: Sequence[Outputs]) -> Outputs:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
