"""Parity of a model's final ONNX graph, run through `serving.runtime`, with its native final
predictions on the test split and edge rows: |Δ probability| within the tolerance and labels equal
except on ties, or |Δ value| within tolerance × max(1, |value|)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.data import Predictions, Split, Splits
from pipeline.common.decision import labels, positive_index
from serving.features import prepare_columns
from serving.runtime import load_model
from serving.schemas import Decision, ModelEntry, ParityCheck, ParityReport, Profile

BASE_ROWS = 4  # test rows each edge value is applied to
EXTREMES = (1e30, -1e30, 0.0, -0.0, 1e-30)
UNSEEN = ("__unseen_category__", "ÜNSEEN Ünïcode 🙂")
LONG_TEXT_WORDS = 5000
EDGE_TEXTS = (
    "",
    "   ",
    "\t\n\r ",
    "?!.,;:-",
    "great 👍🏽 service 🙂🙂 refund💸",
    "e\u0301cole cafe\u0301 n\u0303 a\u0308\u0301 \u0301alone",  # combining marks
    "日本語のテキスト Ελληνικά русский текст العربية हिन्दी ภาษาไทย",
    "ÉCOLE Straße İstanbul ǅemal ΣΊΣΥΦΟΣ ﬁne Ⅻ",  # case folding that differs across engines
    "ctrl\x00char\x07s \x1b[31mred\x1b[0m zero\u200bwidth join\u200dme bidi\u202e",
    "runs    of\u00a0\u2003spaces\u3000and\ttabs\n\nand lines",
    "Ünicode ÜNICODE ünicode 123 4.5 x_y",
)


def edge_variants(data: Splits, changes: Sequence[tuple[str | None, Sequence[Any]]]) -> Split:
    """A few test rows (the same for the same seed) once per (column, value) of `changes`, with
    the column set to the value (None: every raw input), prepared as serving prepares them."""
    rng = np.random.default_rng(data.profile.seed)
    size = min(BASE_ROWS, len(data.test))
    base = data.test.take(np.sort(rng.choice(len(data.test), size=size, replace=False)), "edge")
    spec, parts = data.profile.features, []
    for column, values in changes:
        # prepared columns keep the cleaned raw inputs under their names
        raw = {c: np.concatenate([base.columns[c]] * len(values)) for c in spec.raw_inputs}
        for c in spec.raw_inputs if column is None else [column]:
            raw[c] = np.array([v for v in values for _ in range(len(base))], dtype=object)
        parts.append(prepare_columns(raw, spec))
    rows = base.take(np.tile(np.arange(len(base)), sum(len(values) for _, values in changes)))
    return Split(
        base.name, {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}, rows.y, rows.ids
    )


def edge_splits(data: Splits) -> dict[str, Split]:
    """Test rows with nulls (each column, then all), unseen levels, extreme numbers, odd texts."""
    spec = data.profile.features
    long_text = " ".join(["Long", "text", "wörds", "🙂"] * (LONG_TEXT_WORDS // 4))
    changes: dict[str, list[tuple[str | None, Sequence[Any]]]] = {
        "edge:nulls": [(c, [None]) for c in [*spec.raw_inputs, None]],
        "edge:unseen_categories": [(c, UNSEEN) for c in spec.categorical],
        "edge:extreme_numbers": [(c, EXTREMES) for c in spec.numeric],
        "edge:texts": [(spec.text, [*EDGE_TEXTS, long_text])] if spec.text else [],
    }
    return {name: edge_variants(data, change) for name, change in changes.items() if change}


def check_model(
    out_dir: Path,
    entry: ModelEntry,
    wanted: Mapping[str, Predictions],
    profile: Profile,
    tolerance: float,
) -> ParityReport:
    """Compare the graph in `out_dir` with the native predictions `wanted`, by check name."""
    loaded = load_model(out_dir, entry)
    checks = []
    for name, want in wanted.items():
        got, tol = loaded.run(want.split.columns), tolerance * want.gain
        checks.append(compare(entry.name, name, got, want, entry.decision, profile, tol))
    return ParityReport(checks=checks, passed=all(c.passed for c in checks))


def compare(
    model: str,
    name: str,
    got: Mapping[str, np.ndarray],
    want: Predictions,
    decision: Decision | None,
    profile: Profile,
    tolerance: float,
) -> ParityCheck:
    """One check: graph outputs `got` against the native predictions `want`."""
    mismatches = 0
    if profile.is_classification:
        assert want.proba is not None and decision is not None
        graph = got["probabilities"]
        diff = gap(graph, want.proba, scale=False)
        differ = labels(graph, decision, profile) != labels(want.proba, decision, profile)
        mismatches = int((differ & ~_ties(want.proba, decision, profile, tolerance)).sum())
    else:
        assert want.values is not None
        diff = gap(got["value"], want.values, scale=True)
        if want.interval is not None:
            diff = max(diff, gap(got["interval"], want.interval, scale=True))
    return ParityCheck(
        model=model,
        name=name,
        rows=len(want.split),
        max_abs_diff=diff,
        tolerance=tolerance,
        label_mismatches=mismatches,
        passed=diff <= tolerance and mismatches == 0,
    )


def gap(got: np.ndarray, want: np.ndarray, scale: bool) -> float:
    """Largest |got - want| (relative to max(1, |want|) when `scale`); equal infinities and
    NaN on both sides count as agreement, NaN on one side as infinitely far."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(got - want) / (np.maximum(1.0, np.abs(want)) if scale else 1.0)
    gap = np.where(same, 0.0, np.nan_to_num(gap, nan=np.inf))
    return float(gap.max()) if gap.size else 0.0


def _ties(proba: np.ndarray, decision: Decision, profile: Profile, tol: float) -> np.ndarray:
    """Rows whose native label hangs on a difference within the tolerance."""
    if decision.kind == "threshold":
        assert decision.threshold is not None
        return np.asarray(np.abs(proba[:, positive_index(profile)] - decision.threshold) <= tol)
    weighted = proba * np.asarray(decision.class_weights or 1.0)
    top2 = np.sort(weighted, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0] <= tol)


def summary_line(report: ParityReport, what: str = "ONNX parity") -> str:
    """The worst failing check in one line (the report has one), and which others failed."""
    failed = [c for c in report.checks if not c.passed]
    worst = max(failed, key=lambda c: (c.label_mismatches, c.max_abs_diff / c.tolerance))
    others = sorted({f"{c.model}/{c.name}" for c in failed} - {f"{worst.model}/{worst.name}"})
    return (
        f"{what} failed for {worst.model} on {worst.name}: max |Δ| {worst.max_abs_diff:.3g} "
        f"(tolerance {worst.tolerance:g}), {worst.label_mismatches} label(s) differ over "
        f"{worst.rows} rows" + (f"; also failing: {', '.join(others)}" if others else "")
    )
