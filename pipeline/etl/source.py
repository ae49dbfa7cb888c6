"""Find the input files, read them with DuckDB and turn reader failures into one-line errors."""

from __future__ import annotations

import csv
import glob
import logging
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from pipeline.common.errors import PipelineError
from pipeline.etl.contract import DataContract, EtlConfig

log = logging.getLogger(__name__)

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass
class Source:
    """Resolved input: the files, their format and the SQL table expression that reads them."""

    files: list[Path]
    format: str
    types: dict[str, str]  # column → DuckDB type (all VARCHAR for CSV)
    relation: str  # e.g. read_parquet([...]) — used as `FROM <relation>`
    position: str  # SQL for the row's 0-based position in the input (stable order)

    @property
    def label(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0].parent}/*"


def connect(cfg: EtlConfig) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with its share of the memory limit, a spill directory and threads."""
    spill = Path(cfg.spill_dir)
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{cfg.duckdb_bytes}B'")
    con.execute(f"SET temp_directory = {sql_string(str(spill / 'duckdb'))}")
    con.execute(f"SET threads = {int(cfg.threads)}")
    con.execute("SET preserve_insertion_order = true")  # splits keep the input's row order
    return con


def resolve_files(contract: DataContract, cfg: EtlConfig) -> list[Path]:
    """The input files: a downloaded URL, a glob's matches (sorted) or one file."""
    where = f"configs/data/{contract.name}.yaml: path"
    if re.match(r"^https?://", contract.path):
        return [download(contract.path, Path(cfg.spill_dir), cfg.download_timeout_s)]
    matches = sorted(glob.glob(contract.path))
    if not matches:
        raise PipelineError(
            f"no file matches {contract.path!r}",
            where=where,
            fix="check the path (relative to the project root) or run `dvc repro generate`",
        )
    return [Path(m) for m in matches if Path(m).is_file()]


def download(url: str, spill_dir: Path, timeout_s: float) -> Path:
    """Fetch an http(s) URL into the spill directory (DuckDB's httpfs may be unavailable)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", url.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    target = spill_dir / "download" / (name or "download")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(part, "wb") as fh:
            shutil.copyfileobj(response, fh)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise PipelineError(
            f"cannot download the data: {reason}",
            where=url,
            fix="check the URL and the network, or download the file and set `path` to it",
        ) from None
    part.replace(target)
    log.info("downloaded %s → %s (%d bytes)", url, target, target.stat().st_size)
    return target


def infer_format(contract: DataContract, files: list[Path]) -> str:
    """The contract's format, or the one the first file's extension implies."""
    if contract.format:
        return contract.format
    suffixes = [s for s in files[0].suffixes if s not in (".gz", ".zst")]
    fmt = _EXTENSIONS.get(suffixes[-1].lower()) if suffixes else None
    if fmt is None:
        raise PipelineError(
            "cannot tell the file format from its name",
            where=str(files[0]),
            fix=f"set `format:` to one of csv, parquet, jsonl in configs/data/{contract.name}.yaml",
        )
    return fmt


def open_source(con: duckdb.DuckDBPyConnection, contract: DataContract, cfg: EtlConfig) -> Source:
    """Resolve, sanity-check and describe the input; errors name the file and the fix."""
    files = resolve_files(contract, cfg)
    fmt = infer_format(contract, files)
    for f in files:
        if f.stat().st_size == 0:
            raise PipelineError(
                "the file is empty (0 bytes)", where=str(f), fix="point `path` at the real data"
            )
    paths = "[" + ", ".join(sql_string(str(f)) for f in files) + "]"
    if fmt == "csv":
        header = _csv_header(files[0], contract)
        cols = "{" + ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in header) + "}"
        relation = (
            f"read_csv({paths}, auto_detect=false, header=true, columns={cols}, "
            f"delim={sql_string(contract.delimiter)}, quote={sql_string(contract.quote)}, "
            f"escape={sql_string(contract.quote)}, encoding={sql_string(contract.encoding)}, "
            "strict_mode=true, null_padding=false)"
        )
        types = dict.fromkeys(header, "VARCHAR")
        return Source(files, fmt, types, relation, "row_number() OVER () - 1")
    if fmt == "parquet":
        offsets, total = [], 0
        for f in files:
            offsets.append(total)
            total += _parquet_rows(f)
        relation = f"read_parquet({paths}, filename=true, file_row_number=true)"
        position = f"list_extract({offsets}, list_position({paths}, filename)) + file_row_number"
    else:
        relation = f"read_json({paths}, format='newline_delimited')"
        position = "row_number() OVER () - 1"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise reader_error(exc, files, contract) from None
    types = {str(r[0]): str(r[1]) for r in described if r[0] not in ("filename", "file_row_number")}
    return Source(files, fmt, types, relation, position)


def _parquet_rows(path: Path) -> int:
    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for broken files
        raise PipelineError(
            f"not a readable Parquet file ({str(exc).splitlines()[0]})",
            where=str(path),
            fix="the file is truncated or corrupt (broken footer); re-export or re-download it",
        ) from None


def _csv_header(path: Path, contract: DataContract) -> list[str]:
    """Column names from the first line (DuckDB's sniffer guesses wrong on odd files)."""
    with open(path, "rb") as fh:
        first = fh.readline()
    try:
        line = first.decode(contract.encoding.replace("-", "_")).lstrip("\ufeff")
    except (UnicodeDecodeError, LookupError):
        raise PipelineError(
            f"line 1: the header is not valid {contract.encoding}",
            where=str(path),
            fix=f"save the file as UTF-8 or set `encoding:` in configs/data/{contract.name}.yaml",
        ) from None
    if contract.quote:
        rows = list(csv.reader([line], delimiter=contract.delimiter, quotechar=contract.quote))
    else:
        rows = list(csv.reader([line], delimiter=contract.delimiter, quoting=csv.QUOTE_NONE))
    # An unnamed column (e.g. a saved pandas index) is called column<i>, i counting from 0.
    header = [h.strip() or f"column{i}" for i, h in enumerate(rows[0])] if rows else []
    if not any(h.strip() for h in (rows[0] if rows else [])):
        raise PipelineError(
            "no header row", where=str(path), fix="the first line must name the columns"
        )
    return header


def reader_error(exc: Exception, files: list[Path], contract: DataContract) -> PipelineError:
    """DuckDB's multi-line reader message → one line naming the file, line and fix."""
    text = str(exc)
    file_match = re.search(r"file = (\S+)", text) or re.search(r"'([^']+\.parquet)'", text)
    where = file_match.group(1) if file_match else str(files[0])
    line = re.search(r"CSV Error on Line: (\d+)", text)
    at = f"line {line.group(1)}: " if line else ""
    cfg_file = f"configs/data/{contract.name}.yaml"
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if "unterminated quote" in text:
        return PipelineError(
            f"{at}a quoted value is never closed",
            where=where,
            fix=f"close the quote, or set `quote: ''` in {cfg_file} if the file uses no quoting",
        )
    if columns:
        return PipelineError(
            f"{at}expected {columns.group(1)} columns, found {columns.group(2)}",
            where=where,
            fix=f"the file is truncated or uses another delimiter; re-export it or set "
            f"`delimiter:` in {cfg_file}",
        )
    if "unicode" in text.lower() or "utf-8" in text.lower():
        return PipelineError(
            f"{at}bytes that are not valid {contract.encoding}",
            where=where,
            fix=f"save the file as UTF-8 or set `encoding: latin-1` in {cfg_file}",
        )
    if "magic bytes" in text or "parquet" in text.lower():
        return PipelineError(
            "not a readable Parquet file (broken footer)",
            where=where,
            fix="the file is truncated or corrupt; re-export or re-download it",
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return PipelineError(
        f"{at}cannot read the data: {first}", where=where, fix=f"check the file and {cfg_file}"
    )


def sql_string(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
