"""The ETL end to end on small data: splits, profile, cleaning rules and split methods."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline.common.dataset import LABEL, SPLITS, load_profile, split_path
from pipeline.etl.core import EtlResult, run_etl
from pipeline.generate.core import CHANNELS, REGIONS, GenerateConfig, generate
from serving.features import FeatureSpec
from tests.data.data_helpers import contract, demo_contract, digests, etl_config


def _splits(processed: Path) -> dict[str, pl.DataFrame]:
    return {s: pl.read_parquet(split_path(s, processed)) for s in SPLITS}


def test_demo_profile_and_splits(demo_etl: tuple[Path, EtlResult]) -> None:
    processed, result = demo_etl
    profile = load_profile(processed)
    assert profile == result.profile
    assert (profile.task, profile.labels, profile.id, profile.text) == (
        "binary",
        ["0", "1"],
        "ticket_id",
        "message",
    )
    assert profile.rows == {"train": 2376, "val": 297, "test": 297, "rejected": 30}
    assert result.metrics["duplicates"] == 30 and result.metrics["rows_in"] == 3000
    spec = FeatureSpec.from_json(profile.extra["feature_spec"])
    assert spec.derived == profile.derived and spec.boolean == ["is_member"]
    splits = _splits(processed)
    overall = sum(df[LABEL].sum() for df in splits.values()) / 2970
    for name, df in splits.items():
        assert df.columns == [profile.id, *profile.raw_inputs, *profile.derived, LABEL]
        assert df[profile.id].is_sorted() and df[LABEL].dtype == pl.Int64
        assert abs(df[LABEL].mean() - overall) < 1 / 290, name  # type: ignore[operator]
        assert profile.label_distribution[name]["1"] == df[LABEL].sum()
    ids = pl.concat([df[profile.id] for df in splits.values()])
    assert ids.n_unique() == ids.len() == 2970


def test_cleaning_rules_applied(demo_etl: tuple[Path, EtlResult]) -> None:
    processed, _ = demo_etl
    df = pl.concat(_splits(processed).values())
    assert set(df["channel"].drop_nulls().unique()) == set(CHANNELS)
    assert set(df["region"].drop_nulls().unique()) == set(REGIONS)
    assert df["amount"].drop_nulls().min() >= 0  # type: ignore[operator]
    age = df["customer_age"].drop_nulls()
    assert age.min() >= 0 and age.max() <= 120  # type: ignore[operator]
    assert set(df["is_member"].drop_nulls().unique()) == {0.0, 1.0}
    numeric = df.select(pl.col(pl.Float64))
    assert not numeric.select(pl.any_horizontal(pl.all().is_nan().any())).item()
    assert df["created_at"].dtype == pl.Datetime("us")
    rejected = pl.read_parquet(processed / "rejected.parquet")
    assert rejected.height == 30 and set(rejected["reason"]) == {"duplicate row"}
    levels = load_profile(processed).columns["product_sku"]
    assert levels["n_levels"] > 200 and levels["levels"][0].startswith("sku-")


def test_rerun_is_byte_identical(demo_raw: Path, tmp_path: Path) -> None:
    c = demo_contract(str(demo_raw / "*.parquet"))
    for name, batch_rows in (("a", 700), ("b", 700), ("c", 5_000)):
        run_etl(
            c,
            etl_config(tmp_path, batch_rows=batch_rows, threads=2),
            42,
            tmp_path / name,
            tmp_path / "m.json",
        )
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    a, c_ = _splits(tmp_path / "a"), _splits(tmp_path / "c")
    assert all(a[s].equals(c_[s]) for s in SPLITS)  # batch size changes files, not rows


def test_hash_split_keeps_rows_in_place_when_data_is_appended(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "key": [f"k{i}" for i in range(2_000)],
            "x": rng.normal(size=2_000),
            "y": rng.integers(0, 2, 2_000),
        }
    )
    frame.head(1_200).write_parquet(tmp_path / "old.parquet")
    frame.write_parquet(tmp_path / "new.parquet")
    assigned = {}
    for name in ("old", "new"):
        c = contract(
            path=str(tmp_path / f"{name}.parquet"),
            target="y",
            id="key",
            numeric=["x"],
            split={"method": "hash"},
        )
        run_etl(c, etl_config(tmp_path), 7, tmp_path / name, tmp_path / "m.json")
        assigned[name] = {
            k: s for s, df in _splits(tmp_path / name).items() for k in df["key"].to_list()
        }
    assert all(assigned["new"][k] == s for k, s in assigned["old"].items())
    shares = [sum(v == s for v in assigned["new"].values()) / 2_000 for s in SPLITS]
    assert abs(shares[0] - 0.8) < 0.04 and abs(shares[1] - 0.1) < 0.03


def test_time_split_puts_later_rows_later(demo_raw: Path, tmp_path: Path) -> None:
    c = demo_contract(
        str(demo_raw / "*.parquet"), split={"method": "time", "time_column": "created_at"}
    )
    result = run_etl(c, etl_config(tmp_path), 42, tmp_path / "p", tmp_path / "m.json")
    s = _splits(tmp_path / "p")
    assert s["train"]["created_at"].max() <= s["val"]["created_at"].min()  # type: ignore[operator]
    assert s["val"]["created_at"].max() <= s["test"]["created_at"].min()  # type: ignore[operator]
    assert result.profile.extra["rejected_reasons"]["created_at is null (the time split needs it)"]


def test_csv_without_id_or_text(tmp_path: Path) -> None:
    csv = tmp_path / "plain.csv"
    lines = ["when,flag,size,colour,outcome"]
    for i in range(60):
        when = ["2024-05-01T10:00:00Z", "2024-05-01T12:30:00+02:00", "2024-05-02", ""][i % 4]
        lines.append(f'{when},{["yes", "no", ""][i % 3]},{i},"  Dark  Blue",{["ok", "bad"][i % 2]}')
    lines.append("not a date,yes,1,red,ok")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = contract(
        path=str(csv),
        target="outcome",
        numeric=["flag", "size"],
        categorical=["colour"],
        datetime=["when"],
        positive="bad",
        split={"train": 0.5, "val": 0.25, "test": 0.25},
    )
    result = run_etl(c, etl_config(tmp_path), 1, tmp_path / "p", tmp_path / "m.json")
    p = result.profile
    assert (p.id, p.text, p.labels, p.task) == ("row_id", None, ["ok", "bad"], "binary")
    assert p.derived == [f"when__{x}" for x in ("year", "month", "day", "dayofweek", "hour")]
    assert p.extra["feature_spec"]["boolean"] == ["flag"]
    assert p.extra["rejected_reasons"] == {"when: 'not a date' is not an ISO-8601 datetime": 1}
    df = pl.concat(_splits(tmp_path / "p").values()).sort("row_id")
    assert df["row_id"].to_list()[:3] == [1, 2, 3]
    assert df["when__hour"].to_list()[:3] == [10.0, 10.0, 0.0]  # +02:00 becomes UTC
    assert df["when__hour"][3] is None and set(df["colour"]) == {"dark blue"}
    assert df["flag"].to_list()[:3] == [1.0, 0.0, None]


def test_multiclass_demo(tmp_path: Path) -> None:
    generate(
        GenerateConfig(rows=1_500, task="multiclass", n_products=50, workers=1), 3, tmp_path / "raw"
    )
    result = run_etl(
        demo_contract(str(tmp_path / "raw" / "*.parquet")),
        etl_config(tmp_path),
        3,
        tmp_path / "p",
        tmp_path / "m.json",
    )
    assert result.profile.task == "multiclass" and result.profile.labels == ["0", "1", "2"]
    assert all(len(d) == 3 for d in result.profile.label_distribution.values())


def test_http_url_source(tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    rows = "\n".join(f"{i},{i % 2},note {i}" for i in range(40))
    (served / "data.csv").write_text("x,y,t\n" + rows + "\n", encoding="utf-8")
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.csv"
        c = contract(path=url, target="y", numeric=["x"], text="t")
        result = run_etl(c, etl_config(tmp_path), 1, tmp_path / "p", tmp_path / "m.json")
    finally:
        server.shutdown()
    assert sum(result.profile.rows.values()) == 40
    assert json.loads((tmp_path / "m.json").read_text())["rows_in"] == 40


def test_contract_validation_is_one_line() -> None:
    from pipeline.common.errors import PipelineError

    with pytest.raises(PipelineError, match="listed as both categorical and numeric"):
        contract(path="x.csv", target="y", numeric=["a"], categorical=["a"])
    with pytest.raises(PipelineError, match="fractions must be positive and sum to 1"):
        contract(path="x.csv", target="y", split={"train": 0.9, "val": 0.2, "test": 0.1})
    with pytest.raises(PipelineError, match="time_column None is not a `datetime` column"):
        contract(path="x.csv", target="y", split={"method": "time"})
