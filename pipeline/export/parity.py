"""Serving parity: the exported files, run by the server's own code on records as callers send
them, must give the model stage's test predictions, and sound answers on edge records.
Probabilities are compared absolutely, values (and interval bounds) relative to max(1, |value|)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.data import Predictions
from pipeline.common.errors import PipelineError
from pipeline.common.parity import compare, gap
from serving.features import prepare_records
from serving.runtime import LoadedModel
from serving.schemas import ParityCheck, Profile


def output_of(
    model: LoadedModel, records: Sequence[Mapping[str, Any]], profile: Profile
) -> np.ndarray:
    """Outputs for raw records through the serving code: probabilities, or value (+ bounds)."""
    out = model.run(prepare_records(records, profile.features))
    if profile.is_classification:
        return out["probabilities"]
    return np.column_stack([out["value"], *([out["interval"]] if "interval" in out else [])])


def read_reference(
    path: Path, model: LoadedModel, profile: Profile, ids: np.ndarray
) -> Predictions:
    """The stage's test predictions, checked to be the rows `ids` with the graph's outputs."""
    reference = Predictions.read(path, profile, model.name)
    bounds = model.entry.outputs.interval is not None
    if not np.array_equal(reference.split.ids, ids) or (reference.interval is not None) != bounds:
        raise PipelineError(
            "its rows or outputs do not match the test split and the exported graph",
            where=str(path),
            fix=f"re-run the model stage: dvc repro {model.name}",
        )
    return reference


def reference_check(
    model: LoadedModel,
    records: Sequence[Mapping[str, Any]],
    reference: Predictions,
    profile: Profile,
    tol: float,
) -> ParityCheck:
    """The test split's records against the stage's `predictions_test.parquet`."""
    got = model.run(prepare_records(records, profile.features))
    return compare(model.name, "test split", got, reference, model.entry.decision, profile, tol)


def edge_check(
    model: LoadedModel,
    name: str,
    records: Sequence[Mapping[str, Any]],
    profile: Profile,
    tol: float,
) -> ParityCheck:
    """Edge records: batched equals one by one (an answer must not depend on its neighbours),
    finite, probabilities in [0, 1] summing to 1; `max_abs_diff` is the worst deviation."""
    batch = output_of(model, records, profile)
    alone = np.concatenate([output_of(model, [r], profile) for r in records])
    finite = np.isfinite(batch).all() and np.isfinite(alone).all()  # NaN here is a failure
    worst = gap(batch, alone, scale=not profile.is_classification) if finite else float("inf")
    if profile.is_classification and np.isfinite(worst):
        outside = float(np.maximum(-batch, batch - 1.0).max(initial=0.0))
        worst = max(worst, outside, float(np.abs(batch.sum(axis=1) - 1.0).max(initial=0.0)))
    return ParityCheck(
        model=model.name,
        name=name,
        rows=len(records),
        max_abs_diff=worst,
        tolerance=tol,
        passed=worst <= tol,
    )
