"""One served model: raw columns → checked rows → prepared features → graph outputs → labels.

`/v1/predict`, the Open Inference Protocol and batch scoring all check their raw columns with
`check_columns` and score through `Scorer`: a record gets the same checks, features, outputs and
label wherever it is scored, and a value the features cannot compute rejects only its row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.features import prepare_columns, to_datetimes, to_numbers
from serving.runtime import LoadedModel, load_model
from serving.schemas import Contract, FeatureSpec, FieldSchema

Outputs = dict[str, np.ndarray]  # probabilities [N, C] + label [N] (indices) | value [N] ...
# Tabular graphs may read float32: a larger number would reach the model as infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)
DATETIME_MAX_LENGTH = 64


@dataclass(frozen=True, order=True)
class Rejection:
    """Why one row cannot be scored: the row, its first bad field and what was wrong."""

    row: int
    field: str
    message: str


def check_columns(
    raw: Mapping[str, Sequence[Any] | np.ndarray],
    fields: Sequence[FieldSchema],
    spec: FeatureSpec,
    max_string_length: int,
) -> tuple[dict[str, np.ndarray], list[Rejection]]:
    """Typed columns (float64 with NaN, datetime64[us] with NaT, object strings with None) and
    the rejected rows, in row order. Rejected rows keep a placeholder in the typed columns."""
    typed: dict[str, np.ndarray] = {}
    found: dict[int, Rejection] = {}
    for field in fields:
        values = raw[field.name]
        if field.type in ("number", "boolean"):
            column, problems = _numbers(values, field.type == "boolean")
        elif field.type == "datetime":
            fmt = spec.datetime_formats.get(field.name)
            column, problems = to_datetimes(values, fmt, spec.timezone)
        else:
            column, problems = _strings(values, field.max_length or max_string_length)
        if not field.nullable:  # np.isnan is true for NaN and NaT
            missing = [v is None for v in column] if column.dtype == object else np.isnan(column)
            problems += [(int(i), "may not be null") for i in np.flatnonzero(missing)]
        typed[field.name] = column
        for row, message in problems:  # a row's first problem, in schema order, is reported
            found.setdefault(row, Rejection(row, field.name, message))
    return typed, sorted(found.values())


def keep_rows(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The columns restricted to `rows` (a boolean mask or positions)."""
    return {name: column[rows] for name, column in columns.items()}


def _numbers(values: Sequence[Any] | np.ndarray, boolean: bool) -> tuple[np.ndarray, list[Any]]:
    column, problems = to_numbers(values, boolean)
    # NaN is a missing value (a null in JSON, an empty cell in a file); infinities are not.
    bad = np.abs(column) > FLOAT32_MAX  # true for ±inf, false for NaN
    if boolean:
        bad |= (column != 0) & (column != 1) & ~np.isnan(column)
    if bad.any():
        what = "true/false or 0/1" if boolean else f"a number within ±{FLOAT32_MAX:.4g} (float32)"
        problems += [
            (int(i), f"expected {what}, found {float(column[i])!r}") for i in np.flatnonzero(bad)
        ]
    return column, problems


def _strings(values: Sequence[Any] | np.ndarray, limit: int) -> tuple[np.ndarray, list[Any]]:
    odd = {
        i: v
        for i, v in enumerate(values)
        if v is not None and (type(v) is not str or len(v) > limit)
    }
    problems = [
        (i, f"{len(v)} characters, the limit is {limit}")
        if type(v) is str
        else (i, f"expected a string, found {type(v).__name__}")
        for i, v in odd.items()
    ]
    column = np.empty(len(values), dtype=object)  # odd values become None: a list would nest
    column[:] = [None if i in odd else v for i, v in enumerate(values)] if odd else list(values)
    return column, problems


class Scorer:
    """Checks, features, the graph and the contract's decision for one model."""

    def __init__(self, contract: Contract, model: LoadedModel, max_string_length: int) -> None:
        self.contract = contract
        self.model = model
        self.entry = model.entry
        self.name = model.entry.name
        self.version = model.entry.version
        self.is_text = model.entry.kind == "text"
        self.max_string_length = max_string_length
        self.labels = contract.labels
        decision = model.entry.decision
        self.threshold: float | None = None
        self.positive = -1  # index of the positive class (binary)
        self.weights: np.ndarray | None = None
        if contract.task == "binary":
            self.positive = self.labels.index((decision and decision.positive) or self.labels[-1])
            # No tuned threshold in the contract: the label is the likelier class.
            tuned = decision.threshold if decision is not None else None
            self.threshold = 0.5 if tuned is None else tuned
        elif decision is not None and decision.class_weights:
            self.weights = np.asarray(decision.class_weights, dtype=np.float64)

    def check(
        self, raw: Mapping[str, Sequence[Any] | np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[Rejection]]:
        """Typed columns and the rows that cannot be scored (see `check_columns`)."""
        return check_columns(
            raw, self.contract.input_schema, self.contract.features, self.max_string_length
        )

    def score(self, typed: Mapping[str, np.ndarray]) -> Outputs:
        """`run` on checked rows."""
        return self.run(prepare_columns(typed, self.contract.features))

    def run(self, prepared: Mapping[str, np.ndarray]) -> Outputs:
        """Graph outputs (float64) for prepared rows, plus `label` indices for classification:
        the threshold on the positive class (binary), else argmax of probabilities × weights."""
        outputs = self.model.run(prepared)
        proba = outputs.get("probabilities")
        if proba is not None and self.threshold is not None:
            above = proba[:, self.positive] >= self.threshold
            outputs["label"] = np.where(above, self.positive, 1 - self.positive)
        elif proba is not None:
            weighted = proba if self.weights is None else proba * self.weights
            outputs["label"] = np.asarray(weighted.argmax(axis=1))
        return outputs


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
