"""The ETL end to end on messy data: splits, profile, cleaning, tasks and split methods."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from pipeline.common.data import LABEL, PROFILE_FILE, Splits
from pipeline.etl.core import run_etl
from pipeline.generate.core import GenerateConfig, generate
from serving.features import prepare_records
from serving.schemas import SPLITS, Profile, read_file
from tests.etl.messy import config, data_config, etl_config, jobs, write_csv

COLUMNS = ["job_ref", "hours", "urgent", "region", "booked", "notes", LABEL]


def _splits(processed: Path) -> dict[str, pl.DataFrame]:
    return {s: pl.read_parquet(processed / f"{s}.parquet") for s in SPLITS}


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_profile_and_splits(jobs_etl: tuple[Path, Profile]) -> None:
    processed, profile = jobs_etl
    assert read_file(processed / PROFILE_FILE, Profile) == profile
    assert (profile.task, profile.labels, profile.positive) == (
        "binary",
        ["disputed", "paid"],
        "paid",
    )
    assert profile.rows == {"train": 240, "val": 30, "test": 29, "rejected": 3}
    why = "booked is not a datetime (ISO 8601 or '%d-%m-%Y %H.%M')"
    assert profile.rejected_reasons == {"duplicate row": 2, why: 1}
    assert profile.features.boolean == ["urgent"] and profile.features.timezone == "Europe/Zurich"
    splits = _splits(processed)
    for name, df in splits.items():
        assert df.columns == COLUMNS
        assert df["job_ref"].is_sorted() and df[LABEL].dtype == pl.Int64  # input order kept
        counts = df[LABEL].value_counts()
        assert profile.label_distribution[name] == {
            profile.labels[i]: n for i, n in counts.iter_rows()
        }
    # Stratified: each class splits 80/10/10, give or take a row.
    for label in profile.labels:
        n = {s: profile.label_distribution[s][label] for s in SPLITS}
        total = sum(n.values())
        assert abs(n["train"] - 0.8 * total) <= 1 and abs(n["val"] - 0.1 * total) <= 1, n
    region = profile.columns["region"]
    assert region.n_levels == 6 and region.level_counts is not None
    assert list(region.level_counts)[-2:] == ["reykjavík", "île-de-france"]  # rare, by name
    assert profile.columns["booked"].min == "2015-01-01T08:00:00"
    assert profile.columns["notes"].null_rate == pytest.approx(1 / 8, abs=0.01)  # blank cells


def test_values_are_cleaned_like_serving_cleans_them(jobs_etl: tuple[Path, Profile]) -> None:
    processed, _ = jobs_etl
    df = pl.concat(_splits(processed).values()).sort("job_ref")
    row = {r["job_ref"]: r for r in df.iter_rows(named=True)}
    assert [row[f"J-000{i}"]["hours"] for i in (10, 11, 12)] == [None, None, None]  # -1, 1e6, inf
    assert [row[f"J-0000{i}"]["urgent"] for i in range(1, 5)] == [0.0, 1.0, 0.0, 1.0]
    assert row["J-00000"]["urgent"] is None and row["J-00001"]["hours"] == 1.6
    assert set(df["region"]) == {
        "north",
        "south",
        "zürich",
        "são paulo",
        "île-de-france",
        "reykjavík",
    }
    assert row["J-00001"]["booked"] == datetime(2015, 2, 2, 9, 7)
    assert row["J-00005"]["booked"] == datetime(
        2015, 6, 6, 14, 35
    )  # 13:35+01:00 in Zurich summer time
    assert row["J-00007"]["booked"] is None  # blank
    assert row["J-00030"]["notes"] == "x" * 5_000 and row["J-00006"]["notes"] is None
    assert row["J-00005"]["notes"] == "line one\nline two, with a comma"
    rejected = pl.read_parquet(processed / "rejected.parquet")
    assert rejected.select("row", "value", "id").rows() == [
        (21, "soon", "J-00020"),
        (301, None, "J-00050"),
        (302, None, "J-00051"),
    ]


def _raw_records(ids: list[str]) -> list[dict[str, Any]]:
    """The CSV's rows as a JSON client sends them: blank cells as null."""
    by_id = {r["job_ref"]: r for r in jobs()}
    return [{k: (v if v != "" else None) for k, v in by_id[i].items()} for i in ids]


def test_model_stages_read_what_serving_computes_from_raw_values(
    jobs_etl: tuple[Path, Profile],
) -> None:
    processed, profile = jobs_etl
    splits = Splits.load(processed)
    test = splits.test
    assert len(test) == 29 and test.y.dtype == np.int64
    served = prepare_records(_raw_records([str(i) for i in test.ids]), profile.features)
    assert set(served) == set(test.columns)
    for name, values in served.items():
        if values.dtype == object:
            assert values.tolist() == test.columns[name].tolist(), name
        else:
            assert np.array_equal(values, test.columns[name], equal_nan=True), name
    assert "booked__hour" in served and "notes__folded" in served


