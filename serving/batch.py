"""Score a file: `python -m serving.batch INPUT OUTPUT [--model NAME] [--models DIR]`.

INPUT is .csv, .parquet or .jsonl, read in chunks of `--chunk-rows` rows, so memory is bounded
by a chunk, not by the file. Every row goes through the API's own checks, features and model
(`serving.scoring.Scorer`). OUTPUT (Parquet) gets one row per scored input row: `row` (its
position in INPUT, from 0), the contract's id column when INPUT has it, then `label` and
`proba_<i>` (classes in the contract's label order) or `value` (and `interval_lower`,
`interval_upper`), then `model`, `version` and `onnx_sha256`. Rows that cannot
be scored go to `<OUTPUT stem>.rejects.parquet` (`--rejects`): `row`, the id, `field`, `reason`.
A run in which every row is rejected fails with one line. No training library is imported.

In files, an empty cell, a missing JSON key and null all mean a missing value; numbers and
booleans may be written as text ("12.5", "yes").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.features import prepare_columns
from serving.runtime import ModelFileError
from serving.schemas import Contract, FieldSchema, FileError, load_contract
from serving.scoring import Outputs, Scorer, keep_rows, load_scorers
from serving.settings import Settings

FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
Raw = dict[str, Any]  # input field → values of one chunk (numpy array or list)
# Rows per chunk. A TF-IDF graph holds several dense [rows, vocabulary] tensors at once: on the
# demo's LightGBM (2,000 terms), 1M rows took 4.0 GB peak RSS and 53 s in chunks of 65,536 rows,
# 1.2 GB and 47 s in chunks of 16,384.
CHUNK_ROWS = 16_384


class BatchError(Exception):
    """The run cannot go on; the message is the one line to show."""


@dataclass
class Chunk:
    first_row: int  # position in the input of the chunk's first row
    size: int
    raw: Raw
    ids: pa.Array | None
    parse_errors: dict[int, str]  # jsonl lines that are not JSON objects


# --- reading -----------------------------------------------------------------------------


def _arrow_column(column: pa.ChunkedArray | pa.Array, field: FieldSchema, tz: str) -> Any:
    """An Arrow column as `serving.scoring.check_columns` reads it: float64 (NaN) when it converts
    whole, datetime64 for timestamps (naive, in the spec's zone), else Python values."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if field.type in ("number", "boolean"):
        for target in (pa.float64(), pa.bool_()):
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return pc.cast(column, target).to_numpy(zero_copy_only=False).astype(np.float64)
    elif field.type == "datetime" and pa.types.is_timestamp(kind):
        if kind.tz is not None:  # aware: convert to the spec's zone, then drop the zone
            column = pc.local_timestamp(pc.cast(column, pa.timestamp("us", tz)))
        return column.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    elif field.type == "datetime" and pa.types.is_date(kind):
        return column.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        column = pc.cast(column, pa.string())  # e.g. integer category codes
    return column.to_pylist()


def _require(names: list[str], fields: list[FieldSchema], path: Path) -> None:
    missing = [f.name for f in fields if f.name not in names]
    if missing:
        raise BatchError(
            f"{path}: column {missing[0]!r} is missing; the model reads "
            f"{', '.join(f.name for f in fields)}"
        )


def _read_arrow(batches: Iterator[pa.RecordBatch], contract: Contract) -> Iterator[Chunk]:
    row = 0
    fields = contract.input_schema
    tz = contract.features.timezone
    for batch in batches:
        raw = {f.name: _arrow_column(batch.column(f.name), f, tz) for f in fields}
        has_id = contract.id is not None and contract.id in batch.schema.names
        ids = batch.column(contract.id) if has_id else None
        yield Chunk(row, batch.num_rows, raw, ids, {})
        row += batch.num_rows


def _read_csv(path: Path, contract: Contract, rows: int, progress: Any) -> Iterator[Chunk]:
    import pyarrow.csv as pcsv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    _require(header, contract.input_schema, path)
    columns = [f.name for f in contract.input_schema]
    if contract.id and contract.id in header:
        columns.append(contract.id)
    # Every input field is read as text, so one bad cell rejects its row, not the file
    # (the id too: a type inferred per block could change from one chunk to the next).
    convert = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in columns},
        include_columns=columns,
        strings_can_be_null=True,
    )
    with _Counting(path, progress) as handle:
        reader = pcsv.open_csv(
            handle, read_options=pcsv.ReadOptions(block_size=1 << 22), convert_options=convert
        )
        yield from _read_arrow(_rebatch(reader, rows), contract)


