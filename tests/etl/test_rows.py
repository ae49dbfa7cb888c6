"""The row pass: batches sized to the memory budget; a failure midway leaves the old outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.etl import rows
from pipeline.etl.config import EtlConfig, memory_bytes
from pipeline.etl.core import run_etl
from tests.etl.messy import data_config, etl_config


@pytest.fixture(scope="module")
def wide_rows() -> tuple[duckdb.DuckDBPyConnection, str]:
    """20,000 rows of about 1 kB each in DuckDB."""
    con = duckdb.connect()
    con.register("wide", pa.table({"i": np.arange(20_000), "text": ["x" * 1_000] * 20_000}))
    return con, "SELECT * FROM wide"


@pytest.mark.parametrize(
    ("limit", "configured", "expected"),
    [
        ("64GB", 200_000, 200_000),
        ("2GB", 200_000, None),
        ("300MB", 200_000, 1_000),
        ("2GB", 700, 700),
    ],
)
def test_batches_shrink_to_fit_the_memory_beside_duckdb(
    wide_rows: tuple[duckdb.DuckDBPyConnection, str],
    limit: str,
    configured: int,
    expected: int | None,
) -> None:
    con, sql = wide_rows
    cfg = EtlConfig(memory_limit=limit, batch_rows=configured)
    n = rows.batch_rows(con, sql, cfg)
    if expected is not None:
        assert n == expected
    else:  # 2GB: 1.2 GB beside DuckDB's 40 %, less the interpreter, over 9 copies of ~1 kB rows
        assert 90_000 < n < 120_000
        in_flight = n * rows.BATCH_COPIES * 1_000
        assert in_flight <= memory_bytes(limit) - cfg.duckdb_bytes - rows.INTERPRETER_BYTES


@pytest.mark.parametrize("where", ["cleaning", "writing"])
def test_a_failure_midway_stops_the_run_and_keeps_the_outputs(
    where: str, jobs_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the second batch: while cleaning it, or while writing it in the writer thread."""
    calls = {"n": 0}

    def second_call_fails() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")

    if where == "cleaning":
        clean: Callable[..., Any] = rows.clean

        def failing_clean(*args: Any) -> Any:
            second_call_fails()
            return clean(*args)

        monkeypatch.setattr(rows, "clean", failing_clean)
    else:

        class FailingWriter(pq.ParquetWriter):
            def write_table(self, table: pa.Table, *args: Any, **kwargs: Any) -> None:
                if str(self.where).endswith("train.parquet"):
                    second_call_fails()
                super().write_table(table, *args, **kwargs)

        monkeypatch.setattr(rows.pq, "ParquetWriter", FailingWriter)
    out = tmp_path / "processed"
    out.mkdir()
    (out / "keep.txt").write_text("previous", encoding="utf-8")
    with pytest.raises(OSError, match="disk full"):
        run_etl(data_config(jobs_csv), etl_config(tmp_path), 7, out, tmp_path / "m.json")
    assert [p.name for p in tmp_path.iterdir() if p.name != "spill"] == ["processed"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and calls["n"] == 2
    assert not (tmp_path / "spill" / "run").exists()
