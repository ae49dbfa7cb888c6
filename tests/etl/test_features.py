"""serving.features: the cleaning and feature rules the ETL, the models and the server share."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import features
from serving.features import FeatureSpec
from serving.schemas import DATETIME_PARTS

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
maybe_texts = st.lists(st.one_of(st.none(), texts), min_size=0, max_size=25)
SPEC = FeatureSpec(
    numeric=["amount", "member"],
    boolean=["member"],
    bounds={"amount": (0.0, None)},
    categorical=["channel"],
    datetime=["created_at"],
    datetime_formats={"created_at": "%d-%m-%Y %H.%M"},
    timezone="Europe/Paris",
    text="message",
)


def test_category_spelling() -> None:
    assert features.normalise_category("  Web   Form ") == "web form"
    assert features.normalise_category("STRASSE") == features.normalise_category("straße")
    assert features.normalise_category("   ") is None
    assert features.normalise_category(None) is None
    assert features.normalise_category(float("nan")) is None
    assert features.normalise_category(767) == "767"
    assert features.normalise_categories(["A", None, " a", "B "]).tolist() == ["a", None, "a", "b"]


def test_bounds_null_impossible_values() -> None:
    x = np.array([-1.0, 0.0, 50.0, 121.0, np.inf, np.nan])
    out = features.apply_bounds(x, 0.0, 120.0)
    assert np.isnan(out[[0, 3, 4, 5]]).all() and out[1] == 0.0 and out[2] == 50.0
    assert np.isnan(x[5]) and x[0] == -1.0  # input untouched


def test_numbers_from_json_values() -> None:
    assert features.to_number(True) == 1.0 and features.to_number(False) == 0.0
    assert math.isnan(features.to_number(None))
    assert features.to_number("Yes", boolean=True) == 1.0
    with pytest.raises(ValueError, match="expected a number"):
        features.to_number("abc")
    with pytest.raises(ValueError, match="expected a number or boolean"):
        features.to_number([1], boolean=True)


def test_datetimes_in_iso_a_declared_format_and_a_zone() -> None:
    parse = features.parse_datetime
    assert parse("2024-03-01T10:00:00Z") == np.datetime64("2024-03-01T10:00:00")
    assert parse("2024-03-01T12:00:00+02:00") == np.datetime64("2024-03-01T10:00")
    assert parse("2024-03-01") == np.datetime64("2024-03-01T00:00")
    assert parse("24-02-2015 11.35", "%d-%m-%Y %H.%M") == np.datetime64("2015-02-24T11:35")
    # Naive values are in the zone already; aware ones are converted to it.
    assert parse("24-02-2015 11.35", "%d-%m-%Y %H.%M", "Europe/Paris") == np.datetime64(
        "2015-02-24T11:35"
    )
    assert parse("2015-07-01T12:00:00Z", tz="Europe/Paris") == np.datetime64("2015-07-01T14:00")
    for bad in ("yesterday", None, "", "0001-01-01T00:00:00+01:00"):
        assert np.isnat(parse(bad))
    assert np.isnat(parse("24-02-2015 11.35"))  # not ISO, and no format declared


def test_a_format_is_suggested_for_common_spellings() -> None:
    assert features.suggest_format(["24-02-2015 11.35", "01-03-2015 09.05"]) == "%d-%m-%Y %H.%M"
    assert features.suggest_format(["24/02/2015"]) == "%d/%m/%Y"
    assert features.suggest_format(["next tuesday"]) is None


def test_datetime_parts_match_the_calendar() -> None:
    moments = [datetime(1969, 12, 31, 23, 59), datetime(2024, 2, 29, 7, 5), datetime(2023, 1, 1)]
    parts = features.datetime_parts(np.array(moments, dtype="datetime64[us]"), DATETIME_PARTS)
    for i, m in enumerate(moments):
        assert parts["year"][i] == m.year and parts["month"][i] == m.month
        assert parts["day"][i] == m.day and parts["dayofweek"][i] == m.weekday()
        assert parts["hour"][i] == m.hour
    missing = features.datetime_parts(np.array(["NaT"], dtype="datetime64[us]"), ["year"])
    assert np.isnan(missing["year"][0])


def test_text_stats() -> None:
    stats = features.text_stats(["Refund NOW!! order 123", "", None, " héllo\twörld "])
    assert stats["chars"].tolist() == [22.0, 0.0, 0.0, 13.0]
    assert stats["words"].tolist() == [4.0, 0.0, 0.0, 2.0]
    assert stats["exclaims"].tolist() == [2.0, 0.0, 0.0, 0.0]
    assert stats["digits"].tolist() == [3.0, 0.0, 0.0, 0.0]


def test_spec_round_trips_and_names_derived_columns() -> None:
    assert FeatureSpec.model_validate_json(SPEC.model_dump_json()) == SPEC
    assert SPEC.derived[:2] == ["created_at__year", "created_at__month"]
    assert SPEC.derived[-4:] == [f"message__{s}" for s in ("chars", "words", "exclaims", "digits")]
    assert SPEC.raw_inputs == ["amount", "member", "channel", "created_at", "message"]


def test_prepare_records_from_raw_json() -> None:
    records: list[dict[str, Any]] = [
        {
            "amount": -5,
            "member": "yes",
            "channel": " EMAIL",
            "created_at": "02-01-2024 03.04",
            "message": "  Broken!  ",
        },
        {"amount": None, "member": None, "channel": None, "created_at": None, "message": None},
        {"created_at": "2024-01-02T03:04:05Z"},
    ]
    cols = features.prepare_records(records, SPEC)
    assert np.isnan(cols["amount"]).all() and cols["member"][0] == 1.0
    assert cols["channel"].tolist() == ["email", None, None]
    assert cols["message"].tolist() == ["Broken!", None, None]
    assert cols["created_at__hour"].tolist()[::2] == [3.0, 4.0]  # UTC 03:04 is 04:04 in Paris
    assert np.isnan(cols["created_at__hour"][1])
    assert cols["message__chars"].tolist() == [7.0, 0.0, 0.0]
    assert np.isnat(features.prepare_records([{"created_at": "  "}], SPEC)["created_at"][0])
    with pytest.raises(ValueError, match=re.escape("created_at: expected ISO 8601 or '%d-%m-%Y")):
        features.prepare_records([{"created_at": "soon"}], SPEC)
    with pytest.raises(ValueError, match="amount: expected a number"):
        features.prepare_records([{"amount": "lots"}], SPEC)


@settings(deadline=None, max_examples=60)
@given(maybe_texts, st.sampled_from([1, 3, 16, 1 << 20]))
def test_text_stats_in_blocks_match_the_plain_definitions(
    values: list[str | None], block: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "_BLOCK_BYTES", block)
        stats = features.text_stats(values)
    plain = ["" if v is None else v for v in values]
    assert stats["chars"].tolist() == [float(len(t)) for t in plain]
    assert stats["words"].tolist() == [
        float(len(re.findall(features.WORD_PATTERN, t))) for t in plain
    ]
    assert stats["exclaims"].tolist() == [float(t.count("!")) for t in plain]
    assert stats["digits"].tolist() == [float(len(re.findall("[0-9]", t))) for t in plain]
