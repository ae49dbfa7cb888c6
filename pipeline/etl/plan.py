"""Every row's fate, decided in SQL over `staged` before a row is written: the task and labels,
parsed datetimes, rejections, duplicates, repeated ids and splits, into the table `verdict`.
DuckDB spills to disk, so the plan stays under its share of `memory_limit` at any input size."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.common.errors import PipelineError
from pipeline.etl.config import DataConfig, EtlConfig
from pipeline.etl.source import Source, sql_ident, sql_list, sql_string
from pipeline.etl.staging import Check, first_failure
from serving import features

log = logging.getLogger(__name__)
ROW_ID = "row_id"
MAX_CLASSES = 100
MAX_INTEGER_CLASSES = 20  # an integer target with more distinct values is taken as regression
BIN_ROWS = 100  # regression strata: target quantile bins of about this many rows, at most 10
KEPT = "__why IS NULL"  # SQL: the row is kept


@dataclass
class Plan:
    """What the row pass and the profile need from the plan."""

    rows_in: int
    task: str
    labels: list[str]  # classes in label-index order; [] for regression
    id: str  # the id column of the splits
    boolean: list[str]  # numeric columns holding booleans (typed, or true/false/yes/no words)
    rejected: dict[str, int]  # reason → rows


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    rows = con.execute(sql).fetchall()  # fetched to the end: DuckDB refuses new work otherwise
    return rows[0]


def make_plan(
    con: duckdb.DuckDBPyConnection, source: Source, data: DataConfig, cfg: EtlConfig, seed: int
) -> Plan:
    """Validate the staged rows and write the table `verdict`; fails in one line."""
    texts = {c: i for i, c in enumerate(data.numeric) if source.types[c] == "VARCHAR"}
    rows_in, targets, numbers, distinct, integers, *words = _one(
        con,
        "SELECT count(*), count(__target), count(__y), count(DISTINCT __target), "
        "coalesce(bool_and(__y = round(__y)) FILTER (WHERE isfinite(__y)), true)"
        f"{''.join(f', bool_or(__word{i})' for i in texts.values())} FROM staged",
    )
    if rows_in == 0:
        raise PipelineError(
            "no data rows (only a header?)", where=source.label, fix="point `path` at data"
        )
    if targets == 0:
        raise PipelineError(
            f"target column {data.target!r} is null in all {rows_in} rows",
            where=source.label,
            fix="check `target` and the file's label column",
        )
    task = data.task or _infer_task(data, numbers == targets, distinct, integers)
    data.check_task(task)
    _judge(con, data, task, _parse_datetimes(con, source, data), seed)
    if data.id:
        _check_ids(con, source, data.id)
    rejected = _rejections(con, rows_in, source, cfg)
    labels = _labels(con, data, task, source) if task != "regression" else []
    if data.target_transform == "log1p":
        _check_log1p(con, data)
    _verdict(con, data, task, labels, kept=rows_in - sum(rejected.values()))
    worded = dict(zip(texts, words, strict=True))  # text columns holding yes/no words
    boolean = [c for c in data.numeric if source.types[c] == "BOOLEAN" or worded.get(c)]
    return Plan(rows_in, task, labels, data.id or ROW_ID, boolean, rejected)


def _infer_task(data: DataConfig, numeric: bool, distinct: int, integers: bool) -> str:
    if numeric and (not integers or distinct > MAX_INTEGER_CLASSES):
        why = f"target {data.target!r} is numeric with {distinct} distinct values"
        log.info("%s: task regression (set `task:` in %s to override)", why, data.where)
        return "regression"
    return "binary" if distinct == 2 else "multiclass"


def _parse_datetimes(
    con: duckdb.DuckDBPyConnection, source: Source, data: DataConfig
) -> dict[str, str]:
    """Column → a table of its distinct strings and their parsed value; fails if none parses."""
    tables = {}
    # Strings, which every DuckDB since 1.2 accepts; the stubs ask for enums of newer versions.
    con.create_function(  # type: ignore[call-overload]
        "parse_datetimes",
        _parse,
        ["VARCHAR"] * 3,
        "TIMESTAMP",
        type="arrow",
        null_handling="special",
    )
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE staged)").fetchall())
    for i, col in enumerate(c for c in data.datetime if types[c] == "VARCHAR"):
        fmt, c = data.datetime_format.get(col), sql_ident(col)
        tables[col] = f"datetimes{i}"
        con.execute(
            f"CREATE TEMP TABLE datetimes{i} AS SELECT raw, parse_datetimes(raw, "
            f"{sql_string(fmt) if fmt else 'NULL'}, {sql_string(data.timezone)}) AS parsed "
            f"FROM (SELECT DISTINCT {c} AS raw FROM staged WHERE {c} IS NOT NULL)"
        )
        parsed, failed = _one(
            con,
            f"SELECT count(parsed), (SELECT list(raw) FROM "
            f"(SELECT raw FROM datetimes{i} WHERE parsed IS NULL LIMIT 20)) FROM datetimes{i}",
        )
        if failed and not parsed:
            guess = features.suggest_format(failed)
            example = repr(guess) if guess else "<strptime format>"
            raise PipelineError(
                f"datetime column {col!r}: no value is ISO 8601{f' or {fmt!r}' if fmt else ''} "
                f"(e.g. {failed[0]!r})",
                where=source.label,
                fix=f"set `datetime_format: {{{col}: {example}}}` in {data.where}",
            )
    return tables


def _parse(raw: pa.ChunkedArray, fmt: pa.ChunkedArray, tz: pa.ChunkedArray) -> pa.Array:
    """The DuckDB function `parse_datetimes(raw, format, time zone)`, for a chunk of rows."""
    return pa.array(features.parse_datetimes(raw.to_pylist(), fmt[0].as_py(), tz[0].as_py()))


def _judge(
    con: duckdb.DuckDBPyConnection, data: DataConfig, task: str, parsed: dict[str, str], seed: int
) -> None:
    """View `judged`: per row its id, target, datetimes, split key and first failed check."""
    q = sql_ident
    checks = [*_target_checks(data, task), ("s.__why IS NOT NULL", "s.__why", "s.__value")]
    joins, dts = [], []
    for i, col in enumerate(data.datetime):
        if col not in parsed:
            dts.append(f"s.{q(col)}")
            continue
        joins.append(f"LEFT JOIN {parsed[col]} m{i} ON s.{q(col)} = m{i}.raw")
        dts.append(f"m{i}.parsed")
        fmt = data.datetime_format.get(col)
        why = f"{col} is not a datetime (ISO 8601{f' or {fmt!r}' if fmt else ''})"
        checks.append(
            (f"s.{q(col)} IS NOT NULL AND m{i}.parsed IS NULL", sql_string(why), f"s.{q(col)}")
        )
    t = data.split.time_column if data.split.method == "time" else None
    time = dts[data.datetime.index(t)] if t else "NULL::TIMESTAMP"
    if t:
        checks.append(
            (f"{time} IS NULL", sql_string(f"{t} is null (the time split needs it)"), "NULL")
        )
    row_id = f"s.{q(data.id)}" if data.id else "s.__pos + 1"
    columns = ["s.__pos", "s.__h", "s.__target", "s.__y", f"{time} AS __t", f"{row_id} AS __id"]
    columns += [f"{d} AS __dt{i}" for i, d in enumerate(dts)] + first_failure(checks, why="__pre")
    # A number in [0, 1) per row from the md5 of its id, salted with the seed but for the hash
    # split: the same on every machine and with every library version.
    salt = sql_string("" if data.split.method == "hash" else f"{seed}:")
    key = f"left(md5({salt} || CAST(__id AS VARCHAR)), 13)"
    inner = f"SELECT {', '.join(columns)} FROM staged s {' '.join(joins)}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked AS SELECT *, "
        f"CAST('0x' || {key} AS BIGINT) / {float(2**52)} AS __u FROM ({inner})"
    )
    # Exact duplicates: the later rows whose values hash like an earlier row's (a small table).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE repeats AS SELECT __h, min(__pos) AS __first "
        "FROM checked WHERE __pre IS NULL GROUP BY 1 HAVING count(*) > 1"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW judged AS SELECT c.* EXCLUDE (__pre, __h), coalesce(__pre, "
        "CASE WHEN c.__pos > r.__first THEN 'duplicate row' END) AS __why FROM checked c "
        "LEFT JOIN repeats r ON c.__pre IS NULL AND c.__h = r.__h"
    )


def _target_checks(data: DataConfig, task: str) -> list[Check]:
    checks: list[Check] = [("s.__target IS NULL", sql_string(f"{data.target} is null"), "NULL")]
    if task != "regression":
        return checks
    checks += [
        ("s.__y IS NULL", sql_string(f"{data.target} is not a number"), "s.__target"),
        ("NOT isfinite(s.__y)", sql_string(f"{data.target} is not finite"), "s.__target"),
    ]
    lo, hi = data.bounds.get(data.target, (None, None))
    outside = [f"s.__y {op} {v!r}" for op, v in (("<", lo), (">", hi)) if v is not None]
    if outside:
        why = sql_string(f"{data.target} is outside its bounds [{lo}, {hi}]")
        checks.append((" OR ".join(outside), why, "s.__y"))
    return checks


def _check_ids(con: duckdb.DuckDBPyConnection, source: Source, id_col: str) -> None:
    """Kept rows (exact copies are duplicates already) must not share an id."""
    repeated = con.execute(
        f"SELECT __id, min(__pos) FROM judged WHERE {KEPT} GROUP BY 1 HAVING count(*) > 1 "
        "ORDER BY 2"
    ).fetchall()
    if repeated:
        value = repeated[0][0]
        rows = con.execute(
            f"SELECT __pos + 1 FROM judged WHERE {KEPT} AND __id = ? ORDER BY 1", [value]
        ).fetchall()
        raise PipelineError(
            f"id column {id_col!r} is not unique: {str(value)!r} is on {len(rows)} different rows "
            f"(data rows {[r[0] for r in rows[:3]]}); {len(repeated)} ids repeat with "
            "different values",
            where=source.label,
            fix="make the ids unique, or remove `id` from the data config to use row numbers",
        )


def _rejections(
    con: duckdb.DuckDBPyConnection, rows_in: int, source: Source, cfg: EtlConfig
) -> dict[str, int]:
    """Reason → rejected rows; fails when more than `max_rejected_fraction` are rejected."""
    found = con.execute(
        "SELECT __why, count(*), min(__pos) + 1, arg_min(__value, __pos) FROM judged "
        "WHERE __why IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    counts = {str(why): int(n) for why, n, _, _ in found}
    total = sum(counts.values())
    if total > cfg.max_rejected_fraction * rows_in:
        why, _, first, value = found[0]
        example = f": {value!r}" if value is not None else ""
        raise PipelineError(
            f"{total} of {rows_in} rows rejected (limit {cfg.max_rejected_fraction:.0%}); "
            f"most often: {why} (first at data row {first}{example})",
            where=source.label,
            fix="fix the values in the file or the column lists of the data config",
        )
    return counts


def _labels(
    con: duckdb.DuckDBPyConnection, data: DataConfig, task: str, source: Source
) -> list[str]:
    """The classes of the kept rows: numbers in numeric order, else sorted; `positive` last."""
    found = _one(con, f"SELECT list(DISTINCT __target) FROM judged WHERE {KEPT}")[0] or []
    try:
        labels = sorted(found, key=float)
    except ValueError:
        labels = sorted(found)
    if data.positive is not None:
        if data.positive not in labels:
            raise data.error("positive", f"{data.positive!r} is not a class of {labels[:10]}")
        labels = [v for v in labels if v != data.positive] + [data.positive]
    expected = "exactly 2" if task == "binary" else f"3 to {MAX_CLASSES}"
    if len(labels) < 2 or (task == "binary") != (len(labels) == 2) or len(labels) > MAX_CLASSES:
        raise PipelineError(
            f"target {data.target!r} has {len(labels)} classes ({labels[:5]}); "
            f"{task} needs {expected}",
            where=source.label,
            fix=f"check `target` and `task` in {data.where} (task: regression for a number)",
        )
    return labels


def _check_log1p(con: duckdb.DuckDBPyConnection, data: DataConfig) -> None:
    low, row = _one(con, f"SELECT min(__y), arg_min(__pos + 1, __y) FROM judged WHERE {KEPT}")
    if low is not None and low <= -1:
        raise data.error(
            "target_transform",
            f"log1p needs every target above -1; {data.target} is {low:g} at data row {row}",
        )


def _verdict(
    con: duckdb.DuckDBPyConnection, data: DataConfig, task: str, labels: list[str], kept: int
) -> None:
    """Table `verdict`: per input row, in input order, why it is rejected, or its split code
    (0 train, 1 val, 2 test) and label (class index, or the target for regression)."""
    s = data.split
    shares = (s.train, s.train + s.val)
    if s.method == "hash":  # the id's key alone: a row keeps its split when data is appended
        split = _split_sql(shares)
    elif s.method == "time":  # in (time, position) order; ties in time follow the input order
        cuts = [_time_cut(con, round(share * kept)) for share in shares]
        split = f"CASE WHEN {cuts[0]} THEN 0 WHEN {cuts[1]} THEN 1 ELSE 2 END"
    else:  # stratified: each class, or quantile bin of a regression target, cut at its shares
        stratum = "__target" if task != "regression" else _bins(con, kept)
        found = con.execute(
            f"SELECT {stratum}, quantile_disc(__u, {list(shares)}) FROM judged WHERE {KEPT} "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        cases = " ".join(f"WHEN {sql_string(k)} THEN {_split_sql(c)}" for k, c in found)
        split = f"CASE CAST({stratum} AS VARCHAR) {cases} END"
    label = "__y" if task == "regression" else f"list_position({sql_list(labels)}, __target) - 1"
    dts = "".join(f", __dt{i}" for i in range(len(data.datetime)))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE verdict AS SELECT __pos, __why, __value, "
        f"CASE WHEN {KEPT} THEN {split} END::TINYINT AS __split, "
        f"CASE WHEN {KEPT} THEN {label} END AS __label{dts} FROM judged ORDER BY __pos"
    )
    con.execute("DROP VIEW judged; DROP TABLE repeats; DROP TABLE checked")


def _split_sql(cuts: Sequence[float]) -> str:
    return f"CASE WHEN __u <= {cuts[0]!r} THEN 0 WHEN __u <= {cuts[1]!r} THEN 1 ELSE 2 END"


def _bins(con: duckdb.DuckDBPyConnection, kept: int) -> str:
    """SQL for a regression target's quantile bin (about BIN_ROWS rows each, at most 10)."""
    bins = max(1, min(10, kept // BIN_ROWS))
    if bins == 1:
        return "0"
    quantiles = [i / bins for i in range(1, bins)]
    edges = _one(con, f"SELECT quantile_cont(__y, {quantiles}) FROM judged WHERE {KEPT}")[0]
    return " + ".join(f"(__y > {e!r})::INTEGER" for e in edges)


def _time_cut(con: duckdb.DuckDBPyConnection, k: int) -> str:
    """SQL true for the first `k` kept rows in (time, position) order."""
    if k == 0:
        return "false"
    t, pos = _one(
        con, f"SELECT __t, __pos FROM judged WHERE {KEPT} ORDER BY 1, 2 LIMIT 1 OFFSET {k - 1}"
    )
    at = f"TIMESTAMP '{t.isoformat(sep=' ')}'"
    return f"(__t < {at} OR (__t = {at} AND __pos <= {pos}))"
