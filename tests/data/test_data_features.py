"""serving.features: the normalisation and feature rules the ETL and the server share."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from serving import features
from serving.features import FeatureSpec


def test_category_spelling() -> None:
    assert features.normalise_category("  Web   Form ") == "web form"
    assert features.normalise_category("STRASSE") == features.normalise_category("straße")
    assert features.normalise_category("   ") is None
    assert features.normalise_category(None) is None
    assert features.normalise_category(float("nan")) is None
    assert features.normalise_category(767) == "767"
    out = features.normalise_categories(["A", None, " a", "B "])
    assert out.tolist() == ["a", None, "a", "b"]


def test_bounds_null_impossible_values() -> None:
    x = np.array([-1.0, 0.0, 50.0, 121.0, np.inf, np.nan])
    out = features.apply_bounds(x, 0.0, 120.0)
    assert np.isnan(out[[0, 3, 4, 5]]).all() and out[1] == 0.0 and out[2] == 50.0
    assert np.isnan(x[5]) and x[0] == -1.0  # input untouched


def test_numbers_from_json_values() -> None:
    assert features.to_number(True) == 1.0 and features.to_number(False) == 0.0
    assert math.isnan(features.to_number(None))
    assert features.to_number("yes", boolean=True) == 1.0
    with pytest.raises(ValueError, match="expected a number"):
        features.to_number("abc")
    with pytest.raises(ValueError, match="expected a number or boolean"):
        features.to_number([1], boolean=True)


def test_datetimes_are_parsed_to_naive_utc() -> None:
    assert features.parse_datetime("2024-03-01T10:00:00Z") == np.datetime64("2024-03-01T10:00:00")
    assert features.parse_datetime("2024-03-01T12:00:00+02:00") == np.datetime64("2024-03-01T10:00")
    assert features.parse_datetime("2024-03-01") == np.datetime64("2024-03-01T00:00")
    assert np.isnat(features.parse_datetime("yesterday"))
    assert np.isnat(features.parse_datetime(None))


def test_datetime_parts_match_the_calendar() -> None:
    moments = [datetime(1969, 12, 31, 23, 59), datetime(2024, 2, 29, 7, 5), datetime(2023, 1, 1)]
    parts = features.datetime_parts(np.array(moments, dtype="datetime64[us]"))
    for i, m in enumerate(moments):
        assert parts["year"][i] == m.year and parts["month"][i] == m.month
        assert parts["day"][i] == m.day and parts["dayofweek"][i] == m.weekday()
        assert parts["hour"][i] == m.hour
    missing = features.datetime_parts(np.array(["NaT"], dtype="datetime64[us]"))
    assert all(np.isnan(v[0]) for v in missing.values())


def test_text_stats() -> None:
    stats = features.text_stats(["Refund NOW!! order 123", "", None, " héllo\twörld "])
    assert stats["chars"].tolist() == [22.0, 0.0, 0.0, 13.0]
    assert stats["words"].tolist() == [4.0, 0.0, 0.0, 2.0]
    assert stats["exclaims"].tolist() == [2.0, 0.0, 0.0, 0.0]
    assert stats["digits"].tolist() == [3.0, 0.0, 0.0, 0.0]


def test_spec_round_trips_through_json_and_names_derived_columns() -> None:
    spec = FeatureSpec(
        numeric=["amount", "member"],
        boolean=["member"],
        bounds={"amount": [0.0, None]},
        categorical=["channel"],
        datetime=["created_at"],
        text="message",
    )
    again = FeatureSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec
    assert spec.derived[:2] == ["created_at__year", "created_at__month"]
    assert spec.derived[-4:] == [
        "message__chars",
        "message__words",
        "message__exclaims",
        "message__digits",
    ]
    with pytest.raises(ValueError, match="unknown derived features"):
        FeatureSpec(text_stats=["sentiment"])


def test_prepare_records_from_raw_json() -> None:
    spec = FeatureSpec(
        numeric=["amount", "member"],
        boolean=["member"],
        bounds={"amount": [0.0, None]},
        categorical=["channel"],
        datetime=["created_at"],
        text="message",
    )
    records: list[dict[str, Any]] = [
        {
            "amount": -5,
            "member": True,
            "channel": " EMAIL",
            "created_at": "2024-01-02T03:04:05Z",
            "message": "  Broken!  ",
        },
        {"amount": None, "member": None, "channel": None, "created_at": None, "message": None},
        {},
    ]
    cols = features.prepare_records(records, spec)
    assert np.isnan(cols["amount"]).all() and cols["member"][0] == 1.0
    assert cols["channel"].tolist() == ["email", None, None]
    assert cols["message"].tolist() == ["Broken!", None, None]
    assert cols["created_at__hour"][0] == 3.0 and np.isnan(cols["created_at__hour"][1])
    assert cols["message__chars"].tolist() == [7.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="created_at: expected an ISO-8601 datetime"):
        features.prepare_records([{"created_at": "soon"}], spec)
    with pytest.raises(ValueError, match="amount: expected a number"):
        features.prepare_records([{"amount": "lots"}], spec)
