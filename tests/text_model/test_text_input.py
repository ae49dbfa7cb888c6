"""The model input string: one builder for training and serving, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from pipeline.common.dataset import Profile
from pipeline.common.errors import PipelineError
from pipeline.text_model.data import read_split, text_input_spec
from serving.text_input import MISSING, build_text, build_texts, format_value, validate_spec

SPEC = {
    "text": "review",
    "fields": [{"name": "channel", "type": "category"}, {"name": "amount", "type": "number"}],
}


def test_fields_go_in_front_of_the_text() -> None:
    record = {"review": "Arrived broken", "channel": " email ", "amount": 12.5}
    assert build_text(record, SPEC) == "channel: email | amount: 12.5 | Arrived broken"


def test_text_only_spec_returns_the_text_unchanged() -> None:
    assert build_text({"review": "As is  "}, {"text": "review", "fields": []}) == "As is  "
    assert build_text({"review": None}, {"text": "review"}) == ""


@pytest.mark.parametrize("value", [1, 1.0, True, "1", "1.000"])
def test_equal_numbers_print_the_same_whatever_their_json_type(value: object) -> None:
    assert format_value(value, "number") == "1"


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "abc", "  "])
def test_missing_or_unusable_values_print_as_missing(value: object) -> None:
    kind = "category" if value == "  " else "number"
    assert format_value(value, kind) == MISSING


def test_batch_builder_matches_the_record_builder() -> None:
    columns = {"review": ["a", None, "c"], "channel": ["x", None, "z"], "amount": [1, None, 2.25]}
    records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    assert build_texts(columns, SPEC) == [build_text(r, SPEC) for r in records]
    assert build_texts(columns, SPEC)[1] == f"channel: {MISSING} | amount: {MISSING} | "


@pytest.mark.parametrize(
    "spec",
    [{"fields": []}, {"text": "review", "fields": [{"name": "x", "type": "date"}]}],
)
def test_malformed_specs_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        validate_spec(spec)


def test_training_texts_equal_what_serving_builds_from_raw_records(
    tmp_path: Path, make_processed: Callable[..., Profile]
) -> None:
    profile = make_processed(tmp_path, rows=(50, 10, 10))
    spec = text_input_spec(profile, ["channel", "amount"])
    validate_spec(spec)
    split = read_split(tmp_path, "val", profile, spec)
    raw = pl.read_parquet(tmp_path / "val.parquet").to_dicts()  # what an API caller sends
    assert split.texts == [build_text(record, spec) for record in raw]
    assert split.texts[0].startswith(f"channel: {raw[0]['channel']} | amount: ")


def test_unknown_text_field_names_the_key_and_the_choices(
    tmp_path: Path, make_processed: Callable[..., Profile]
) -> None:
    profile = make_processed(tmp_path, rows=(20, 10, 10))
    with pytest.raises(PipelineError, match=r"text_fields.*'colour'.*amount"):
        text_input_spec(profile, ["colour"])
