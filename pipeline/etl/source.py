"""Find the input files, describe them to DuckDB and turn reader failures into one-line errors.
CSV is read with an explicit dialect and a header read here: DuckDB's sniffer guesses wrong on CR
line endings, byte-order marks and unnamed columns."""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import logging
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import duckdb

from pipeline.common.errors import PipelineError
from pipeline.etl.config import DataConfig, EtlConfig
from pipeline.etl.download import download, is_url, redact

log = logging.getLogger(__name__)
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
EXTENSIONS |= {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
# Set explicitly: left unset, a last line over DuckDB's 32 MB buffer without a newline is dropped
# silently. DuckDB's read buffer is 16 times this, so a larger limit costs memory.
MAX_LINE_BYTES = 1 << 21
SAMPLE_BYTES = 1 << 22  # the start of a CSV read for its header and encoding checks
# Spreadsheet error cells (e.g. `#NAME?` where a cell started with "-" or "="): missing values.
NULL_STRINGS = ("", "#NAME?", "#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NUM!", "#NULL!")


@dataclass
class Source:
    """Resolved input: the files, their format, column types and the SQL that reads them."""

    files: list[Path]  # what DuckDB reads
    format: str
    label: str  # for messages and the profile: the path, glob or redacted URL
    shown: dict[str, str]  # a file in the spill dir → its origin, for messages
    types: dict[str, str] = field(default_factory=dict)  # column → DuckDB type
    relation: str = ""  # `FROM <relation>`


def open_source(
    con: duckdb.DuckDBPyConnection, data: DataConfig, cfg: EtlConfig, work: Path
) -> Source:
    """Resolve, check and describe the input (a URL is downloaded into `work`)."""
    if is_url(data.path):
        label = redact(data.path)
        files = [download(data.path, work, cfg.max_download_bytes, cfg.download_timeout_s)]
        source = Source(files, _format(data, files), label, {str(files[0]): label})
    else:
        files = _local_files(data)
        source = Source(files, _format(data, files), data.path, {})
    for f in files:
        if f.stat().st_size == 0:
            raise PipelineError(
                "the file is empty (0 bytes)", where=str(f), fix="point `path` at the data"
            )
    if source.format == "csv":
        header = _csv_header(files, data)
        source.types = dict.fromkeys(header, "VARCHAR")
        if data.encoding == "utf-16":
            _to_utf8(source, work)
        columns = "{" + ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in header) + "}"
        source.relation = (
            f"read_csv({sql_list(source.files)}, auto_detect=false, header=true, "
            f"columns={columns}, delim={sql_string(data.delimiter)}, "
            f"quote={sql_string(data.quote)}, escape={sql_string(data.quote)}, "
            f"encoding={sql_string(data.encoding.replace('utf-16', 'utf-8'))}, "
            f"nullstr={sql_list(NULL_STRINGS)}, max_line_size={MAX_LINE_BYTES}, "
            "strict_mode=true, null_padding=false)"
        )
        return source
    if source.format == "parquet":
        source.relation = f"read_parquet({sql_list(files)})"
    else:
        source.relation = f"read_json({sql_list(files)}, format='newline_delimited')"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {source.relation}").fetchall()
    except duckdb.Error as exc:
        raise reader_error(exc, source, data) from None
    source.types = {str(r[0]): str(r[1]) for r in described}
    return source


def _to_utf8(source: Source, work: Path) -> None:
    """UTF-8 copies of UTF-16 files: DuckDB's decoder refuses emoji, reads big-endian as empty."""
    copies = []
    for i, f in enumerate(source.files):
        copy = work / f"utf8-{i}.csv"
        try:
            with (
                io.TextIOWrapper(_open(f), "utf-16", newline="") as text,
                open(copy, "w", encoding="utf-8", newline="") as out,
            ):
                shutil.copyfileobj(text, out, 1 << 20)
        except UnicodeDecodeError as exc:
            raise PipelineError(
                f"not valid utf-16 ({exc.reason} at byte {exc.start})",
                where=str(f),
                fix="check `encoding` in the data config",
            ) from None
        source.shown[str(copy)] = str(f)
        copies.append(copy)
    source.files = copies


def check_columns(source: Source, data: DataConfig) -> None:
    """Every configured column exists; others are dropped with a log line unless under `drop`."""
    found = list(source.types)
    missing = [c for c in data.columns if c not in source.types]
    if missing:
        role = next(r for r, cols in data.roles().items() if missing[0] in cols)
        hint = ""
        if len(found) == 1 and any(d in found[0] for d in ";,\t|" if d != data.delimiter):
            hint = f"; the only column is {found[0]!r}, so the delimiter looks wrong"
        raise PipelineError(
            f"{role} column {missing[0]!r} not found (columns: {found[:12]}){hint}",
            where=source.label,
            fix=f"fix the column names or `delimiter` in {data.where}",
        )
    extra = [c for c in found if c not in data.columns and c not in data.drop]
    if extra:
        log.info("dropping columns not in the data config: %s", ", ".join(extra))


def _local_files(data: DataConfig) -> list[Path]:
    matches = sorted(glob.glob(data.path))
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        found = "matches only directories" if matches else "matches no file"
        raise PipelineError(
            f"{data.path!r} {found}",
            where=f"{data.where}: path",
            fix="name a file or a glob of files (e.g. data/raw/demo/*.parquet), relative to the "
            "project root",
        )
    return files


