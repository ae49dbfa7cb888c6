"""No train/serve skew: raw records sent as JSON give the same model inputs as the ETL wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline.common.dataset import load_profile, split_path
from pipeline.etl.core import EtlResult
from serving.features import FeatureSpec, prepare_records


def _json_records(raw: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: ISO-8601 strings (some with Z), true/false, null."""
    records = []
    for i, row in enumerate(raw.iter_rows(named=True)):
        when = row["created_at"]
        row["created_at"] = None if when is None else when.isoformat() + ("Z" if i % 2 else "")
        records.append(row)
    return json.loads(json.dumps(records))


def test_raw_json_records_reproduce_the_split_rows(
    demo_raw: Path, demo_etl: tuple[Path, EtlResult]
) -> None:
    processed, _ = demo_etl
    profile = load_profile(processed)
    spec = FeatureSpec.from_json(profile.extra["feature_spec"])
    split = pl.read_parquet(split_path("test", processed)).sort(profile.id)
    raw = (
        pl.read_parquet(demo_raw / "*.parquet")
        .unique(profile.id, keep="first")
        .filter(pl.col(profile.id).is_in(split[profile.id].implode()))
        .sort(profile.id)
    )
    assert raw.height == split.height == 297
    served = prepare_records(_json_records(raw), spec)
    for col in [*profile.numeric, *profile.derived]:
        expected = split[col].cast(pl.Float64).fill_null(np.nan).to_numpy()
        assert np.array_equal(served[col], expected, equal_nan=True), col
    for col in profile.categorical:
        assert served[col].tolist() == split[col].to_list(), col
    assert served["message"].tolist() == split["message"].to_list()
    when = split["created_at"].to_numpy().astype("datetime64[us]")
    assert np.array_equal(served["created_at"].view("i8"), when.view("i8"))
    assert set(served) == {*profile.raw_inputs, *profile.derived}