def test_regression_target(
    jobs_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = data_config(jobs_csv, target="cost", drop=["outcome"], target_transform="log1p")
    with caplog.at_level(logging.INFO, logger="pipeline.etl"):
        profile = run_etl(data, etl_config(tmp_path), 7, tmp_path / "p", tmp_path / "m.json")
    assert "target 'cost' is numeric with 300 distinct values: task regression" in caplog.text
    assert (profile.task, profile.labels, profile.label_distribution) == ("regression", [], {})
    splits = _splits(tmp_path / "p")
    assert splits["train"][LABEL].dtype == pl.Float64
    everything = pl.concat(splits.values())[LABEL]
    for name, df in splits.items():
        stats = profile.target_stats[name]
        assert stats.count == df.height and stats.min == df[LABEL].min()
        assert list(stats.quantiles) == ["0.05", "0.25", "0.5", "0.75", "0.95"]
        assert list(stats.quantiles.values()) == sorted(stats.quantiles.values())
        # Stratified on quantile bins: every split spans the target's range.
        assert abs(stats.mean - everything.mean()) < 0.15 * everything.std()  # type: ignore[operator]
    loaded = Splits.load(tmp_path / "p")
    assert np.allclose(np.expm1(loaded.val.y), splits["val"][LABEL].to_numpy())


def test_explicit_task_wins(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i % 5 + 1},{i * 0.5}\n" for i in range(200))
    path = tmp_path / "stars.csv"
    path.write_text("id,stars,x\n" + rows, encoding="utf-8")
    keys = {"path": str(path), "target": "stars", "id": "id", "numeric": ["x"]}
    inferred = run_etl(config(**keys), etl_config(tmp_path), 1, tmp_path / "a", tmp_path / "m.json")
    assert (inferred.task, inferred.labels) == ("multiclass", ["1", "2", "3", "4", "5"])
    explicit = config(**keys, task="regression")
    assert (
        run_etl(explicit, etl_config(tmp_path), 1, tmp_path / "b", tmp_path / "m.json").task
        == "regression"
    )


def test_rerun_is_byte_identical_and_metrics_are_flat_counts(
    jobs_csv: Path, tmp_path: Path
) -> None:
    data = data_config(jobs_csv)
    for name, batch_rows in (("a", 100), ("b", 100), ("c", 37)):
        cfg = etl_config(tmp_path, batch_rows=batch_rows, threads=2)
        run_etl(data, cfg, 7, tmp_path / name, tmp_path / f"{name}.json")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "c.json").read_bytes()
    a, c = _splits(tmp_path / "a"), _splits(tmp_path / "c")
    assert all(a[s].equals(c[s]) for s in SPLITS)  # the batch size changes files, not rows
    metrics = json.loads((tmp_path / "a.json").read_text())
    assert metrics == {
        "rows_in": 302,
        "rows_train": 240,
        "rows_val": 30,
        "rows_test": 29,
        "rejected": 3,
        "duplicates": 2,
        "values_nulled": 3,
    }


def test_hash_split_keeps_rows_in_place_when_data_is_appended(tmp_path: Path) -> None:
    rows = jobs(600, seed=3)[:600]
    assigned = {}
    for name, n in (("old", 350), ("new", 600)):
        path = write_csv(tmp_path / f"{name}.csv", rows[:n])
        data = data_config(path, split={"method": "hash"})
        run_etl(data, etl_config(tmp_path), 7, tmp_path / name, tmp_path / "m.json")
        assigned[name] = {k: s for s, df in _splits(tmp_path / name).items() for k in df["job_ref"]}
    assert all(assigned["new"][k] == s for k, s in assigned["old"].items())
    shares = [sum(v == s for v in assigned["new"].values()) / len(assigned["new"]) for s in SPLITS]
    assert abs(shares[0] - 0.8) < 0.06 and abs(shares[1] - 0.1) < 0.04


def test_time_split_puts_later_rows_later(jobs_csv: Path, tmp_path: Path) -> None:
    data = data_config(jobs_csv, split={"method": "time", "time_column": "booked"})
    profile = run_etl(data, etl_config(tmp_path), 7, tmp_path / "p", tmp_path / "m.json")
    s = _splits(tmp_path / "p")
    assert s["train"]["booked"].max() <= s["val"]["booked"].min()  # type: ignore[operator]
    assert s["val"]["booked"].max() <= s["test"]["booked"].min()  # type: ignore[operator]
    assert profile.rejected_reasons["booked is null (the time split needs it)"] == 13


def test_demo_data(tmp_path: Path) -> None:
    generate(
        GenerateConfig(rows=2_000, part_rows=1_000, n_products=100, workers=1), 3, tmp_path / "raw"
    )
    data = config(
        path=str(tmp_path / "raw" / "*.parquet"),
        target="label",
        id="ticket_id",
        text="message",
        categorical=["channel", "region", "product_sku"],
        numeric=["amount", "customer_age", "tenure_days", "prior_tickets", "is_member"],
        datetime=["created_at"],
        bounds={"amount": [0, None], "customer_age": [0, 120]},
    )
    profile = run_etl(data, etl_config(tmp_path), 3, tmp_path / "p", tmp_path / "m.json")
    assert profile.format == "parquet" and profile.features.boolean == ["is_member"]
    assert profile.rows_in == 2_000 and 0 < profile.rejected_reasons["duplicate row"] < 60
    splits = Splits.load(tmp_path / "p")
    assert splits.train.columns["created_at"].dtype == np.dtype("datetime64[us]")
    assert np.nanmin(splits.train.columns["amount"]) >= 0
