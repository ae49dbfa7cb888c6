"""The view `staged`: the input typed by the contract, with bookkeeping columns.

Each staged row keeps its input position (`__pos`), a hash of its raw values (`__h`, to find
exact duplicates), the target as text (`__target`), the contract columns cast to their types and
`__reason` (why the row is rejected; null when it is fine). Every later query and the row pass
read this view.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from pipeline.etl.contract import DataContract
from pipeline.etl.source import Source, reader_error, sql_string
from pipeline.etl.source import sql_ident as q

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")
BOOLEAN_WORD_PREFIX = "__word_"  # staged flag: the raw value was a boolean word (true/no/...)


def _numeric(col: str, sql_type: str) -> tuple[str, str | None]:
    """(cast expression, expression of the failure reason or None when it cannot fail)."""
    c = q(col)
    if sql_type == "BOOLEAN" or sql_type.startswith(NUMERIC_TYPES) or "DECIMAL" in sql_type:
        return f"CAST({c} AS DOUBLE)", None
    cast = f"COALESCE(TRY_CAST({c} AS DOUBLE), TRY_CAST(TRY_CAST({c} AS BOOLEAN) AS DOUBLE))"
    reason = (
        f"CASE WHEN {c} IS NOT NULL AND {cast} IS NULL "
        f"THEN {sql_string(col + ': ')} || '''' || left(CAST({c} AS VARCHAR), 40) || '''' "
        f"|| ' is not a number' END"
    )
    return cast, reason


def _datetime(col: str, sql_type: str) -> str:
    c = q(col)
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST(timezone('UTC', {c}) AS TIMESTAMP)"
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({c} AS TIMESTAMP)"
    # Strings are parsed later with serving.features.parse_datetime, as the server parses them.
    return f"CAST({c} AS VARCHAR)"


def _target(col: str, sql_type: str) -> str:
    c = q(col)
    if sql_type in ("FLOAT", "DOUBLE") or "DECIMAL" in sql_type:
        return (
            f"CASE WHEN {c} = round({c}) THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) "
            f"ELSE CAST({c} AS VARCHAR) END"
        )
    return f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def stage_select(source: Source, types: dict[str, str], contract: DataContract) -> str:
    """The SELECT that types the input and marks rows to reject."""
    select = [f"{source.position} AS __pos"]
    select.append(f"hash({', '.join(q(c) for c in contract.columns)}) AS __h")
    select.append("__target_raw AS __target")
    reasons = [
        f"CASE WHEN __target_raw IS NULL THEN {sql_string(contract.target + ' is null')} END"
    ]
    if contract.id:
        select.append(q(contract.id))
        reasons.append(
            f"CASE WHEN {q(contract.id)} IS NULL THEN {sql_string(contract.id + ' is null')} END"
        )
    for col in contract.numeric:
        cast, reason = _numeric(col, types[col])
        select.append(f"{cast} AS {q(col)}")
        if reason:
            reasons.append(reason)
            word = (
                f"TRY_CAST({q(col)} AS DOUBLE) IS NULL "
                f"AND TRY_CAST({q(col)} AS BOOLEAN) IS NOT NULL"
            )
            select.append(f"({word}) AS {q(BOOLEAN_WORD_PREFIX + col)}")
    for col in contract.categorical:
        select.append(f"CAST({q(col)} AS VARCHAR) AS {q(col)}")
    for col in contract.datetime:
        select.append(f"{_datetime(col, types[col])} AS {q(col)}")
    if contract.text:
        select.append(f"CAST({q(contract.text)} AS VARCHAR) AS {q(contract.text)}")
    select.append(f"NULLIF(concat_ws('; ', {', '.join(reasons)}), '') AS __reason")
    target = _target(contract.target, types[contract.target])
    inner = f"SELECT *, {target} AS __target_raw FROM {source.relation}"
    return f"SELECT {', '.join(select)} FROM ({inner})"


def stage(
    con: duckdb.DuckDBPyConnection, source: Source, contract: DataContract, spill: Path
) -> None:
    """Create the view `staged`; text formats are parsed once into a Parquet file in `spill`.

    Parquet input is typed on the fly (DuckDB reads only the columns each query needs); CSV and
    JSON are parsed once, so later queries and the row pass don't parse them again.
    """
    select = stage_select(source, source.types, contract)
    try:
        if source.format == "parquet":
            con.execute(f"CREATE OR REPLACE TEMP VIEW staged AS {select}")
            return
        spill.mkdir(parents=True, exist_ok=True)
        out = spill / "staged.parquet"
        con.execute(
            f"COPY ({select}) TO {sql_string(str(out))} "
            "(FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 100000)"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW staged AS "
            f"SELECT * FROM read_parquet({sql_string(str(out))})"
        )
    except duckdb.Error as exc:
        raise reader_error(exc, source.files, contract) from None


def row_pass_sql(
    con: duckdb.DuckDBPyConnection, hashed: np.ndarray | None = None, rows_in: int = 0
) -> str:
    """SELECT of the staged columns the row pass needs (not the row hash or boolean flags).

    With `hashed` (input positions), `__h` is added: the row hash at those positions, else null.
    A positional join with a flag per input row keeps the input order and streams.
    """
    names = [str(r[0]) for r in con.execute("DESCRIBE staged").fetchall()]
    keep = [f"s.{q(n)}" for n in names if n != "__h" and not n.startswith(BOOLEAN_WORD_PREFIX)]
    if hashed is None:
        return f"SELECT {', '.join(keep)} FROM staged s"
    flags = np.zeros(rows_in, dtype=bool)
    flags[hashed] = True
    con.register("hash_flags", pl.DataFrame({"f": flags}).to_arrow())
    return (
        f"SELECT {', '.join(keep)}, CASE WHEN f.f THEN s.__h END AS __h "
        "FROM staged s POSITIONAL JOIN hash_flags f"
    )