def _read_parquet(path: Path, contract: Contract, rows: int, progress: Any) -> Iterator[Chunk]:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    _require(names, contract.input_schema, path)
    columns = [f.name for f in contract.input_schema]
    if contract.id and contract.id in names:
        columns.append(contract.id)
    if progress is not None:
        progress.total = parquet.metadata.num_rows
    for chunk in _read_arrow(parquet.iter_batches(batch_size=rows, columns=columns), contract):
        if progress is not None:
            progress.update(chunk.size)
        yield chunk


def _read_jsonl(path: Path, contract: Contract, rows: int, progress: Any) -> Iterator[Chunk]:
    fields = contract.input_schema
    with _Counting(path, progress) as handle:
        first = 0
        while True:
            lines = [line for line in (handle.readline() for _ in range(rows)) if line]
            if not lines:
                return
            records: list[dict[str, Any]] = []
            errors: dict[int, str] = {}
            for i, line in enumerate(lines):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    record, errors[i] = {}, f"not valid JSON ({exc.msg})"
                if not isinstance(record, dict):
                    record, errors[i] = {}, "not a JSON object"
                records.append(record)
            raw = {f.name: [r.get(f.name) for r in records] for f in fields}
            ids = None
            if contract.id:  # as text, so every chunk writes the same type
                values = [r.get(contract.id) for r in records]
                ids = pa.array([None if v is None else str(v) for v in values], pa.string())
            yield Chunk(first, len(records), raw, ids, errors)
            first += len(records)


def _rebatch(reader: Any, rows: int) -> Iterator[pa.RecordBatch]:
    """The reader's batches regrouped into batches of `rows` rows (the last may be smaller)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).combine_chunks().to_batches()[0]
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


class _Counting:
    """A binary file whose reads advance a progress bar (bytes)."""

    def __init__(self, path: Path, progress: Any) -> None:
        self.handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self.progress = progress
        if progress is not None:
            progress.total = path.stat().st_size

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def _count(self, data: bytes) -> bytes:
        if self.progress is not None:
            self.progress.update(len(data))
        return data

    def read(self, size: int = -1) -> bytes:
        return self._count(self.handle.read(size))

    def readline(self) -> bytes:
        return self._count(self.handle.readline())

    @property
    def closed(self) -> bool:
        return self.handle.closed


# --- scoring and writing ------------------------------------------------------------------


def _scored_table(scorer: Scorer, outputs: Outputs, rows: np.ndarray, ids: Any) -> pa.Table:
    n = len(rows)
    columns: dict[str, Any] = {"row": pa.array(rows, pa.int64())}
    if ids is not None:
        columns[scorer.contract.id or "id"] = ids
    if "probabilities" in outputs:
        labels = np.asarray(scorer.labels, dtype=object)
        columns["label"] = pa.array(labels[outputs["label"]], pa.string())
        for i in range(outputs["probabilities"].shape[1]):
            columns[f"proba_{i}"] = pa.array(outputs["probabilities"][:, i])
    else:
        columns["value"] = pa.array(outputs["value"])
        if "interval" in outputs:
            columns["interval_lower"] = pa.array(outputs["interval"][:, 0])
            columns["interval_upper"] = pa.array(outputs["interval"][:, 1])
    for name, value in (
        ("model", scorer.name),
        ("version", scorer.version),
        ("onnx_sha256", scorer.entry.sha256),
    ):
        columns[name] = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
        )
    return pa.table(columns)


def _checked(scorer: Scorer, chunk: Chunk) -> tuple[dict[str, np.ndarray], np.ndarray, pa.Table]:
    """The chunk's good rows, prepared; their positions; the rejects table."""
    typed, rejected = scorer.check(chunk.raw)
    reasons = {r.row: (r.field, r.message) for r in rejected}
    reasons.update({row: ("", why) for row, why in chunk.parse_errors.items()})
    good = np.ones(chunk.size, dtype=bool)
    good[list(reasons)] = False
    bad = sorted(reasons)
    rejects: dict[str, Any] = {"row": pa.array(np.asarray(bad, dtype=np.int64) + chunk.first_row)}
    if chunk.ids is not None:
        rejects[scorer.contract.id or "id"] = chunk.ids.take(pa.array(bad, pa.int64()))
    rejects["field"] = pa.array([reasons[r][0] for r in bad], pa.string())
    rejects["reason"] = pa.array([reasons[r][1] for r in bad], pa.string())
    prepared = prepare_columns(keep_rows(typed, good), scorer.contract.features)
    return prepared, np.flatnonzero(good), pa.table(rejects)