def _format(data: DataConfig, files: list[Path]) -> str:
    fmt = data.format or EXTENSIONS.get(Path(files[0].name.lower().removesuffix(".gz")).suffix)
    if fmt is None:
        raise PipelineError(
            "cannot tell the file format from its name",
            where=str(files[0]),
            fix=f"set `format:` to one of csv, parquet, jsonl in {data.where}",
        )
    return fmt


def _open(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzipped (DuckDB reads .gz itself)."""
    if path.suffix.lower() == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return open(path, "rb")


def _csv_header(files: list[Path], data: DataConfig) -> list[str]:
    """The column names of the first file; every other file must have the same header."""
    header = _read_header(files[0], data)
    for f in files[1:]:
        if _read_header(f, data) != header:
            raise PipelineError(
                f"the header differs from that of {files[0]}",
                where=str(f),
                fix="give every file matched by `path` the same columns in the same order",
            )
    if len(set(header)) < len(header):
        twice = next(h for h in header if header.count(h) > 1)
        raise PipelineError(
            f"column {twice!r} appears twice in the header", where=str(files[0]), fix="rename one"
        )
    return header


def _read_header(path: Path, data: DataConfig) -> list[str]:
    """The first record's fields; an unnamed column (e.g. a saved pandas index) is column<i>."""
    try:
        with _open(path) as fh:
            raw = fh.read(SAMPLE_BYTES)
    except (EOFError, OSError) as exc:  # gzip.BadGzipFile is an OSError
        raise PipelineError(
            f"the file cannot be read ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="the file is truncated or not what its name says; re-export or re-download it",
        ) from None
    # A bad byte after the header fails when DuckDB reads its column, naming the line.
    text = raw.decode(data.encoding, "replace").lstrip("\ufeff")
    if data.encoding == "latin-1" and not raw.isascii():
        try:  # every accented letter of UTF-8 text read as latin-1 would come out garbled
            codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
            raise PipelineError(
                "`encoding: latin-1` is set, but the file is UTF-8 (its accented letters would "
                "be garbled)",
                where=str(path),
                fix=f"remove `encoding` from {data.where} (UTF-8 is the default)",
            )
        except UnicodeDecodeError:
            pass  # not UTF-8: latin-1 is plausible
    if len(raw) == SAMPLE_BYTES and not re.search(r"[\r\n]", text):
        raise PipelineError(
            f"line 1 (the header) is longer than {SAMPLE_BYTES:,} bytes",
            where=str(path),
            fix="the file is not a CSV with a header line; check `path` and `format`",
        )
    options: dict[str, Any] = {"delimiter": data.delimiter}
    options |= {"quotechar": data.quote} if data.quote else {"quoting": csv.QUOTE_NONE}
    try:
        fields = next(csv.reader(io.StringIO(text, newline=""), **options), [])
    except csv.Error as exc:
        raise PipelineError(
            f"line 1: {exc}", where=str(path), fix="check the header line"
        ) from None
    if any("\ufffd" in f for f in fields):
        raise PipelineError(
            f"line 1: bytes that are not valid {data.encoding}",
            where=str(path),
            fix=_encoding_fix(data),
        )
    if not any(f.strip() for f in fields):
        raise PipelineError(
            "no header row", where=str(path), fix="the first line must name the columns"
        )
    return [f.strip() or f"column{i}" for i, f in enumerate(fields)]


def _encoding_fix(data: DataConfig) -> str:
    return f"save the file as UTF-8 or set `encoding: latin-1` in {data.where}"


def reader_error(exc: Exception, source: Source, data: DataConfig) -> PipelineError:
    """DuckDB's multi-line reader message → one line naming the file, line and fix."""
    text = str(exc)
    file_match = re.search(r"file = (\S+)", text) or re.search(r"'([^']+\.parquet)'", text)
    where = file_match.group(1) if file_match else str(source.files[0])
    line = re.search(r"CSV Error on Line: (\d+)", text)
    at = f"line {line.group(1)}: " if line else ""
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if "Maximum line size" in text:
        message = f"a line is longer than {MAX_LINE_BYTES >> 20} MiB"
        fix = "the file is cut off or not line-based; check its end, `quote` and `format`"
    elif "unterminated quote" in text:
        message = "a quoted value is never closed"
        fix = f"close the quote, or set `quote: ''` in {data.where} if the file uses no quoting"
    elif columns:
        message = f"expected {columns.group(1)} columns, found {columns.group(2)}"
        fix = (
            "the file is truncated or uses another delimiter; re-export it or set `delimiter:` "
            f"in {data.where}"
        )
    elif "unicode" in text.lower() or "utf-8" in text.lower():
        message, fix = f"bytes that are not valid {data.encoding}", _encoding_fix(data)
    elif "magic bytes" in text or "parquet" in text.lower():
        at, message = "", "not a readable Parquet file (broken footer)"
        fix = "the file is truncated or corrupt; re-export or re-download it"
    else:
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        message, fix = f"cannot read the data: {first}", f"check the file and {data.where}"
    return PipelineError(at + message, where=source.shown.get(where, where), fix=fix)


def sql_string(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: Iterable[Any]) -> str:
    """A SQL list of string literals."""
    return "[" + ", ".join(map(sql_string, values)) + "]"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
