"""The view `staged`: the input typed by the data config, one row per input row.

Each staged row keeps its position (`__pos`), a hash of its raw values (`__h`, for exact
duplicates), the target as a class name (`__target`) and as a number (`__y`), the configured
columns cast to their types, and the first failed check of its id and numbers (`__why`, with the
offending `__value`). Typed timestamps are normalised here; datetime strings stay strings for
`serving.features` to parse (`plan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipeline.etl.config import DataConfig
from pipeline.etl.source import Source, sql_ident, sql_string
from serving import features

# DuckDB's numeric type names (DECIMAL(p, s) included by prefix).
NUMERIC: tuple[str, ...] = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
)
NUMERIC += ("DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
Check = tuple[str, str, str]  # (condition, reason, offending value) as SQL expressions


def stage(con: duckdb.DuckDBPyConnection, source: Source, data: DataConfig, work: Path) -> None:
    """The view `staged`: the input typed by the data config (CSV and JSON via a staging file)."""
    q, t = sql_ident, source.types
    select = [
        "row_number() OVER () - 1 AS __pos",
        f"hash({', '.join(q(c) for c in data.columns)}) AS __h",
        f"{_target_text(data.target, t[data.target])} AS __target",
        f"{_target_number(data.target, t[data.target])} AS __y",
    ]
    checks: list[Check] = []
    if data.id:
        select.append(q(data.id))
        checks.append((f"{q(data.id)} IS NULL", sql_string(f"{data.id} is null"), "NULL"))
    for i, col in enumerate(data.numeric):
        number = number_sql(col, t[col])
        select.append(f"{number} AS {q(col)}")
        if t[col] == "VARCHAR":  # a boolean column written as words
            words = sorted((features.TRUE_WORDS | features.FALSE_WORDS) - {"1", "0"})
            word = f"lower(trim({q(col)})) IN ({', '.join(map(sql_string, words))})"
            select.append(f"{word} AS __word{i}")
        checks.append(
            (
                f"{q(col)} IS NOT NULL AND {number} IS NULL",
                sql_string(f"{col} is not a number"),
                q(col),
            )
        )
    select += [f"CAST({q(c)} AS VARCHAR) AS {q(c)}" for c in data.categorical]
    select += [f"{_datetime(c, t[c], data.timezone)} AS {q(c)}" for c in data.datetime]
    if data.text:
        select.append(f"CAST({q(data.text)} AS VARCHAR) AS {q(data.text)}")
    select += first_failure(checks)
    typed = f"SELECT {', '.join(select)} FROM {source.relation}"
    if source.format == "parquet":  # read in place: each query reads only the columns it needs
        con.execute(f"CREATE OR REPLACE TEMP VIEW staged AS {typed}")
        return
    out = sql_string(work / "staged.parquet")
    # Text is parsed once; every later query reads the typed file.
    con.execute(f"COPY ({typed}) TO {out} (FORMAT parquet, COMPRESSION lz4)")
    con.execute(f"CREATE OR REPLACE TEMP VIEW staged AS SELECT * FROM read_parquet({out})")


def first_failure(checks: Sequence[Check], why: str = "__why") -> list[str]:
    """The reason (`why`) and `__value` of the first failing check; NULL when all pass."""
    if not checks:
        return [f"NULL::VARCHAR AS {why}", "NULL::VARCHAR AS __value"]
    reason = " ".join(f"WHEN {c} THEN {r}" for c, r, _ in checks)
    value = " ".join(f"WHEN {c} THEN left(CAST({v} AS VARCHAR), 80)" for c, _, v in checks)
    return [f"CASE {reason} END AS {why}", f"CASE {value} END AS __value"]


def number_sql(col: str, sql_type: str) -> str:
    """SQL reading a column as `serving.features.to_number(value, boolean=True)` reads it."""
    c = sql_ident(col)
    if sql_type.startswith(NUMERIC) or sql_type == "BOOLEAN":
        return f"CAST({c} AS DOUBLE)"
    word = f"lower(trim(CAST({c} AS VARCHAR)))"
    true, false = (
        ", ".join(map(sql_string, sorted(w))) for w in (features.TRUE_WORDS, features.FALSE_WORDS)
    )
    return (
        f"CASE WHEN {word} IN ({true}) THEN 1.0 WHEN {word} IN ({false}) THEN 0.0 "
        f"ELSE TRY_CAST(trim(CAST({c} AS VARCHAR)) AS DOUBLE) END"
    )


def _datetime(col: str, sql_type: str, tz: str) -> str:
    """Typed timestamps normalised here; strings are kept for `serving.features` to parse."""
    c = sql_ident(col)
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone({sql_string(tz)}, {c})"  # the naive time in `tz`
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({c} AS TIMESTAMP)"
    return f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def _target_text(col: str, sql_type: str) -> str:
    """The target as a class name: numbers that are whole are written without ".0"."""
    c = sql_ident(col)
    if sql_type.startswith(NUMERIC):
        whole = f"{c} = trunc({c}) AND abs({c}) < 1e15"  # false for NaN and ±inf
        text = f"CAST({c} AS VARCHAR)"
        return f"CASE WHEN {whole} THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) ELSE {text} END"
    return f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def _target_number(col: str, sql_type: str) -> str:
    c = sql_ident(col)
    if sql_type.startswith(NUMERIC):
        return f"CAST({c} AS DOUBLE)"
    return f"TRY_CAST(trim(CAST({c} AS VARCHAR)) AS DOUBLE)"
