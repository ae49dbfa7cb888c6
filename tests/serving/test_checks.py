"""Row checks on raw columns, and the small-batch paths of the feature code."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import features
from serving.schemas import DATETIME_PARTS
from serving.scoring import FLOAT32_MAX, check_columns
from tests.serving.fixtures import FEATURES, input_schema

GOOD = {
    "amount": 12.5,
    "channel": "email",
    "is_member": True,
    "created_at": "2024-05-01T13:45:00",
    "review": "fine",
}


def _check(rows: list[dict[str, object]]) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
    raw = {f.name: [r[f.name] for r in rows] for f in input_schema()}
    typed, rejected = check_columns(raw, input_schema(), FEATURES, 1000)
    return typed, [(r.row, r.field) for r in rejected]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"amount": "abc"}, "amount", "expected a number"),
        ({"amount": 1e300}, "amount", "float32"),
        ({"amount": float("inf")}, "amount", "float32"),
        ({"is_member": 0.5}, "is_member", "true/false"),
        ({"is_member": None}, "is_member", "may not be null"),
        ({"channel": 3}, "channel", "expected a string"),
        ({"review": "x" * 5001}, "review", "the limit is 5000"),
        # Valid ISO 8601, but before year 1 once converted to the spec's time zone.
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "created_at", "in range"),
        ({"created_at": "9999-12-31T23:59:59-01:00"}, "created_at", "in range"),
        ({"created_at": "yesterday"}, "created_at", "'%d-%m-%Y %H.%M'"),
    ],
)
def test_a_value_the_features_cannot_use_rejects_only_its_row(
    change: dict[str, object], field: str, reason: str
) -> None:
    rows = [GOOD, {**GOOD, **change}, GOOD]
    raw = {f.name: [r[f.name] for r in rows] for f in input_schema()}
    typed, rejected = check_columns(raw, input_schema(), FEATURES, 1000)
    assert [(r.row, r.field) for r in rejected] == [(1, field)]
    assert reason in rejected[0].message
    assert len(typed["amount"]) == 3


def test_file_spellings_are_read_like_the_etl_reads_them() -> None:
    rows = [
        {**GOOD, "amount": " 12.5 ", "is_member": "yes", "created_at": "01-05-2024 13.45"},
        {**GOOD, "amount": None, "is_member": "0", "created_at": "", "channel": None},
        {**GOOD, "amount": float("nan"), "is_member": 1, "created_at": None, "review": None},
    ]
    typed, rejected = _check(rows)
    assert rejected == []
    np.testing.assert_array_equal(typed["amount"], [12.5, np.nan, np.nan])
    np.testing.assert_array_equal(typed["is_member"], [1.0, 0.0, 1.0])
    # Naive values are in the spec's zone; "" and None are missing.
    assert typed["created_at"][0] == np.datetime64("2024-05-01T13:45:00", "us")
    assert np.isnat(typed["created_at"][1:]).all()


def test_typed_numpy_columns_pass_through() -> None:
    raw = {
        "amount": np.array([1.0, np.nan, FLOAT32_MAX]),
        "channel": np.array(["a", None, "b"], dtype=object),
        "is_member": np.array([True, False, True]),
        "created_at": np.array(["2024-01-01", "NaT", "2024-02-01"], dtype="datetime64[s]"),
        "review": ["", "x", None],
    }
    typed, rejected = check_columns(raw, input_schema(), FEATURES, 1000)
    assert rejected == []
    assert typed["created_at"].dtype == np.dtype("datetime64[us]")


texts = st.lists(
    st.one_of(st.none(), st.text(st.characters(exclude_categories=["Cs"]), max_size=40)),
    max_size=64,
)


@settings(max_examples=200, deadline=None)
@given(values=texts)
def test_text_stats_small_batch_path_equals_the_byte_level_pass(values: list[str | None]) -> None:
    small = features.text_stats(values)
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.int64)
    full = features.text_stats_utf8(np.frombuffer(b"".join(encoded), np.uint8), offsets)
    for stat, column in full.items():
        np.testing.assert_array_equal(small[stat], column, err_msg=stat)


# ASCII-heavy texts (punctuation, runs of spaces, NUL) with some Unicode mixed in: batches both
# sides of the small-batch threshold of the text statistics.
mixed_texts = st.lists(
    st.one_of(
        st.none(),
        st.text(st.sampled_from("aZ_09 .,!\t\n\x00-'"), max_size=30),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    ),
    max_size=120,
)


@settings(max_examples=100, deadline=None)
@given(values=mixed_texts)
def test_fold_texts_equals_fold_text_one_by_one(values: list[str | None]) -> None:
    assert features.fold_texts(values).tolist() == [features.fold_text(v) for v in values]


@settings(max_examples=100, deadline=None)
@given(values=mixed_texts)
def test_text_stats_of_a_large_batch_equal_the_small_batch_path(values: list[str | None]) -> None:
    large = features.text_stats(values)
    for start in range(0, len(values), features._FEW_TEXTS):
        small = features.text_stats(values[start : start + features._FEW_TEXTS])
        for stat, column in small.items():
            np.testing.assert_array_equal(column, large[stat][start : start + len(column)])


def test_normalise_categories_reads_equal_values_of_other_types_apart() -> None:
    values = [True, 1, 1.0, " A ", None, float("nan"), "a"]
    got = features.normalise_categories(values).tolist()
    assert got == ["true", "1", "1.0", "a", None, None, "a"]


@settings(max_examples=100, deadline=None)
@given(
    moments=st.lists(st.one_of(st.none(), st.datetimes(min_value=datetime(1, 1, 2))), max_size=64)
)
def test_datetime_parts_small_batch_path_equals_numpy(moments: list[datetime | None]) -> None:
    values = np.array(
        [np.datetime64("NaT", "us") if m is None else np.datetime64(m, "us") for m in moments],
        dtype="datetime64[us]",
    )
    small = features.datetime_parts(values, DATETIME_PARTS)
    # The numpy path, taken by a batch too large for the small path.
    large = features.datetime_parts(np.tile(values, features._FEW_ROWS + 1), DATETIME_PARTS)
    for part, column in small.items():
        np.testing.assert_array_equal(column, large[part][: len(values)], err_msg=part)


iso = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.isoformat(sep=" " if d.second % 2 else "T")
)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            iso,
            st.sampled_from(
                ["", "2024-02-30", "31-12-2024 23.59", "2024-05-01T13:45:00+02:00", "x"]
            ),
        ),
        min_size=65,
        max_size=120,
    )
)
def test_parse_datetimes_fast_path_equals_parse_datetime(values: list[str]) -> None:
    fmt = "%d-%m-%Y %H.%M"
    one_by_one = [features.parse_datetime(v, fmt, "Europe/Amsterdam") for v in values]
    np.testing.assert_array_equal(
        features.parse_datetimes(values, fmt, "Europe/Amsterdam"),
        np.array(one_by_one, dtype="datetime64[us]"),
    )
