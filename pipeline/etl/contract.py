"""The data contract (`configs/data/<name>.yaml`) and the ETL settings (`configs/etl/`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.common.errors import PipelineError

FORMATS = ("csv", "parquet", "jsonl")
SPLIT_METHODS = ("stratified", "time", "hash")
TASKS = ("binary", "multiclass")


@dataclass
class SplitConfig:
    """How rows are assigned to train/val/test (deterministic for a seed)."""

    method: str = "stratified"  # stratified | time (by time_column) | hash (of the id; stable)
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    time_column: str | None = None  # a `datetime` column; required when method is time


@dataclass
class DataContract:
    """What a user writes to plug in data; every column the pipeline uses is named here."""

    name: str = "data"
    path: str = ""  # a file, a glob or an http(s) URL
    format: str | None = None  # csv | parquet | jsonl; inferred from the extension when null
    target: str = ""
    id: str | None = None  # unique row id; `row_id` (the row's 1-based position) when null
    text: str | None = None  # one free-text column
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)  # booleans go here too (as 0/1)
    datetime: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)  # columns dropped without a log line
    task: str | None = None  # binary | multiclass; inferred from the target's classes when null
    positive: str | None = None  # binary only: the positive class (default: the last in order)
    bounds: dict[str, list[Any]] = field(default_factory=dict)  # col: [lo, hi]; null = open
    delimiter: str = ","  # csv only
    quote: str = '"'  # csv only; "" when the file uses no quoting
    encoding: str = "utf-8"  # csv only: utf-8 | utf-16 | latin-1
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        where = f"configs/data/{self.name}.yaml"
        if not self.path or not self.target:
            raise PipelineError(
                "`path` and `target` are required", where=where, fix="set both keys"
            )
        if self.format is not None and self.format not in FORMATS:
            raise _bad(where, "format", self.format, FORMATS)
        if self.task is not None and self.task not in TASKS:
            raise _bad(where, "task", self.task, TASKS)
        if self.split.method not in SPLIT_METHODS:
            raise _bad(where, "split.method", self.split.method, SPLIT_METHODS)
        fractions = (self.split.train, self.split.val, self.split.test)
        if min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise PipelineError(
                f"split fractions must be positive and sum to 1, found {fractions}",
                where=f"{where}: split",
                fix="e.g. train: 0.8, val: 0.1, test: 0.1",
            )
        if self.split.method == "time" and self.split.time_column not in self.datetime:
            raise PipelineError(
                f"split.time_column {self.split.time_column!r} is not a `datetime` column",
                where=f"{where}: split.time_column",
                fix="name one of the columns listed under `datetime`",
            )
        self._check_overlaps(where)

    def _check_overlaps(self, where: str) -> None:
        seen: dict[str, str] = {}
        for role, cols in self.roles().items():
            for col in cols:
                if col in seen:
                    raise PipelineError(
                        f"column {col!r} is listed as both {seen[col]} and {role}",
                        where=where,
                        fix="list each column under one key only",
                    )
                seen[col] = role
        for col, pair in self.bounds.items():
            if len(pair) != 2 or not all(v is None or isinstance(v, int | float) for v in pair):
                raise PipelineError(
                    f"bounds of {col!r} must be [lo, hi] numbers or null, found {pair}",
                    where=f"{where}: bounds",
                    fix="e.g. `amount: [0, null]`",
                )
            self.bounds[col] = [None if v is None else float(v) for v in pair]
            if col not in self.numeric:
                raise PipelineError(
                    f"bounds given for {col!r}, which is not a numeric column",
                    where=f"{where}: bounds",
                    fix="bound only columns listed under `numeric`",
                )

    def roles(self) -> dict[str, list[str]]:
        """Every contract column by role (target, id, text, categorical, numeric, datetime)."""
        return {
            "target": [self.target],
            "id": [self.id] if self.id else [],
            "text": [self.text] if self.text else [],
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "datetime": list(self.datetime),
        }

    @property
    def columns(self) -> list[str]:
        """All columns the ETL reads, in contract order."""
        return [c for cols in self.roles().values() for c in cols]


@dataclass
class EtlConfig:
    """Resources and thresholds of the ETL (`configs/etl/`)."""

    memory_limit: str = "2GB"  # the whole ETL's budget, e.g. 512MB or 4GiB; bigger data spills
    duckdb_share: float = 0.4  # of memory_limit for DuckDB; the rest: interpreter, batches, plan
    spill_dir: str = ".tmp/etl"  # DuckDB temp_directory, staging files and URL downloads
    threads: int = 2
    batch_rows: int = 200_000  # most rows per batch when cleaning and writing splits
    compression: str = "snappy"  # Parquet codec of the splits (snappy: fast; zstd: smaller)
    max_rejected_fraction: float = 0.2  # fail when more rows than this are rejected
    max_levels: int = 10_000  # category levels kept in the profile (most frequent first)
    download_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        memory_bytes(self.memory_limit)  # fails early, naming the key, when it is no size
        if not 0 < self.duckdb_share < 1:
            raise PipelineError(
                f"duckdb_share must be between 0 and 1, found {self.duckdb_share}",
                where="configs/etl: duckdb_share",
                fix="e.g. 0.5 (half of memory_limit for DuckDB)",
            )

    @property
    def duckdb_bytes(self) -> int:
        """DuckDB's part of the memory budget."""
        return int(memory_bytes(self.memory_limit) * self.duckdb_share)


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_bytes(limit: str) -> int:
    """'512MB' → 512_000_000: DuckDB's units (KB, MB, GB: powers of 1000; KiB...: of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(limit))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise PipelineError(
            f"memory_limit must be a size like 512MB or 4GiB, found {limit!r}",
            where="configs/etl: memory_limit",
            fix="write a number and one of the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
        )
    return int(float(match.group(1)) * _UNITS[unit])


def _bad(where: str, key: str, found: object, allowed: tuple[str, ...]) -> PipelineError:
    return PipelineError(
        f"{key} must be one of {list(allowed)}, found {found!r}",
        where=f"{where}: {key}",
        fix=f"set {key} to one of {', '.join(allowed)} (or remove it)",
    )
