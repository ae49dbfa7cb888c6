"""Properties: on any schema-valid table the ETL writes exactly what serving computes from the same
raw values, and its vectorised cleaning agrees with `serving.features` value by value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline.etl.core import run_etl
from pipeline.etl.staging import number_sql
from serving import features
from serving.schemas import SPLITS
from tests.etl.messy import config, etl_config

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
maybe_texts = st.lists(st.one_of(st.none(), texts), min_size=1, max_size=30)
quick = settings(deadline=None, max_examples=60)  # the machine is shared: no timing here
moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


@quick
@given(maybe_texts)
def test_polars_text_stripping_matches_serving(values: list[str | None]) -> None:
    polars = pl.Series(values, dtype=pl.String).str.strip_chars(features.ASCII_SPACE).to_list()
    assert polars == features.clean_text(values).tolist()


@quick
@given(st.one_of(st.none(), texts, st.integers(), st.booleans()))
def test_category_normalisation_is_idempotent(value: object) -> None:
    once = features.normalise_category(value)
    assert features.normalise_category(once) == once
    if once is not None:
        assert once == once.strip() and "  " not in once and once == once.casefold()


number_texts = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f" {x:.6e} "),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["yes", "No", "TRUE", "f", "Y", "n", "1", "0", "inf", "-inf"]),
)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@settings(quick, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(number_texts, min_size=1, max_size=20))
def test_duckdb_reads_numbers_and_boolean_words_as_serving_does(
    con: duckdb.DuckDBPyConnection, values: list[str]
) -> None:
    sql = f"SELECT {number_sql('v', 'VARCHAR')} FROM (SELECT unnest(?::VARCHAR[]) AS v)"
    got = [r[0] for r in con.execute(sql, [values]).fetchall()]
    assert got == [features.to_number(v, boolean=True) for v in values]


@quick
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30),
    st.one_of(st.none(), st.floats(-1e6, 0)),
    st.one_of(st.none(), st.floats(0, 1e6)),
)
def test_bounds_leave_only_finite_values_inside(
    x: list[float], lo: float | None, hi: float | None
) -> None:
    out = features.apply_bounds(np.array(x, dtype=float), lo, hi)
    kept = out[~np.isnan(out)]
    assert out.shape == (len(x),) and np.isfinite(kept).all()
    assert (lo is None or (kept >= lo).all()) and (hi is None or (kept <= hi).all())


rows = st.fixed_dictionaries(
    {
        "amount": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "flag": st.one_of(st.none(), st.booleans()),
        "kind": st.one_of(st.none(), st.sampled_from(["A", " a", "b  B", "", "C", "Straße"])),
        "at": st.one_of(st.none(), st.builds(lambda m, z: m.replace(tzinfo=z), moments, zones)),
        "note": st.one_of(st.none(), texts),
    }
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking would take minutes here
)
@given(st.lists(rows, min_size=40, max_size=80), st.sampled_from(["stratified", "hash"]))
def test_etl_writes_what_serving_computes_from_the_raw_values(
    tmp_path_factory: pytest.TempPathFactory, table: list[dict[str, object]], method: str
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    schema = {
        "amount": pl.Float64,
        "flag": pl.Boolean,
        "kind": pl.String,
        "at": pl.Datetime("us", "UTC"),
        "note": pl.String,
    }
    frame = pl.DataFrame(table, schema=schema).with_columns(
        y=pl.Series([i % 2 for i in range(len(table))]),
        seq=pl.Series(range(len(table)), dtype=pl.Float64),  # rows differ: few duplicates
    )
    frame.write_parquet(tmp / "in.parquet")
    data = config(
        path=str(tmp / "in.parquet"),
        target="y",
        numeric=["seq", "amount", "flag"],
        categorical=["kind"],
        datetime=["at"],
        text="note",
        bounds={"amount": [0, None]},
        timezone="America/New_York",
        split={"method": method, "train": 0.6, "val": 0.2, "test": 0.2},
    )
    profile = run_etl(data, etl_config(tmp, batch_rows=17), 1, tmp / "out", tmp / "m.json")
    written = pl.concat(pl.read_parquet(tmp / "out" / f"{s}.parquet") for s in SPLITS)
    assert written.height + profile.rows["rejected"] == len(table)
    raw = [table[i - 1] | {"seq": i - 1} for i in written["row_id"]]
    for record in raw:  # as a JSON client sends them: ISO 8601 with the offset
        at = record["at"]
        record["at"] = None if at is None else at.isoformat()  # type: ignore[attr-defined]
    served = features.prepare_records(raw, profile.features)
    for col in ("seq", "amount", "flag"):
        assert np.array_equal(
            written[col].fill_null(np.nan).to_numpy(), served[col], equal_nan=True
        ), col
    assert written["kind"].to_list() == served["kind"].tolist()
    assert written["note"].to_list() == served["note"].tolist()
    at = written["at"].to_numpy().astype("datetime64[us]")
    assert np.array_equal(at, served["at"], equal_nan=True)
