"""Queries over the staging file that decide everything before the rows are written.

Validation (target present, ids unique, not too many rejected rows), the class labels and task,
the category and datetime spellings (normalised once per distinct value by `serving.features`),
which rows are duplicates, and the split (cuts in time, or a code per row for the hash-keyed
methods). Aggregates run in DuckDB, which spills to disk.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.common.errors import PipelineError
from pipeline.etl import duplicates
from pipeline.etl.contract import DataContract, EtlConfig, SplitConfig
from pipeline.etl.derive import numpy_of
from pipeline.etl.source import Source, reader_error, sql_ident, sql_string
from pipeline.etl.split import codes_by_position, stratified_cuts, uniform
from pipeline.etl.staging import BOOLEAN_WORD_PREFIX
from serving import features

log = logging.getLogger(__name__)
MAX_CLASSES = 100  # more distinct targets than this looks like a regression target
ROW_ID = "row_id"
KEY_BATCH_ROWS = 1 << 18  # ids hashed per batch while planning (a few MB of temporaries)


@dataclass
class Plan:
    """Everything the row pass needs, decided from aggregates over the staging file."""

    rows_in: int
    labels: list[str]
    task: str
    id: str
    boolean: list[str]
    category_maps: dict[str, tuple[list[str], list[str | None]]]
    datetime_maps: dict[str, tuple[list[str], np.ndarray]]  # string columns: raw → parsed
    losers: np.ndarray  # positions of duplicate copies (the first copy is kept)
    split_cuts: np.ndarray | None  # time: [[µs, pos]] x 2; otherwise None
    codes: np.ndarray | None  # stratified and hash: int8 split code per input position (-1: none)
    hashed: np.ndarray | None  # positions of the repeated ids' rows, hashed in the row pass
    rejected: dict[str, int] = field(default_factory=dict)  # reason → rows


def check_columns(source: Source, contract: DataContract) -> None:
    """Every contract column exists; columns outside the contract are dropped with a log line."""
    found = list(source.types)
    missing = [c for c in contract.columns if c not in source.types]
    if missing:
        role = next(r for r, cols in contract.roles().items() if missing[0] in cols)
        hint = ""
        if len(found) == 1 and any(d in found[0] for d in ";,\t|" if d != contract.delimiter):
            hint = f"; the only column is {found[0]!r}, so the delimiter looks wrong"
        raise PipelineError(
            f"{role} column {missing[0]!r} not found (columns: {found[:12]}){hint}",
            where=source.label,
            fix=f"fix the column names or `delimiter` in configs/data/{contract.name}.yaml",
        )
    extra = [c for c in found if c not in contract.columns and c not in contract.drop]
    if extra:
        log.info("dropping columns not in the data contract: %s", ", ".join(extra))


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    rows = con.execute(sql).fetchall()  # fetch to the end: DuckDB refuses new work otherwise
    return rows[0][0]


def _datetime_maps(
    con: duckdb.DuckDBPyConnection, contract: DataContract, types: dict[str, str]
) -> dict[str, tuple[list[str], np.ndarray]]:
    maps = {}
    for col in contract.datetime:
        if types.get(col) != "VARCHAR":
            continue
        raw = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {sql_ident(col)} FROM staged WHERE {sql_ident(col)} IS NOT NULL"
            ).fetchall()
        ]
        parsed = features.parse_datetimes(raw)
        maps[col] = (raw, parsed)
        table = pl.DataFrame({"raw": pl.Series(raw, dtype=pl.String), "parsed": parsed})
        con.register(f"dtmap_{len(maps)}", table.to_arrow())
    return maps


def _checked_table(
    con: duckdb.DuckDBPyConnection,
    contract: DataContract,
    maps: dict[str, tuple[list[str], np.ndarray]],
    id_col: str,
) -> None:
    joins, reasons, parsed = [], ["s.__reason"], {}
    for i, col in enumerate(maps, start=1):
        joins.append(f"LEFT JOIN dtmap_{i} m{i} ON s.{sql_ident(col)} = m{i}.raw")
        reasons.append(
            f"CASE WHEN s.{sql_ident(col)} IS NOT NULL AND m{i}.parsed IS NULL THEN "
            f"{sql_string(col + ': ')} || '''' || left(s.{sql_ident(col)}, 40) || '''' "
            "|| ' is not an ISO-8601 datetime' END"
        )
        parsed[col] = f"m{i}.parsed"
    time_col = contract.split.time_column if contract.split.method == "time" else None
    t_expr = "NULL::TIMESTAMP"
    if time_col:
        t_expr = parsed.get(time_col, f"s.{sql_ident(time_col)}")
        reasons.append(
            f"CASE WHEN {t_expr} IS NULL THEN "
            f"{sql_string(time_col + ' is null (the time split needs it)')} END"
        )
    # With an id, only rows whose id repeats need the row hash (`duplicates`).
    id_expr, h_expr = (f"s.{sql_ident(id_col)}", "") if contract.id else ("s.__pos + 1", "s.__h, ")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked AS SELECT s.__pos, {h_expr}s.__target, "
        f"{id_expr} AS __id, {t_expr} AS __t, COALESCE({', '.join(reasons)}) AS __why "
        f"FROM staged s {' '.join(joins)}"
    )


def make_plan(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    contract: DataContract,
    cfg: EtlConfig,
    seed: int,
) -> Plan:
    """Validate the staged rows and decide labels, mappings, duplicates and split cuts."""
    try:
        return _plan(con, source, contract, cfg, seed)
    except duckdb.Error as exc:
        raise reader_error(exc, source.files, contract) from None


def _plan(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    contract: DataContract,
    cfg: EtlConfig,
    seed: int,
) -> Plan:
    rows_in = int(_one(con, "SELECT count(*) FROM staged"))
    if rows_in == 0:
        raise PipelineError(
            "no data rows (only a header?)",
            where=source.label,
            fix="point `path` at a file with data rows",
        )
    if _one(con, "SELECT count(__target) FROM staged") == 0:
        raise PipelineError(
            f"target column {contract.target!r} is null in all {rows_in} rows",
            where=source.label,
            fix="check `target` and the file's label column",
        )
    id_col = contract.id or ROW_ID
    maps = _datetime_maps(con, contract, source.types)
    _checked_table(con, contract, maps, id_col)
    hashed = duplicates.find_repeated(con, id_col if contract.id else None)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW valid AS SELECT * FROM checked WHERE __why IS NULL "
        "AND __pos NOT IN (SELECT __pos FROM losers)"
    )
    try:
        rejected = _rejections(con, rows_in, source, cfg)
        labels, task = _labels(con, contract, source)
    except PipelineError:
        if hashed is not None:  # an id with different rows is reported first, as it comes first
            duplicates.hash_in_plan(con, source, id_col)
        raise
    s = contract.split
    losers = np.asarray(
        con.execute("SELECT __pos FROM losers ORDER BY 1").fetchnumpy()["__pos"], dtype=np.int64
    )
    cuts = _time_cuts(con, (s.train, s.val)) if s.method == "time" else None
    keys = None if cuts is not None else _keys(con, s.method, labels, losers, rows_in, seed)
    drop_tables(con)  # DuckDB's memory is free again before NumPy's is needed for the cuts
    return Plan(
        rows_in=rows_in,
        labels=labels,
        task=task,
        id=id_col,
        boolean=_booleans(con, contract, source.types),
        category_maps=_category_maps(con, contract),
        datetime_maps=maps,
        losers=losers,
        split_cuts=cuts,
        codes=None if keys is None else _codes(*keys, s, len(labels)),
        hashed=hashed,
        rejected=rejected,
    )


def drop_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Free the plan's temporary tables: the row pass needs DuckDB's memory for reading."""
    con.execute("DROP VIEW IF EXISTS valid")
    for table in ("checked", "repeated", "losers"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _rejections(
    con: duckdb.DuckDBPyConnection, rows_in: int, source: Source, cfg: EtlConfig
) -> dict[str, int]:
    """Reason → rejected rows; fails when more than `max_rejected_fraction` are rejected."""
    counts = {
        str(r): int(n)
        for r, n in con.execute(
            "SELECT __why, count(*) FROM checked WHERE __why IS NOT NULL GROUP BY 1"
        ).fetchall()
    }
    dups = int(_one(con, "SELECT count(*) FROM losers"))
    if dups:
        counts["duplicate row"] = dups
    total = sum(counts.values())
    if total > cfg.max_rejected_fraction * rows_in:
        top = max(counts, key=lambda k: counts[k])
        first = _one(
            con,
            "SELECT min(__pos) + 1 FROM losers"
            if top == "duplicate row"
            else f"SELECT min(__pos) + 1 FROM checked WHERE __why = {sql_string(top)}",
        )
        raise PipelineError(
            f"{total} of {rows_in} rows rejected (limit {cfg.max_rejected_fraction:.0%}); "
            f"most often: {top} (first at data row {first})",
            where=source.label,
            fix="fix the column types in the file or the column lists in the data config",
        )
    return counts


def _labels(
    con: duckdb.DuckDBPyConnection, contract: DataContract, source: Source
) -> tuple[list[str], str]:
    found = [str(r[0]) for r in con.execute("SELECT DISTINCT __target FROM valid").fetchall()]
    numeric = all(_is_number(v) for v in found)
    labels = sorted(found, key=float) if numeric else sorted(found)
    if contract.positive is not None:
        if contract.positive not in labels:
            raise PipelineError(
                f"positive class {contract.positive!r} not among {labels[:10]}",
                where=f"configs/data/{contract.name}.yaml: positive",
                fix="name one of the target's values",
            )
        labels = [v for v in labels if v != contract.positive] + [contract.positive]
    task = contract.task or ("binary" if len(labels) == 2 else "multiclass")
    expected = "exactly 2" if task == "binary" else f"3 to {MAX_CLASSES}"
    if len(labels) < 2 or (task == "binary" and len(labels) != 2) or len(labels) > MAX_CLASSES:
        raise PipelineError(
            f"target {contract.target!r} has {len(labels)} classes ({labels[:5]}), "
            f"{task} needs {expected}",
            where=source.label,
            fix="check `target` and `task` in the data config (regression is not supported)",
        )
    return labels, task


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _booleans(
    con: duckdb.DuckDBPyConnection, contract: DataContract, types: dict[str, str]
) -> list[str]:
    out = []
    for col in contract.numeric:
        if types[col] == "BOOLEAN" or (
            types[col] == "VARCHAR"
            and _one(
                con,
                f"SELECT coalesce(bool_or({sql_ident(BOOLEAN_WORD_PREFIX + col)}), false) "
                "FROM staged",
            )
        ):
            out.append(col)
    return out


def _category_maps(
    con: duckdb.DuckDBPyConnection, contract: DataContract
) -> dict[str, tuple[list[str], list[str | None]]]:
    maps = {}
    for col in contract.categorical:
        raw = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {sql_ident(col)} FROM staged WHERE {sql_ident(col)} IS NOT NULL"
            ).fetchall()
        ]
        maps[col] = (raw, [features.normalise_category(v) for v in raw])
    return maps


