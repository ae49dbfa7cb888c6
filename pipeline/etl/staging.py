"""The view `staged`, one row per input row: its position `__pos`, a hash of its values `__h`,
the target as a class `__target` and a number `__y`, the configured columns typed (datetime text
stays text for `plan`) and the first failed check of its id and numbers (`__why`, `__value`).
The view `staged_rows` holds the same rows in input order, for the row pass."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipeline.etl.config import DataConfig
from pipeline.etl.source import Source, sql_ident, sql_string
from serving import features

# DuckDB's numeric type names (DECIMAL(p, s) included by prefix).
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
           "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")  # fmt: skip
Check = tuple[str, str, str]  # (condition, reason, offending value) as SQL expressions


def stage(con: duckdb.DuckDBPyConnection, source: Source, data: DataConfig, work: Path) -> None:
    """The views `staged` and `staged_rows`: the input typed by the data config (CSV and JSON
    via a staging file)."""
    q, t = sql_ident, source.types
    y = q(data.target)
    if t[data.target].startswith(NUMERIC):  # as a class name, whole numbers lose their ".0"
        whole = f"{y} = trunc({y}) AND abs({y}) < 1e15"  # false for NaN and ±inf
        target = f"CASE WHEN {whole} THEN {y}::BIGINT::VARCHAR ELSE {y}::VARCHAR END"
        number = f"CAST({y} AS DOUBLE)"
    else:
        target, number = _text(y), f"TRY_CAST(trim(CAST({y} AS VARCHAR)) AS DOUBLE)"
    select = [
        f"hash({', '.join(q(c) for c in data.columns)}) AS __h",
        f"{target} AS __target",
        f"{number} AS __y",
    ]
    checks: list[Check] = []
    if data.id:
        select.append(q(data.id))
        checks.append((f"{q(data.id)} IS NULL", sql_string(f"{data.id} is null"), "NULL"))
    words = sorted((features.TRUE_WORDS | features.FALSE_WORDS) - {"1", "0"})  # not numbers
    is_word = f"IN ({', '.join(map(sql_string, words))})"
    for i, col in enumerate(data.numeric):
        number = number_sql(col, t[col])
        select.append(f"{number} AS {q(col)}")
        if t[col] == "VARCHAR":  # a boolean column written as words
            select.append(f"lower(trim({q(col)})) {is_word} AS __word{i}")
        why = sql_string(f"{col} is not a number")
        checks.append((f"{q(col)} IS NOT NULL AND {number} IS NULL", why, q(col)))
    select += [f"CAST({q(c)} AS VARCHAR) AS {q(c)}" for c in data.categorical]
    for c in data.datetime:  # typed timestamps are normalised here
        if t[c].startswith("TIMESTAMP WITH TIME ZONE"):  # the naive time in `timezone`
            select.append(f"timezone({sql_string(data.timezone)}, {q(c)}) AS {q(c)}")
        elif t[c].startswith(("TIMESTAMP", "DATE")):
            select.append(f"CAST({q(c)} AS TIMESTAMP) AS {q(c)}")
        else:
            select.append(f"{_text(q(c))} AS {q(c)}")
    if data.text:
        select.append(f"CAST({q(data.text)} AS VARCHAR) AS {q(data.text)}")
    select += first_failure(checks)
    # A window: DuckDB then scans in input order (without one, DuckDB 2.0 may return the rows of
    # several Parquet files out of file order), but on one thread, carrying every column.
    in_order = (
        f"SELECT row_number() OVER () - 1 AS __pos, {', '.join(select)} FROM {source.relation}"
    )
    if source.format != "parquet":  # text is parsed once; later queries read the typed file
        out = sql_string(work / "staged.parquet")
        con.execute(f"COPY ({in_order}) TO {out} (FORMAT parquet, COMPRESSION lz4)")
        con.execute(f"CREATE OR REPLACE TEMP VIEW staged AS SELECT * FROM read_parquet({out})")
        con.execute("CREATE OR REPLACE TEMP VIEW staged_rows AS SELECT * FROM staged")
        return
    # Parquet is read in place by each pass. The plan's scans need no order, so there the
    # positions come from DuckDB's virtual columns and the files' row counts, and they run in
    # parallel: the plan took 6.7 s instead of 10.4 on 5M demo rows.
    located = (
        f"SELECT {_positions(con, source)} AS __pos, {', '.join(select)} FROM {source.relation}"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW staged AS {located}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW staged_rows AS {in_order}")


def _positions(con: duckdb.DuckDBPyConnection, source: Source) -> str:
    """SQL for a Parquet row's 0-based position in the input, in any scan order (by window when
    a column takes the name of DuckDB's virtual columns `file_index` or `file_row_number`)."""
    if {"file_index", "file_row_number"} & set(source.types):
        return "row_number() OVER () - 1"
    counts = dict(  # from the files' metadata: no column is read
        con.execute(f"SELECT file_index, count(*) FROM {source.relation} GROUP BY 1").fetchall()
    )
    sizes = (counts.get(i, 0) for i in range(len(source.files)))
    starts = list(itertools.accumulate(sizes, initial=0))[:-1]
    return f"[{', '.join(map(str, starts))}][file_index::BIGINT + 1] + file_row_number"


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


def _text(c: str) -> str:
    """SQL: the value as trimmed text, null when blank."""
    return f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"
