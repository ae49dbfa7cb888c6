"""Property tests: cleaning and feature functions on arbitrary schema-valid input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.common.dataset import LABEL, SPLITS, load_profile, split_path
from pipeline.etl.core import run_etl
from pipeline.etl.derive import derive, utf8_buffers
from serving import features
from serving.features import FeatureSpec
from tests.data.data_helpers import assert_plain_text_stats, contract, etl_config

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
maybe_texts = st.lists(st.one_of(st.none(), texts), min_size=1, max_size=30)
# Deadlines off: the machine is shared, and timing is not what these tests are about.
quick = settings(deadline=None, max_examples=60)
moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))


@quick
@given(maybe_texts, st.integers(0, 5))
def test_text_stats_kernel_matches_the_plain_definitions(
    values: list[str | None], cut: int
) -> None:
    stats = features.text_stats(values)
    assert_plain_text_stats(stats, values)
    # The ETL path: Arrow buffers of a sliced array give the same numbers.
    sliced = pa.array(["pad"] * cut + values, pa.string()).slice(cut)
    data, offsets, missing = utf8_buffers(sliced)
    etl = features.text_stats_utf8(data, offsets, features.TEXT_STATS, missing)
    assert all(np.array_equal(etl[k], stats[k]) for k in stats)


@quick
@given(maybe_texts)
def test_polars_text_cleaning_matches_serving(values: list[str | None]) -> None:
    polars = pl.Series(values, dtype=pl.String).str.strip_chars(features.ASCII_SPACE).to_list()
    assert polars == features.clean_text(values).tolist()


@quick
@given(st.lists(st.one_of(st.none(), moments), min_size=1, max_size=20))
def test_datetime_parts_match_python(values: list[datetime | None]) -> None:
    arr = np.array([np.datetime64("NaT") if v is None else v for v in values], "datetime64[us]")
    parts = features.datetime_parts(arr)
    frame = derive(
        pl.DataFrame({"t": pl.Series(values, dtype=pl.Datetime("us"))}), FeatureSpec(datetime=["t"])
    )
    for i, v in enumerate(values):
        got = {p: parts[p][i] for p in features.DATETIME_PARTS}
        if v is None:
            assert all(np.isnan(x) for x in got.values())
            assert frame.row(i)[1:] == (None,) * 5  # nulls, never NaN, in the splits
        else:
            assert got == {
                "year": v.year,
                "month": v.month,
                "day": v.day,
                "dayofweek": v.weekday(),
                "hour": v.hour,
            }
            assert frame.row(i)[1:] == tuple(float(x) for x in got.values())


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
    assert out.shape == (len(x),) and out.dtype == np.float64
    kept = out[~np.isnan(out)]
    assert np.isfinite(kept).all()
    assert (lo is None or (kept >= lo).all()) and (hi is None or (kept <= hi).all())


@quick
@given(st.one_of(st.none(), texts, st.integers(), st.booleans()))
def test_category_normalisation_is_idempotent(value: object) -> None:
    once = features.normalise_category(value)
    assert features.normalise_category(once) == once
    if once is not None:
        assert once == once.strip() and "  " not in once and once == once.casefold()


json_records = st.fixed_dictionaries(
    {
        "amount": st.one_of(
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(10**9), 10**9),
        ),
        "member": st.one_of(st.none(), st.booleans()),
        "channel": st.one_of(st.none(), texts),
        "created_at": st.one_of(
            st.none(),
            moments.map(lambda d: d.isoformat()),
            moments.map(lambda d: d.replace(tzinfo=timezone(timedelta(hours=2))).isoformat()),
        ),
        "message": st.one_of(st.none(), texts),
    }
)
SPEC = FeatureSpec(
    numeric=["amount", "member"],
    boolean=["member"],
    bounds={"amount": [0.0, 1e6]},
    categorical=["channel"],
    datetime=["created_at"],
    text="message",
)


@quick
@given(st.lists(json_records, min_size=1, max_size=20))
def test_prepare_records_accepts_any_schema_valid_json(records: list[dict[str, object]]) -> None:
    cols = features.prepare_records(records, SPEC)
    n = len(records)
    assert all(len(v) == n for v in cols.values())
    assert set(cols) == {*SPEC.numeric, *SPEC.categorical, *SPEC.datetime, "message", *SPEC.derived}
    for name in (*SPEC.numeric, *SPEC.derived):
        assert cols[name].dtype == np.float64 and not np.isinf(cols[name]).any()
    for name in SPEC.derived[-4:]:
        assert not np.isnan(cols[name]).any()  # text statistics are never missing
    assert cols["created_at"].dtype == np.dtype("datetime64[us]")


rows = st.fixed_dictionaries(
    {
        "amount": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "flag": st.one_of(st.none(), st.booleans()),
        "kind": st.one_of(st.none(), st.sampled_from(["A", " a", "b  B", "", "C"])),
        "at": st.one_of(st.none(), moments),
        "note": st.one_of(st.none(), texts),
    }
)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(rows, min_size=40, max_size=80), st.sampled_from(["stratified", "hash", "time"]))
def test_etl_on_any_schema_valid_table(
    tmp_path_factory: pytest.TempPathFactory, table: list[dict[str, object]], method: str
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    frame = pl.DataFrame(
        table,
        schema={
            "amount": pl.Float64,
            "flag": pl.Boolean,
            "kind": pl.String,
            "at": pl.Datetime("us"),
            "note": pl.String,
        },
    )
    frame = frame.with_columns(
        y=pl.Series([i % 2 for i in range(frame.height)]),
        seq=pl.Series(range(frame.height), dtype=pl.Float64),
        at=pl.col("at").fill_null(datetime(2020, 1, 1)),
    )
    frame.write_parquet(tmp / "in.parquet")
    c = contract(
        path=str(tmp / "in.parquet"),
        target="y",
        numeric=["seq", "amount", "flag"],
        categorical=["kind"],
        datetime=["at"],
        text="note",
        bounds={"amount": [0, None]},
        split={
            "method": method,
            "time_column": "at" if method == "time" else None,
            "train": 0.6,
            "val": 0.2,
            "test": 0.2,
        },
    )
    result = run_etl(c, etl_config(tmp, batch_rows=17), 1, tmp / "out", tmp / "m.json")
    profile = load_profile(tmp / "out")
    assert sum(profile.rows.values()) == frame.height == result.metrics["rows_in"]
    for split in SPLITS:
        part = pl.read_parquet(split_path(split, tmp / "out"))
        assert part.columns == [
            "row_id",
            "seq",
            "amount",
            "flag",
            "kind",
            "at",
            "note",
            *profile.derived,
            LABEL,
        ]
        numeric = part.select(*profile.model_numeric)
        assert all(t == pl.Float64 for t in numeric.dtypes)
        assert not numeric.select(pl.all().is_nan().any() | pl.all().is_infinite().any()).row(0)[0]
        assert part["kind"].drop_nulls().is_in(["a", "b b", "c"]).all()