def _keys(
    con: duckdb.DuckDBPyConnection,
    method: str,
    labels: list[str],
    losers: np.ndarray,
    rows_in: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(random key, class index) per input position; NaN and -1 where no row is kept.

    Each kept row's id is hashed once, here, for the hash-keyed split methods; the row pass
    only looks its split code up. 9 bytes per input row, for as long as the cuts take.
    """
    keys = np.full(rows_in, np.nan)
    classes = np.full(rows_in, -1, dtype=np.int8)  # at most MAX_CLASSES (100) classes
    # Built by Polars: `pa.array` would import pandas (~0.3 s) in a run that never uses it.
    index = pl.Series(labels, dtype=pl.String).to_arrow().cast(pa.string())
    salt = 0 if method == "hash" else seed
    # Rows that pass the checks, duplicates included (cheaper than the anti-join of `valid`).
    sql = "SELECT __pos, __id, __target FROM checked WHERE __why IS NULL"

    def store(batch: pa.RecordBatch) -> None:
        pos = numpy_of(batch.column(0))
        # The id's text as Polars spells it: the row pass hashed exactly this text before.
        text = pl.Series(batch.column(1)).cast(pl.String).to_arrow()
        keys[pos] = uniform(text, salt=salt)
        classes[pos] = numpy_of(pc.index_in(batch.column(2), value_set=index))

    # Two threads hash batches at once (NumPy and Polars release the GIL); batches fill
    # disjoint positions, and at most three are alive.
    with ThreadPoolExecutor(2, thread_name_prefix="etl-keys") as pool:
        pending: deque[Future[None]] = deque()
        for batch in con.sql(sql).to_arrow_reader(KEY_BATCH_ROWS):
            pending.append(pool.submit(store, batch))
            if len(pending) > 2:
                pending.popleft().result()
        for done in pending:
            done.result()
    keys[losers], classes[losers] = np.nan, -1
    return keys, classes


def _codes(keys: np.ndarray, classes: np.ndarray, s: SplitConfig, n_classes: int) -> np.ndarray:
    """Split code per input position (-1 where no row is kept)."""
    if s.method == "hash":
        cuts = np.tile([s.train, s.train + s.val], (n_classes, 1))
    else:
        cuts = stratified_cuts(keys, classes, (s.train, s.val), n_classes)
    return codes_by_position(keys, classes, cuts)


def _time_cuts(con: duckdb.DuckDBPyConnection, fractions: tuple[float, float]) -> np.ndarray:
    """[[time µs, position]] of the last train row and the last val row, in (time, position)
    order: ties in time are broken by input order, so the shares are exact even when many rows
    share a timestamp."""
    n = int(_one(con, "SELECT count(*) FROM valid"))
    cuts = np.full((2, 2), -(2**62), dtype=np.int64)
    for i, k in enumerate((round(fractions[0] * n), round((fractions[0] + fractions[1]) * n))):
        if k > 0:
            row = con.execute(
                "SELECT epoch_us(__t), __pos FROM valid ORDER BY 1, 2 LIMIT 1 OFFSET ?", [k - 1]
            ).fetchall()[0]
            cuts[i] = row
    return cuts
