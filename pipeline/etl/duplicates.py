"""Exact duplicate rows and conflicting ids, with the row hash computed only where it matters.

Without an id column, rows are compared by a hash of all their raw values. With one, only valid
rows whose id repeats can be duplicates: the plan marks the later rows of each repeated id as
duplicates (table `losers`), and the row pass, which decodes every column anyway, hashes just
those rows (`verify`). A run only succeeds when all rows of a repeated id are equal, so that
plan is exact; when they are not, the conflicting id is reported as before, and before any other
error of the plan (`hash_in_plan`).
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from pipeline.common.errors import PipelineError
from pipeline.etl.source import Source, sql_ident

HASH = "__h"


def find_repeated(con: duckdb.DuckDBPyConnection, id_col: str | None) -> np.ndarray | None:
    """Tables `repeated` and `losers` (later copies); positions the row pass must hash, if any.

    None when there is nothing to hash: no id column (the hash was the key), or no repeated id.
    """
    key = "__id" if id_col else HASH
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE repeated AS SELECT c.__pos, "
        f"{'' if id_col else 'c.__h, '}c.__id FROM checked c SEMI JOIN (SELECT {key} "
        f"FROM checked WHERE __why IS NULL GROUP BY {key} HAVING count(*) > 1) r "
        f"ON c.{key} = r.{key} WHERE c.__why IS NULL"
    )
    _losers(con, key)
    if id_col is None:
        return None
    positions = con.execute("SELECT __pos FROM repeated ORDER BY 1").fetchnumpy()["__pos"]
    return np.asarray(positions, dtype=np.int64) if len(positions) else None


def hash_in_plan(con: duckdb.DuckDBPyConnection, source: Source, id_col: str) -> None:
    """The row pass's check, done in the plan: raises on an id with different rows."""
    # Matched on the id column: about twice as fast as on the computed position.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE repeated AS SELECT r.__pos, h.__h, r.__id "
        "FROM repeated r JOIN (SELECT s.__pos, s.__h FROM staged s SEMI JOIN "
        f"(SELECT DISTINCT __id FROM repeated) i ON s.{sql_ident(id_col)} = i.__id) h "
        "ON r.__pos = h.__pos"
    )
    _check_ids(con, source, id_col)


def verify(
    con: duckdb.DuckDBPyConnection, source: Source, id_col: str, hashed: pl.DataFrame
) -> None:
    """Raise on an id with different rows; `hashed`: (__pos, __h, __id) of the repeated rows."""
    con.register("repeated", hashed.to_arrow())
    try:
        _check_ids(con, source, id_col)
    finally:
        con.unregister("repeated")
        con.execute("DROP TABLE IF EXISTS losers")


def _losers(con: duckdb.DuckDBPyConnection, key: str) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE losers AS SELECT __pos FROM (SELECT __pos, "
        f"row_number() OVER (PARTITION BY {key} ORDER BY __pos) AS k FROM repeated) WHERE k > 1"
    )


def _check_ids(con: duckdb.DuckDBPyConnection, source: Source, id_col: str) -> None:
    """From `repeated` with hashes: exact copies become `losers`; fails on conflicting ids."""
    _losers(con, HASH)
    rows = con.execute(
        "SELECT __id, count(*) AS n, list(__pos + 1 ORDER BY __pos)[1:3] FROM repeated "
        "WHERE __pos NOT IN (SELECT __pos FROM losers) GROUP BY __id HAVING n > 1 "
        "ORDER BY min(__pos) LIMIT 1"
    ).fetchall()
    if not rows:
        return
    row = rows[0]
    n_ids = con.execute(
        "SELECT count(*) FROM (SELECT __id FROM repeated WHERE __pos NOT IN "
        "(SELECT __pos FROM losers) GROUP BY __id HAVING count(*) > 1)"
    ).fetchall()[0][0]
    raise PipelineError(
        f"id column {id_col!r} is not unique: {row[0]!r} is on {row[1]} different rows "
        f"(data rows {row[2]}); {n_ids} ids repeat with different values",
        where=source.label,
        fix="make the ids unique, or remove `id` from the data config to use row numbers",
    )
