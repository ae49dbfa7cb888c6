"""The row pass: DuckDB streams the staged rows beside their verdict, in input order; Polars cleans
each batch with `serving.features` into the split files or `rejected.parquet`, one at a time."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.common.data import LABEL
from pipeline.etl.config import DataConfig, EtlConfig, memory_bytes
from pipeline.etl.plan import Plan
from pipeline.etl.source import sql_ident
from serving import features
from serving.schemas import SPLITS

log = logging.getLogger(__name__)
REJECTED_FILE = "rejected.parquet"
# Measured on the demo data: a batch in flight takes about 8 times its staged Arrow size (cleaned
# columns, split parts, the writer's copies), the one still being written about one more; the
# interpreter and DuckDB's buffers about 250 MB.
BATCH_COPIES = 9
INTERPRETER_BYTES = 250_000_000
MIN_BATCH_ROWS = 1_000


def batch_rows(con: duckdb.DuckDBPyConnection, sql: str, cfg: EtlConfig) -> int:
    """`cfg.batch_rows`, or fewer when a batch would not fit beside DuckDB's share of memory."""
    sample = con.sql(f"{sql} LIMIT 10000").to_arrow_table()
    row_bytes = max(sample.nbytes / max(sample.num_rows, 1), 1.0)
    budget = memory_bytes(cfg.memory_limit) - cfg.duckdb_bytes - INTERPRETER_BYTES
    fit = max(MIN_BATCH_ROWS, int(budget / (BATCH_COPIES * row_bytes)))
    if fit < cfg.batch_rows:
        log.info("batches of %d rows (%.0f bytes a row) fit memory_limit", fit, row_bytes)
    return min(cfg.batch_rows, fit)


def write_splits(
    con: duckdb.DuckDBPyConnection, data: DataConfig, plan: Plan, cfg: EtlConfig, out: Path
) -> int:
    """Write the splits and `rejected.parquet` into `out`; returns the values set to null."""
    q = sql_ident
    cols = [f"s.{q(data.id)}" if data.id else f"s.__pos + 1 AS {q(plan.id)}"]
    cols += [f"s.{q(c)}" for c in (*data.numeric, *data.categorical)]
    cols += [f"v.__dt{i} AS {q(c)}" for i, c in enumerate(data.datetime)]
    cols += [f"s.{q(data.text)}"] if data.text else []
    cols += ["s.__pos", "s.__target", "v.__pos AS __vpos", "v.__why", "v.__value", "v.__split"]
    # POSITIONAL JOIN: both sides are in input order, so this streams without a sort.
    sql = f"SELECT {', '.join(cols)}, v.__label FROM staged_rows s POSITIONAL JOIN verdict v"
    writers: dict[str, pq.ParquetWriter] = {}
    nulled = 0
    written: Future[None] | None = None
    # One batch is written in a thread (Arrow releases the GIL) while the next is read and
    # cleaned: 5M demo rows took 4.6 s of writing on the main thread.
    with ExitStack() as stack, ThreadPoolExecutor(1, thread_name_prefix="parquet") as writer:

        def write(tables: dict[str, pa.Table]) -> None:
            for name, table in tables.items():
                if name not in writers:  # dictionaries for categories only: slow on text
                    writers[name] = stack.enter_context(
                        pq.ParquetWriter(out / name, table.schema, use_dictionary=data.categorical)
                    )
                writers[name].write_table(table)

        for batch in con.sql(sql).to_arrow_reader(batch_rows(con, sql, cfg)):
            tables, n = _split(batch, data, plan)
            nulled += n
            if written is not None:
                written.result()  # one batch in writing at most: memory stays bounded
            written = writer.submit(write, tables)
        if written is not None:
            written.result()
    return nulled


def _split(batch: pa.RecordBatch, data: DataConfig, plan: Plan) -> tuple[dict[str, pa.Table], int]:
    """A batch's rows as a table per file they go to, and the values set to null."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    if not (frame["__pos"] == frame["__vpos"]).all():  # the join by position needs input order
        at = frame.filter(pl.col("__pos") != pl.col("__vpos")).row(0, named=True)
        raise RuntimeError(f"row {at['__pos']} streamed beside the verdict of row {at['__vpos']}")
    kept, nulled = clean(frame.filter(pl.col("__split").is_not_null()), data, plan)
    by_code = kept.partition_by("__split", as_dict=True, include_key=False)
    empty = kept.clear().drop("__split")
    parts = {f"{s}.parquet": by_code.get((i,), empty) for i, s in enumerate(SPLITS)}
    parts[REJECTED_FILE] = frame.filter(pl.col("__why").is_not_null()).select(
        row=pl.col("__pos") + 1,  # the data row, 1-based
        reason="__why",
        value="__value",
        id=pl.col(plan.id).cast(pl.String),
        target="__target",
    )
    return {name: part.to_arrow() for name, part in parts.items()}, nulled


def clean(kept: pl.DataFrame, data: DataConfig, plan: Plan) -> tuple[pl.DataFrame, int]:
    """Kept rows with cleaned columns, in the splits' column order, and the values set to null."""
    columns: list[pl.Series | pl.Expr] = []
    nulled = 0
    for col in data.numeric:
        lo, hi = data.bounds.get(col, (None, None))
        values = pl.Series(col, features.apply_bounds(kept[col].to_numpy(), lo, hi)).fill_nan(None)
        nulled += values.null_count() - kept[col].null_count()
        columns.append(values)
    for col in data.categorical:  # each distinct value of the batch normalised once
        raw = kept[col].drop_nulls().unique()
        spelt = pl.Series(list(features.normalise_categories(raw.to_list())), dtype=pl.String)
        columns.append(pl.col(col).replace_strict(raw, spelt, default=None, return_dtype=pl.String))
    if data.text:
        columns.append(pl.col(data.text).str.strip_chars(features.ASCII_SPACE))
    dtype = pl.Float64 if plan.task == "regression" else pl.Int64
    columns.append(pl.col("__label").cast(dtype).alias(LABEL))
    texts = [data.text] if data.text else []
    names = [plan.id, *data.numeric, *data.categorical, *data.datetime, *texts]
    return kept.with_columns(columns).select(*names, LABEL, "__split"), nulled