def score_file(
    scorer: Scorer,
    source: Path,
    output: Path,
    rejects_path: Path,
    chunk_rows: int = CHUNK_ROWS,
    progress: Any = None,
) -> tuple[int, int]:
    """Score `source` into `output` (and `rejects_path`); (rows scored, rows rejected)."""
    fmt = FORMATS.get(source.suffix.lower())
    if fmt is None:
        raise BatchError(f"{source}: expected a .csv, .parquet or .jsonl file")
    if not source.is_file():
        raise BatchError(f"{source}: not found")
    read = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl}[fmt]
    scored = rejected = 0
    writer: pq.ParquetWriter | None = None
    reject_writer: pq.ParquetWriter | None = None
    first_reject: pa.Table | None = None
    # The graph runs in a second thread (ONNX Runtime releases the GIL) while the next chunk is
    # read, checked and prepared: the file is scored at nearly the graph's own speed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: tuple[Any, np.ndarray, Chunk] | None = None
        for chunk in read(source, scorer.contract, chunk_rows, progress):
            prepared, good, rejects = _checked(scorer, chunk)
            future = pool.submit(_run, scorer, prepared)
            if pending is not None:
                writer = _write(writer, output, scorer, *pending)
            pending = (future, good, chunk)
            if rejects.num_rows:
                rejected += rejects.num_rows
                first_reject = first_reject or rejects.slice(0, 1)
                if reject_writer is None:
                    reject_writer = pq.ParquetWriter(rejects_path, rejects.schema)
                reject_writer.write_table(rejects)
            scored += len(good)
        if pending is not None:
            writer = _write(writer, output, scorer, *pending)
    for open_writer in (writer, reject_writer):
        if open_writer is not None:
            open_writer.close()
    if scored == 0:
        output.unlink(missing_ok=True)
        if first_reject is None:
            raise BatchError(f"{source}: no rows to score")
        row = first_reject.to_pylist()[0]
        raise BatchError(
            f"{source}: all {rejected} rows were rejected (first: row {row['row']}, "
            f"{row['field'] or 'line'}: {row['reason']}); reasons in {rejects_path}"
        )
    return scored, rejected


def _run(scorer: Scorer, prepared: dict[str, np.ndarray]) -> Outputs | None:
    return scorer.run(prepared) if len(next(iter(prepared.values()))) else None


def _write(
    writer: pq.ParquetWriter | None,
    output: Path,
    scorer: Scorer,
    future: Any,
    good: np.ndarray,
    chunk: Chunk,
) -> pq.ParquetWriter | None:
    outputs = future.result()
    if outputs is None:
        return writer
    ids = chunk.ids.take(pa.array(good)) if chunk.ids is not None else None
    table = _scored_table(scorer, outputs, good + chunk.first_row, ids)
    if writer is None:
        writer = pq.ParquetWriter(output, table.schema)
    writer.write_table(table)
    return writer


def _load(contract: Contract, directory: Path, name: str) -> Scorer:
    """The one model to score with (checksum verified), with all cores for ONNX Runtime."""
    only = contract.model_copy(update={"models": {name: contract.models[name]}})
    cores = os.cpu_count() or 1
    # Strings without a max_length in the contract get the API's default limit.
    limit = Settings.model_fields["max_string_length"].default
    return load_scorers(only, directory, cores, cores, limit)[name]


@contextlib.contextmanager
def _progress_bar() -> Iterator[Any]:
    """A tqdm bar on a terminal (bytes read, or rows for Parquet); nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(unit_scale=True, dynamic_ncols=True, file=sys.stderr) as bar:
        yield bar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.batch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("input", type=Path, help=".csv, .parquet or .jsonl")
    parser.add_argument("output", type=Path, help="the scores, as Parquet")
    parser.add_argument("--model", help="a model of the contract (default: its champion)")
    parser.add_argument("--models", type=Path, default=Path("models/export"))
    parser.add_argument("--rejects", type=Path, help="default: <OUTPUT stem>.rejects.parquet")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    args = parser.parse_args(argv)
    rejects = args.rejects or args.output.with_name(f"{args.output.stem}.rejects.parquet")
    try:
        contract = load_contract(args.models)
        name = args.model or contract.champion
        if name not in contract.models:
            models = sorted(contract.models)
            raise BatchError(f"--model {name!r}: the contract's models are {models}")
        scorer = _load(contract, args.models, name)
        rejects.unlink(missing_ok=True)
        with _progress_bar() as progress:
            scored, rejected = score_file(
                scorer, args.input, args.output, rejects, args.chunk_rows, progress
            )
    except (BatchError, FileError, ModelFileError) as exc:
        print(f"batch: {exc}", file=sys.stderr)
        return 1
    note = f"; {rejected} rejected, see {rejects}" if rejected else ""
    print(f"{scored} rows scored with {name} {scorer.version} → {args.output}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
