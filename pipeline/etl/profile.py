"""Statistics of the kept rows, read back from the split files on one DuckDB thread: sums are
added in the same order on every run, so `profile.json` is byte-identical for the same data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.common.data import LABEL
from pipeline.etl.source import sql_ident, sql_string
from serving.schemas import SPLITS, ColumnStats, FeatureSpec, TargetStats

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def split_rows(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, int]:
    """Rows per split; also creates the view `kept` (every split, with its name in `__s`)."""
    parts = [
        f"SELECT *, {sql_string(s)} AS __s FROM read_parquet({sql_string(out / f'{s}.parquet')})"
        for s in SPLITS
    ]
    con.execute("SET threads = 1")
    con.execute(f"CREATE OR REPLACE TEMP VIEW kept AS {' UNION ALL '.join(parts)}")
    counts = dict(con.execute("SELECT __s, count(*) FROM kept GROUP BY 1").fetchall())
    return {s: int(counts.get(s, 0)) for s in SPLITS}


NULL_RATE = "avg(CASE WHEN {c} IS NULL THEN 1.0 ELSE 0.0 END)"  # of every column
AGGREGATES = {  # role → statistic → SQL over the column `{c}`
    "numeric": {"min": "min({c})", "max": "max({c})", "mean": "avg({c})", "std": "stddev_pop({c})"},
    "datetime": {"min": "min({c})", "max": "max({c})"},
    "text": {"empty_rate": "avg(CASE WHEN {c} = '' THEN 1.0 ELSE 0.0 END)"},
}


def column_stats(
    con: duckdb.DuckDBPyConnection, spec: FeatureSpec, id_col: str, max_levels: int
) -> dict[str, ColumnStats]:
    """Per column its null rate and its role's statistics (in one scan), and category levels."""
    by_role = {"id": [id_col], "numeric": spec.numeric, "categorical": spec.categorical}
    by_role |= {"datetime": spec.datetime, "text": spec.text_column}
    roles = {col: role for role, cols in by_role.items() for col in cols}
    aggregates = {}  # (column, statistic) → SQL
    for col, role in roles.items():
        for stat, sql in {"null_rate": NULL_RATE, **AGGREGATES.get(role, {})}.items():
            aggregates[col, stat] = sql.format(c=sql_ident(col))
    found = con.execute(f"SELECT {', '.join(aggregates.values())} FROM kept").fetchall()[0]
    stats: dict[str, dict[str, Any]] = {col: {"role": role} for col, role in roles.items()}
    for (col, stat), value in zip(aggregates, found, strict=True):
        if value is not None:
            stats[col][stat] = value.isoformat() if isinstance(value, datetime) else float(value)
    for col in spec.categorical:  # most frequent first, ties by name: batch order changes nothing
        c = sql_ident(col)
        n = con.execute(f"SELECT count(DISTINCT {c}) FROM kept").fetchall()[0][0]
        top = con.execute(
            f"SELECT {c}, count(*) FROM kept WHERE {c} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 "
            f"LIMIT {int(max_levels)}"
        ).fetchall()
        stats[col] |= {"n_levels": int(n), "level_counts": {str(k): int(v) for k, v in top}}
    return {col: ColumnStats(**s) for col, s in stats.items()}


def label_distribution(
    con: duckdb.DuckDBPyConnection, labels: list[str]
) -> dict[str, dict[str, int]]:
    """Split → class → rows."""
    out = {s: dict.fromkeys(labels, 0) for s in SPLITS}
    counts = con.execute(f"SELECT __s, {LABEL}, count(*) FROM kept GROUP BY 1, 2").fetchall()
    for split, index, n in counts:
        out[split][labels[index]] = int(n)
    return out


def target_stats(con: duckdb.DuckDBPyConnection) -> dict[str, TargetStats]:
    """Split → the regression target's distribution (in its own units)."""
    y = LABEL
    rows = con.execute(
        f"SELECT __s, count(*), min({y}), max({y}), avg({y}), stddev_pop({y}), "
        f"quantile_cont({y}, {list(QUANTILES)}) FROM kept GROUP BY 1"
    ).fetchall()
    return {
        split: TargetStats(
            count=n,
            min=lo,
            max=hi,
            mean=mean,
            std=std,
            quantiles={str(p): float(v) for p, v in zip(QUANTILES, qs, strict=True)},
        )
        for split, n, lo, hi, mean, std, qs in rows
    }
