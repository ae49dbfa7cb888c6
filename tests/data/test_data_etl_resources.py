"""The ETL's resource side: the memory budget, batch sizing, blocked text kernels, exact cuts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.common.errors import PipelineError
from pipeline.etl import rows
from pipeline.etl.contract import EtlConfig, memory_bytes
from pipeline.etl.core import run_etl
from pipeline.etl.split import assign, class_cuts, codes_by_position, stratified_cuts
from serving import features
from tests.data.data_helpers import assert_plain_text_stats, demo_contract, etl_config

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
maybe_texts = st.lists(st.one_of(st.none(), texts), min_size=0, max_size=25)


def test_memory_limit_reads_duckdb_units_and_fails_in_one_line() -> None:
    assert memory_bytes("512MB") == 512_000_000
    assert memory_bytes(" 1.5 GiB ") == int(1.5 * 2**30)
    assert EtlConfig(memory_limit="1GB", duckdb_share=0.25).duckdb_bytes == 250_000_000
    for bad in ({"memory_limit": "lots"}, {"memory_limit": "5 parsecs"}, {"duckdb_share": 1.0}):
        with pytest.raises(PipelineError) as info:
            EtlConfig(**bad)  # type: ignore[arg-type]
        message = str(info.value)
        assert "\n" not in message and " — fix: " in message
        assert next(iter(bad)) in message


@pytest.fixture(scope="module")
def wide_rows() -> tuple[duckdb.DuckDBPyConnection, str]:
    """20,000 rows of about 1 kB each in DuckDB."""
    con = duckdb.connect()
    table = pa.table({"i": np.arange(20_000), "text": ["x" * 1_000] * 20_000})
    con.register("wide", table)
    return con, "SELECT * FROM wide"


@pytest.mark.parametrize(
    ("limit", "configured", "expected"),
    [
        ("64GB", 200_000, 200_000),
        ("4GB", 200_000, None),
        ("400MB", 200_000, 10_000),
        ("400MB", 700, 700),
    ],
)
def test_batches_shrink_to_fit_the_memory_left_beside_duckdb(
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
    else:  # 4GB: 2.4 GB beside DuckDB's 40 %, less the interpreter, over 24 copies of ~1 kB rows
        assert 80_000 < n < 100_000
        in_flight = n * rows.IN_FLIGHT_COPIES * 1_000
        assert in_flight <= memory_bytes(limit) - cfg.duckdb_bytes - rows.INTERPRETER_BYTES


@settings(deadline=None, max_examples=60)
@given(maybe_texts, st.sampled_from([1, 3, 16, 1 << 20]))
def test_text_stats_in_blocks_match_the_plain_definitions(
    values: list[str | None], block: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "_BLOCK_BYTES", block)
        stats = features.text_stats(values)
    assert_plain_text_stats(stats, values)
    assert all(v.dtype == np.float64 for v in stats.values())


def test_dense_and_sparse_counts_agree_on_many_blocks() -> None:
    rng = np.random.default_rng(3)
    alphabet = np.array(list(" \t\nab1!é中"))
    values = ["".join(rng.choice(alphabet, rng.integers(0, 400))) for _ in range(6_000)]
    stats = features.text_stats(values)  # ~1.5 MB of text: several 1 MB blocks, dense words
    sample = rng.choice(len(values), 200, replace=False)
    for i in sample:
        t = values[i]
        assert stats["words"][i] == len(re.findall(features.WORD_PATTERN, t))
        assert stats["chars"][i] == len(t) and stats["exclaims"][i] == t.count("!")


def test_cuts_by_selection_equal_cuts_by_sorting_and_split_each_class_exactly() -> None:
    rng = np.random.default_rng(0)
    u = rng.random(10_001)
    for fractions in ((0.8, 0.1), (0.5, 0.25), (0.0001, 0.0001)):
        ordered = np.sort(u)
        k1, k2 = round(fractions[0] * len(u)), round(sum(fractions) * len(u))
        assert class_cuts(u, fractions) == (ordered[k1 - 1], ordered[k2 - 1])
    assert class_cuts(u[:3], (0.1, 0.05)) == (-1.0, -1.0)  # no train and no val rows
    classes = rng.integers(-1, 3, len(u)).astype(np.int8)  # -1: a rejected row
    cuts = stratified_cuts(u, classes, (0.8, 0.1), 4)  # class 3 has no rows
    codes = codes_by_position(u, classes, cuts, chunk=777)
    assert np.array_equal(codes, codes_by_position(u, classes, cuts))
    assert (codes[classes < 0] == -1).all()
    for cls in range(3):
        mine = codes[classes == cls]
        assert np.array_equal(mine, assign(u[classes == cls], *cuts[cls]))
        shares = np.bincount(mine, minlength=3) / len(mine)
        assert abs(shares[0] - 0.8) < 1e-3 and abs(shares[1] - 0.1) < 1e-3
    assert (cuts[3] == -1.0).all()


@pytest.mark.parametrize("failing", ["write", "transform"])
def test_a_failure_in_either_thread_stops_the_run_and_keeps_outputs(
    demo_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    calls = {"n": 0}

    def fail_on_second_batch(original: Callable[..., object]) -> Callable[..., object]:
        def wrapped(*args: object) -> object:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full")
            return original(*args)

        return wrapped

    if failing == "write":
        monkeypatch.setattr(rows.SplitWriter, "write", fail_on_second_batch(rows.SplitWriter.write))
    else:
        monkeypatch.setattr(rows, "transform", fail_on_second_batch(rows.transform))
    out = tmp_path / "processed"
    out.mkdir()
    (out / "keep.txt").write_text("previous", encoding="utf-8")
    with pytest.raises(OSError, match="disk full"):
        run_etl(
            demo_contract(str(demo_raw / "*.parquet")),
            etl_config(tmp_path),
            42,
            out,
            tmp_path / "m.json",
        )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert calls["n"] == 2  # no batch was written or cleaned after the failure
