"""Column statistics accumulated batch by batch (the whole table never sits in memory)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipeline.common.dataset import LABEL, SPLITS


@dataclass
class StatsAccumulator:
    """Running per-column statistics over every written row."""

    numeric: list[str]
    categorical: list[str]
    datetime: list[str]
    text: str | None
    rows: int = 0
    nulls: Counter[str] = field(default_factory=Counter)
    sums: dict[str, list[float]] = field(default_factory=dict)  # col → [count, sum, sumsq, lo, hi]
    levels: dict[str, Counter[str]] = field(default_factory=dict)
    times: dict[str, list[Any]] = field(default_factory=dict)
    empty_text: int = 0
    labels: dict[str, Counter[int]] = field(default_factory=lambda: {s: Counter() for s in SPLITS})

    def update(self, frame: pl.DataFrame, split_codes: str) -> None:
        """Add one batch of kept rows; column `split_codes` holds each row's index in SPLITS."""
        self.rows += frame.height
        for col, n in zip(frame.columns, frame.null_count().row(0), strict=True):
            self.nulls[col] += int(n)
        aggregates = frame.select(
            *(e for col in self.numeric for e in _moments(col)),
            *(e for col in self.datetime for e in _span(col)),
            *([(pl.col(self.text) == "").sum().alias("empty_text")] if self.text else []),
        ).row(0, named=True)
        for col in self.numeric:
            count, total, sq, lo, hi = (aggregates[f"{col}|{k}"] for k in _MOMENTS)
            if count:
                acc = self.sums.setdefault(col, [0.0, 0.0, 0.0, float("inf"), float("-inf")])
                acc[0] += count
                acc[1] += float(total)
                acc[2] += float(sq)
                acc[3] = min(acc[3], float(lo))
                acc[4] = max(acc[4], float(hi))
        for col in self.datetime:
            lo, hi = aggregates[f"{col}|min"], aggregates[f"{col}|max"]
            if lo is not None:
                span = self.times.setdefault(col, [lo, hi])
                span[0], span[1] = min(span[0], lo), max(span[1], hi)
        if self.text:
            self.empty_text += int(aggregates["empty_text"])
        for col in self.categorical:
            counts = frame[col].drop_nulls().value_counts()
            self.levels.setdefault(col, Counter()).update(dict(counts.iter_rows()))
        for code, label, n in frame.group_by(split_codes, LABEL).len().iter_rows():
            self.labels[SPLITS[code]][label] += n

    def columns(self, schema: dict[str, str], max_levels: int) -> dict[str, dict[str, Any]]:
        """Profile `columns`: dtype, null rate and what each kind of column needs downstream."""
        out: dict[str, dict[str, Any]] = {}
        n = max(self.rows, 1)
        for col, dtype in schema.items():
            info: dict[str, Any] = {"dtype": dtype, "null_rate": self.nulls[col] / n}
            if col in self.sums:
                count, total, sq, lo, hi = self.sums[col]
                mean = total / count
                info |= {
                    "min": lo,
                    "max": hi,
                    "mean": mean,
                    "std": max(sq / count - mean * mean, 0.0) ** 0.5,
                }
            if col in self.levels:
                # Ties broken by name: batch order must not change the profile.
                top = sorted(self.levels[col].items(), key=lambda kv: (-kv[1], kv[0]))[:max_levels]
                info |= {
                    "n_levels": len(self.levels[col]),
                    "levels": [k for k, _ in top],
                    "level_counts": {k: v for k, v in top},
                }
            if col in self.times:
                info |= {"min": str(self.times[col][0]), "max": str(self.times[col][1])}
            if col == self.text:
                info |= {"empty_rate": self.empty_text / n}
            out[col] = info
        return out

    def label_distribution(self, labels: list[str]) -> dict[str, dict[str, int]]:
        """Split → class name → rows."""
        return {
            s: {labels[i]: int(c[i]) for i in range(len(labels))} for s, c in self.labels.items()
        }


_MOMENTS = ("count", "sum", "sumsq", "min", "max")


def _moments(col: str) -> list[pl.Expr]:
    c = pl.col(col)
    exprs = [c.count(), c.sum(), (c * c).sum(), c.min(), c.max()]
    return [e.alias(f"{col}|{k}") for e, k in zip(exprs, _MOMENTS, strict=True)]


def _span(col: str) -> list[pl.Expr]:
    return [pl.col(col).min().alias(f"{col}|min"), pl.col(col).max().alias(f"{col}|max")]
