"""The row pass: staged rows → cleaned, derived and split rows in Parquet, batch by batch.

Reading, cleaning and writing overlap so that both cores stay busy: one thread pulls DuckDB's
Arrow batches into Polars, the calling thread cleans and derives them (`clean.transform`) and
accumulates the profile statistics, and one thread writes the splits' Parquet files. DuckDB,
Polars, Arrow and NumPy release the GIL inside their kernels. Each hand-over holds one batch,
so at most four batches are alive at once, and the writer takes them in input order: the
files are the same whatever the timing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.common.dataset import SPLITS
from pipeline.common.logs import progress_enabled
from pipeline.etl.clean import SPLIT, transform
from pipeline.etl.contract import DataContract, EtlConfig, memory_bytes
from pipeline.etl.duplicates import HASH
from pipeline.etl.plan import Plan
from pipeline.etl.profile import StatsAccumulator
from serving.features import FeatureSpec

log = logging.getLogger(__name__)
REJECTED_FILE = "rejected.parquet"
# Measured on the demo data: the four batches in flight and their cleaned and derived copies
# take about 20 times the staged batch's Arrow size (24 leaves a margin); the interpreter with
# its libraries takes about 150 MB.
IN_FLIGHT_COPIES = 24
INTERPRETER_BYTES = 150_000_000
MIN_BATCH_ROWS = 10_000


class SplitWriter:
    """Appends kept rows to the train/val/test Parquet files."""

    def __init__(self, out: Path, compression: str, spec: FeatureSpec) -> None:
        self.out, self.compression, self.spec = out, compression, spec
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, kept: pl.DataFrame) -> None:
        """One batch of kept rows (with the split code column) → each split's file."""
        for code, split in enumerate(SPLITS):
            # Polars' own string views go to the Parquet writer as they are: converting them to
            # Arrow's large strings copies every text once more (~0.1 s per million rows).
            table = (
                kept.filter(pl.col(SPLIT) == code)
                .drop(SPLIT)
                .to_arrow(compat_level=pl.CompatLevel.newest())
            )
            if split not in self.writers:
                self.writers[split] = pq.ParquetWriter(
                    self.out / f"{split}.parquet",
                    table.schema,
                    compression=self.compression,
                    use_dictionary=self.spec.categorical,  # free text gains nothing from it
                    # Without the Arrow schema the strings read back as plain strings, not views.
                    store_schema=False,
                )
            self.writers[split].write_table(table)

    def close(self) -> None:
        """Finish the files (their footers)."""
        for writer in self.writers.values():
            writer.close()


def batch_rows(con: duckdb.DuckDBPyConnection, sql: str, cfg: EtlConfig) -> int:
    """`cfg.batch_rows`, or fewer when the batches in flight would not fit beside DuckDB's share."""
    sample = con.sql(f"{sql} LIMIT {MIN_BATCH_ROWS}").to_arrow_table()
    row_bytes = max(sample.nbytes / max(sample.num_rows, 1), 1.0)
    budget = memory_bytes(cfg.memory_limit) - cfg.duckdb_bytes - INTERPRETER_BYTES
    fit = max(MIN_BATCH_ROWS, int(budget / (IN_FLIGHT_COPIES * row_bytes)))
    if fit < cfg.batch_rows:
        log.info("batches of %d rows (%.0f bytes a row) fit memory_limit", fit, row_bytes)
    return min(cfg.batch_rows, fit)


def write_splits(
    batches: pa.RecordBatchReader,
    out: Path,
    contract: DataContract,
    compression: str,
    plan: Plan,
    spec: FeatureSpec,
) -> tuple[StatsAccumulator, dict[str, int], pl.DataFrame]:
    """Clean, derive and split every staged batch into `out`.

    Returns the statistics, the values nulled per column and (__pos, __h, __id) of the rows the
    batches carry a row hash for (`duplicates.verify` checks them).
    """
    writer = SplitWriter(out, compression, spec)
    stats = StatsAccumulator(
        [*spec.numeric, *spec.derived], spec.categorical, spec.datetime, spec.text
    )
    nulled: dict[str, int] = {}
    rejected_parts: list[pl.DataFrame] = []
    hashed_parts: list[pl.DataFrame] = []
    progress = tqdm(total=plan.rows_in, unit="rows", desc="etl", disable=not progress_enabled())
    try:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="etl-read") as reading,
            ThreadPoolExecutor(1, thread_name_prefix="etl-write") as writing,
        ):
            written: Future[None] | None = None
            for frame in _prefetched(batches, reading):
                progress.update(frame.height)
                result = transform(frame, contract, plan, spec)
                rejected_parts.append(result.rejected)
                if HASH in frame.columns:
                    hashed_parts.append(
                        frame.filter(pl.col(HASH).is_not_null()).select(
                            "__pos", HASH, pl.col(plan.id).alias("__id")
                        )
                    )
                for col, n in result.nulled.items():
                    nulled[col] = nulled.get(col, 0) + n
                if written is not None:
                    written.result()  # one batch waits for the writer at most; raises its errors
                written = writing.submit(writer.write, result.kept)
                stats.update(result.kept, SPLIT)  # here, to share the work evenly with the writer
            if written is not None:
                written.result()
    finally:
        progress.close()
        writer.close()
    rejected = pl.concat(rejected_parts) if rejected_parts else pl.DataFrame()
    rejected.write_parquet(out / REJECTED_FILE)
    if nulled:
        log.info(
            "impossible or unreadable values set to null: %s",
            {k: v for k, v in nulled.items() if v},
        )
    hashed = pl.concat(hashed_parts) if hashed_parts else pl.DataFrame()
    return stats, nulled, hashed


def _prefetched(batches: pa.RecordBatchReader, pool: ThreadPoolExecutor) -> Iterator[pl.DataFrame]:
    """The batches as Polars frames; the next one is read in `pool` while the caller works."""

    def read_next() -> pl.DataFrame | None:
        try:
            batch = batches.read_next_batch()
        except StopIteration:
            return None
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        return frame

    pending = pool.submit(read_next)
    while (frame := pending.result()) is not None:
        pending = pool.submit(read_next)
        yield frame
