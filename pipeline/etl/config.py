"""The user's data config (`configs/data/<name>.yaml`) and the ETL's settings (`configs/etl/`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.common.errors import PipelineError

_ENCODING_NAMES = {"utf8": "utf-8", "utf16": "utf-16", "latin1": "latin-1", "iso-8859-1": "latin-1"}


@dataclass
class SplitConfig:
    """How rows are assigned to train/val/test (deterministic for a seed)."""

    method: str = "stratified"  # stratified | time (by time_column) | hash (of the id; stable)
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    time_column: str | None = None  # a `datetime` column; required when method is time


@dataclass
class DataConfig:
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
    task: str | None = None  # binary | multiclass | regression; inferred from the target if null
    positive: str | None = None  # binary only: the positive class (default: the last in order)
    target_transform: str = "none"  # regression: none | log1p (models learn log1p(target))
    bounds: dict[str, list[Any]] = field(default_factory=dict)  # col: [lo, hi]; null = open
    datetime_format: dict[str, str] = field(default_factory=dict)  # col: strptime format
    timezone: str = "UTC"  # naive datetimes are in this zone; aware ones are converted to it
    delimiter: str = ","  # csv only
    quote: str = '"'  # csv only; "" when the file uses no quoting
    encoding: str = "utf-8"  # csv only: utf-8 | utf-16 | latin-1
    split: SplitConfig = field(default_factory=SplitConfig)

    @property
    def where(self) -> str:
        return f"configs/data/{self.name}.yaml"

    def __post_init__(self) -> None:
        if not self.path or not self.target:
            raise PipelineError(
                "`path` and `target` are required", where=self.where, fix="set both"
            )
        spelling = self.encoding.lower().replace("_", "-")  # utf8, UTF_8, latin1 … are read too
        self.encoding = _ENCODING_NAMES.get(spelling, spelling)
        for key, value, allowed in (
            ("format", self.format, ("csv", "parquet", "jsonl")),
            ("task", self.task, ("binary", "multiclass", "regression")),
            ("split.method", self.split.method, ("stratified", "time", "hash")),
            ("encoding", self.encoding, ("utf-8", "utf-16", "latin-1")),
            ("target_transform", self.target_transform, ("none", "log1p")),
        ):
            if value is not None and value not in allowed:
                raise self.error(key, f"must be one of {list(allowed)}, found {value!r}")
        fractions = (self.split.train, self.split.val, self.split.test)
        if min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise self.error("split", f"fractions must be positive and sum to 1, found {fractions}")
        if self.split.method == "time" and self.split.time_column not in self.datetime:
            raise self.error(
                "split.time_column",
                f"{self.split.time_column!r} is not a `datetime` column; name one of them",
            )
        seen: dict[str, str] = {}
        for role, cols in self.roles().items():
            for col in cols:
                if col in seen:
                    raise self.error(role, f"{col!r} is listed as both {seen[col]} and {role}")
                seen[col] = role
        if not self.id and "row_id" in seen:
            raise self.error("id", "is null, so the ETL adds `row_id`, but a column has that name")
        for col, pair in self.bounds.items():
            if len(pair) != 2 or not all(v is None or isinstance(v, int | float) for v in pair):
                raise self.error("bounds", f"{col!r} needs [lo, hi] numbers or null, found {pair}")
            if col not in self.numeric and col != self.target:
                raise self.error("bounds", f"{col!r} is neither a numeric column nor the target")
            self.bounds[col] = [None if v is None else float(v) for v in pair]
        for col in self.datetime_format:
            if col not in self.datetime:
                raise self.error("datetime_format", f"{col!r} is not a `datetime` column")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.error("timezone", f"unknown time zone {self.timezone!r}") from None
        if self.task is not None:
            self.check_task(self.task)

    def check_task(self, task: str) -> None:
        """Settings that only make sense for one kind of task; also run once a task is inferred."""
        regression = task == "regression"
        for key, misplaced, message in (
            ("positive", regression and self.positive is not None, "is a classification setting"),
            ("target_transform", not regression and self.target_transform != "none",
             "needs a regression target"),
            ("bounds", not regression and self.target in self.bounds,
             f"{self.target!r} is a class label, not a number to bound"),
        ):  # fmt: skip
            if misplaced:
                other = "binary" if regression else "regression"
                fix = f"remove it from {self.where}, or set `task: {other}`"
                raise self.error(key, f"{message}; the task is {task}", fix=fix)

    def roles(self) -> dict[str, list[str]]:
        """Every column the ETL reads, by role."""
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
        return [c for cols in self.roles().values() for c in cols]

    def error(self, key: str, message: str, fix: str | None = None) -> PipelineError:
        """A one-line error about one key of this data config."""
        return PipelineError(message, where=f"{self.where}: {key}", fix=fix or f"correct `{key}`")


@dataclass
class EtlConfig:
    """Resources and limits of the ETL (`configs/etl/`)."""

    memory_limit: str = "2GB"  # the whole ETL's budget; bigger data spills to spill_dir
    spill_dir: str = ".tmp/etl"  # DuckDB's temp_directory, the staging file and downloads
    threads: int = 2  # DuckDB threads (fewer when memory_limit leaves under 128 MiB each)
    batch_rows: int = 200_000  # most rows per batch when cleaning and writing the splits
    max_rejected_fraction: float = 0.2  # fail when more rows than this are rejected
    max_levels: int = 10_000  # category levels kept in the profile (most frequent first)
    download_timeout_s: float = 300.0  # the whole download of a URL `path`
    max_download_bytes: int = 2_000_000_000  # a URL `path` larger than this is refused

    def __post_init__(self) -> None:
        memory_bytes(self.memory_limit)  # fails early, naming the key, when it is no size

    @property
    def duckdb_bytes(self) -> int:
        # 40% for DuckDB's aggregates, sorts and reads; the rest for the row pass's batches.
        return memory_bytes(self.memory_limit) * 2 // 5

    @property
    def duckdb_threads(self) -> int:
        # Each thread holds a Parquet row group (64 MiB in the demo's files): 128 MiB a thread.
        return max(1, min(self.threads, self.duckdb_bytes // (128 * 2**20)))


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_bytes(limit: str) -> int:
    """'512MB' → 512_000_000: DuckDB's units (KB, MB, GB: powers of 1000; KiB...: of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(limit))
    if match is None or match.group(2).upper() not in _UNITS:
        raise PipelineError(
            f"memory_limit must be a size like 512MB or 4GiB, found {limit!r}",
            where="configs/etl: memory_limit",
            fix="write a number and one of the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
