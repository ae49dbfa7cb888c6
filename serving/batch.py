"""Score a file: `python -m serving.batch INPUT OUTPUT [--model NAME] [--models DIR]`.

Every row of INPUT, read in chunks, goes through the API's own checks, features and model; the
columns of OUTPUT and of the rejects file are in docs/serving.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from serving.features import prepare_columns
from serving.runtime import ModelFileError
from serving.schemas import Contract, FieldSchema, FileError, load_contract
from serving.scoring import Scorer, keep_rows, load_scorers
from serving.settings import Settings

# Rows per chunk. A TF-IDF graph holds several dense [rows, vocabulary] tensors at once, so a
# larger chunk costs memory for no speed (bench/RESULTS.md).
CHUNK_ROWS = 16_384


class BatchError(Exception):
    """The run cannot go on; the message is the one line to show."""


@dataclass
class Chunk:
    first_row: int  # position in the input of the chunk's first row
    size: int
    raw: dict[str, Any]  # input field → values (numpy array or list)
    ids: pa.Array | None
    parse_errors: dict[int, str]  # jsonl lines that are not JSON objects


def _arrow_column(column: pa.Array, field: FieldSchema, tz: str) -> Any:
    """An Arrow column as `serving.scoring.check_columns` reads it: float64 (NaN) when it converts
    whole, datetime64 for timestamps and dates (naive, in the spec's zone), else Python values."""
    kind = column.type
    if field.type in ("number", "boolean"):
        for target in (pa.float64(), pa.bool_()):
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return pc.cast(column, target).to_numpy(zero_copy_only=False).astype(np.float64)
    elif field.type == "datetime" and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        if pa.types.is_timestamp(kind) and kind.tz is not None:  # aware: to the zone, then naive
            column = pc.local_timestamp(pc.cast(column, pa.timestamp("us", tz)))
        return column.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        column = pc.cast(column, pa.string())  # e.g. integer category codes
    return column.to_pylist()


def _columns(names: list[str], contract: Contract, path: Path) -> list[str]:
    """The columns to read: every input field (all must be there), and the id if present."""
    fields = [f.name for f in contract.input_schema]
    missing = [name for name in fields if name not in names]
    if missing:
        raise BatchError(
            f"{path}: column {missing[0]!r} is missing; the model reads {', '.join(fields)}"
        )
    return fields + ([contract.id] if contract.id and contract.id in names else [])


def _progress(progress: Any, done: int, total: int) -> None:
    if progress is not None:
        progress.total = total
        progress.update(done - progress.n)


def _read_arrow(batches: Iterable[pa.RecordBatch], contract: Contract) -> Iterator[Chunk]:
    row = 0
    tz = contract.features.timezone
    for batch in batches:
        raw = {f.name: _arrow_column(batch.column(f.name), f, tz) for f in contract.input_schema}
        ids = batch.column(contract.id) if contract.id in batch.schema.names else None
        yield Chunk(row, batch.num_rows, raw, ids, {})
        row += batch.num_rows


def _read_csv(path: Path, contract: Contract, rows: int, progress: Any) -> Iterator[Chunk]:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        columns = _columns(next(csv.reader(handle), []), contract, path)
    # Every column is read as text, so one bad cell rejects its row, not the file (the id too:
    # a type inferred per block could change from one chunk to the next).
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=True,
    )
    size = path.stat().st_size
    with open(path, "rb") as handle:
        reader = pcsv.open_csv(
            handle, read_options=pcsv.ReadOptions(block_size=1 << 22), convert_options=convert
        )
        # CSV blocks are cut into chunks of at most `rows` rows (zero-copy slices).
        blocks = (b.slice(i, rows) for b in reader for i in range(0, b.num_rows, rows))
        for chunk in _read_arrow(blocks, contract):
            yield chunk
            _progress(progress, handle.tell(), size)


def _read_parquet(path: Path, contract: Contract, rows: int, progress: Any) -> Iterator[Chunk]:
    parquet = pq.ParquetFile(path)
    columns = _columns(parquet.schema_arrow.names, contract, path)
    for chunk in _read_arrow(parquet.iter_batches(batch_size=rows, columns=columns), contract):
        yield chunk
        _progress(progress, chunk.first_row + chunk.size, parquet.metadata.num_rows)


