"""Parity of each re-loaded ONNX file against the native model: numbers, labels, a report.

A check compares ONNX Runtime's output with the native model's on the same rows: the largest
absolute difference (probabilities or logits) must stay within the tolerance, and the predicted
labels must be identical except where the native top two classes tie within that tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import PipelineError


@dataclass(frozen=True)
class Check:
    """One comparison: which model, which rows, how far apart, and whether that passes."""

    model: str
    name: str
    rows: int
    max_abs_diff: float
    tolerance: float
    label_mismatches: int  # differing labels where the native top two classes do not tie
    ties: int  # rows whose native top two classes are within the tolerance
    gating: bool = True  # False: reported for information, never fails the stage

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.label_mismatches == 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare(
    model: str,
    name: str,
    onnx_out: np.ndarray,
    native_out: np.ndarray,
    tolerance: float,
    gating: bool = True,
) -> Check:
    """Compare two `[N, n_classes]` arrays (probabilities or logits)."""
    onnx_out = np.asarray(onnx_out, dtype=np.float64)
    native_out = np.asarray(native_out, dtype=np.float64)
    if onnx_out.shape != native_out.shape:
        raise PipelineError(
            f"{model}: ONNX output shape {onnx_out.shape} != native {native_out.shape} on {name}",
            where=f"models/export/{model}.onnx",
            fix="check the exported outputs (one column per class)",
        )
    if onnx_out.size == 0:
        return Check(model, name, 0, 0.0, tolerance, 0, 0, gating)
    diff = np.abs(onnx_out - native_out)
    max_diff = float(np.nanmax(diff)) if not np.isnan(diff).all() else float("inf")
    if np.isnan(onnx_out).any() != np.isnan(native_out).any():
        max_diff = float("inf")
    top2 = np.sort(native_out, axis=1)[:, -2:]
    tie = (top2[:, 1] - top2[:, 0]) <= tolerance
    differ = onnx_out.argmax(axis=1) != native_out.argmax(axis=1)
    return Check(
        model=model,
        name=name,
        rows=int(onnx_out.shape[0]),
        max_abs_diff=max_diff,
        tolerance=tolerance,
        label_mismatches=int((differ & ~tie).sum()),
        ties=int(tie.sum()),
        gating=gating,
    )


def session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for a model file (re-loaded from disk, as serving does)."""
    import onnxruntime as ort

    from serving.runtime import cpu_session

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's initialiser notes are not actionable
    return cpu_session(str(path), options)  # the graph as the server runs it


def failures(checks: list[Check]) -> list[Check]:
    """The gating checks that did not pass."""
    return [c for c in checks if c.gating and not c.passed]


def raise_on_failure(checks: list[Check], report_hint: str) -> None:
    """Fail the stage in one line naming the worst failing check."""
    failed = failures(checks)
    if not failed:
        return
    worst = max(failed, key=lambda c: (c.label_mismatches, c.max_abs_diff / c.tolerance))
    others = sorted({f"{c.model}/{c.name}" for c in failed} - {f"{worst.model}/{worst.name}"})
    raise PipelineError(
        f"ONNX parity failed for {worst.model} on {worst.name}: max |Δ| {worst.max_abs_diff:.3g} "
        f"(tolerance {worst.tolerance:g}), {worst.label_mismatches} label(s) differ over "
        f"{worst.rows} rows" + (f"; also failing: {', '.join(others)}" if others else ""),
        where=f"models/{worst.model}",
        fix=report_hint,
    )


def summarise(checks: list[Check]) -> dict[str, dict[str, Any]]:
    """Per model: worst gating difference, label mismatches, rows checked, pass/fail."""
    out: dict[str, dict[str, Any]] = {}
    for check in checks:
        if not check.gating:
            continue
        entry = out.setdefault(
            check.model,
            {"max_abs_diff": 0.0, "label_mismatches": 0, "rows": 0, "checks": 0, "passed": True},
        )
        entry["max_abs_diff"] = max(entry["max_abs_diff"], check.max_abs_diff)
        entry["label_mismatches"] += check.label_mismatches
        entry["rows"] += check.rows
        entry["checks"] += 1
        entry["passed"] = entry["passed"] and check.passed
    return out