def _read_jsonl(path: Path, contract: Contract, rows: int, progress: Any) -> Iterator[Chunk]:
    size = path.stat().st_size
    first = 0
    with open(path, "rb") as handle:
        while lines := list(itertools.islice(handle, rows)):
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
            raw = {f.name: [r.get(f.name) for r in records] for f in contract.input_schema}
            ids = None
            if contract.id:  # as text, so every chunk writes the same type
                values = [r.get(contract.id) for r in records]
                ids = pa.array([None if v is None else str(v) for v in values], pa.string())
            yield Chunk(first, len(records), raw, ids, errors)
            first += len(records)
            _progress(progress, handle.tell(), size)


READERS = {".csv": _read_csv, ".parquet": _read_parquet, ".jsonl": _read_jsonl}
READERS[".ndjson"] = _read_jsonl


def _scored_table(
    scorer: Scorer, prepared: Mapping[str, np.ndarray], rows: np.ndarray, ids: Any
) -> pa.Table:
    """The OUTPUT columns (docs/serving.md) of prepared rows, `rows` their input positions."""
    outputs = scorer.run(prepared)
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
    zeros = pa.array(np.zeros(len(rows), dtype=np.int32))  # constant columns: one dictionary entry
    constant = {"model": scorer.name, "version": scorer.version, "onnx_sha256": scorer.entry.sha256}
    for name, value in constant.items():
        columns[name] = pa.DictionaryArray.from_arrays(zeros, pa.array([value]))
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
    read = READERS.get(source.suffix.lower())
    if read is None:
        raise BatchError(f"{source}: expected a .csv, .parquet or .jsonl file")
    if not source.is_file():
        raise BatchError(f"{source}: not found")
    rejects_path.unlink(missing_ok=True)
    scored = rejected = 0
    first_reject: dict[str, Any] | None = None
    writers: dict[Path, pq.ParquetWriter] = {}

    def write(path: Path, table: pa.Table) -> None:
        if path not in writers:
            writers[path] = files.enter_context(pq.ParquetWriter(path, table.schema))
        writers[path].write_table(table)

    # The graph runs in a second thread (ONNX Runtime releases the GIL) while the next chunk is
    # read, checked and prepared: the file is scored at nearly the graph's own speed.
    with contextlib.ExitStack() as files, ThreadPoolExecutor(max_workers=1) as pool:
        jobs: list[Future[pa.Table]] = []  # at most two: one running, one to write
        for chunk in read(source, scorer.contract, chunk_rows, progress):
            prepared, good, rejects = _checked(scorer, chunk)
            if rejects.num_rows:
                rejected += rejects.num_rows
                first_reject = first_reject or rejects.slice(0, 1).to_pylist()[0]
                write(rejects_path, rejects)
            if len(good):
                ids = chunk.ids.take(pa.array(good)) if chunk.ids is not None else None
                job = pool.submit(_scored_table, scorer, prepared, good + chunk.first_row, ids)
                jobs.append(job)
                scored += len(good)
            if len(jobs) > 1:
                write(output, jobs.pop(0).result())
        for job in jobs:
            write(output, job.result())
    if scored == 0:
        output.unlink(missing_ok=True)
        if first_reject is None:
            raise BatchError(f"{source}: no rows to score")
        raise BatchError(
            f"{source}: all {rejected} rows were rejected (first: row {first_reject['row']}, "
            f"{first_reject['field'] or 'line'}: {first_reject['reason']}); "
            f"reasons in {rejects_path}"
        )
    return scored, rejected


def main(argv: list[str] | None = None) -> int:
    """CLI: score INPUT into OUTPUT; 1 and one line on stderr when the run cannot go on."""
    from tqdm import tqdm

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
            raise BatchError(
                f"--model {name!r}: the contract's models are {sorted(contract.models)}"
            )
        # Only that model, all cores for ONNX Runtime, the API's default string limit.
        only = contract.model_copy(update={"models": {name: contract.models[name]}})
        cores = os.cpu_count() or 1
        limit = Settings.model_fields["max_string_length"].default
        scorer = load_scorers(only, args.models, cores, cores, limit)[name]
        # A bar on a terminal only (disable=None): bytes read, or rows for Parquet.
        with tqdm(unit_scale=True, dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
            scored, rejected = score_file(
                scorer, args.input, args.output, rejects, args.chunk_rows, bar
            )
    except (BatchError, FileError, ModelFileError) as exc:
        print(f"batch: {exc}", file=sys.stderr)
        return 1
    note = f"; {rejected} rejected, see {rejects}" if rejected else ""
    print(f"{scored} rows scored with {name} {scorer.version} → {args.output}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
