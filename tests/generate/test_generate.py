"""The demo data: deterministic, typed, dirty in the documented ways, and only written when used."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from omegaconf import DictConfig, OmegaConf
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from pipeline.common.errors import PipelineError
from pipeline.generate import core
from pipeline.generate.core import GenerateConfig, demo_selected, generate, main, make_part
from pipeline.generate.text import phrases

PH = phrases()

SCHEMA = {
    "ticket_id": pl.Int64,
    "created_at": pl.Datetime("us"),
    "amount": pl.Float64,
    "customer_age": pl.Float64,
    "tenure_days": pl.Int64,
    "prior_tickets": pl.Int64,
    "channel": pl.String,
    "region": pl.String,
    "product_sku": pl.String,
    "is_member": pl.Boolean,
    "message": pl.String,
}


def _table(cfg: GenerateConfig, seed: int = 1) -> pl.DataFrame:
    frame = pl.from_arrow(make_part(cfg, seed, 0, cfg.rows, 1))
    assert isinstance(frame, pl.DataFrame)
    return frame


@pytest.fixture(scope="module")
def binary() -> pl.DataFrame:
    return _table(GenerateConfig(rows=20_000, n_products=2_000))


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    cfg = GenerateConfig(rows=1_000, part_rows=400, n_products=50, workers=2)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(cfg, seed, tmp_path / name)
    parts = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert parts == ["part-0000.parquet", "part-0001.parquet", "part-0002.parquet"]
    assert all(
        (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in parts
    )
    a, c = (pl.read_parquet(tmp_path / n / "*.parquet") for n in "ac")
    assert a.height == 1_000 and not a.equals(c)
    assert a["ticket_id"].n_unique() == 1_000 - (4 + 4 + 2)  # 1% exact duplicates per part


def test_columns_and_types() -> None:
    for task, label in (("binary", pl.Int64), ("multiclass", pl.Int64), ("regression", pl.Float64)):
        df = _table(GenerateConfig(rows=500, n_products=50, task=task))
        assert df.schema == pl.Schema({**SCHEMA, "label": label}), task
        assert df.height == 500


def test_dirty_in_the_documented_ways(binary: pl.DataFrame) -> None:
    df = binary
    assert abs(df["label"].mean() - 0.2) < 0.01  # type: ignore[operator]
    null_share = {c: df[c].null_count() / df.height for c in df.columns}
    assert 0.04 < null_share["amount"] < 0.06 and 0.06 < null_share["customer_age"] < 0.1
    assert 0.04 < null_share["message"] < 0.06 and 0.005 < null_share["created_at"] < 0.015
    assert null_share["channel"] > 0.02 and null_share["is_member"] > 0.03
    assert null_share["ticket_id"] == null_share["label"] == null_share["product_sku"] == 0
    assert 190 <= df.is_duplicated().sum() // 2 <= 200  # 1% double submissions
    assert 60 < (df["amount"] < 0).sum() < 140  # 0.5% impossible
    assert 60 < ((df["customer_age"] < 0) | (df["customer_age"] > 120)).sum() < 140
    assert 0.04 < (df["message"] == "").mean() < 0.06  # type: ignore[operator]
    spellings = df["channel"].drop_nulls().unique().to_list()
    assert {"email", "EMAIL", "  email", "Web Form", "web  form "} <= set(spellings)
    assert df["product_sku"].n_unique() > 1_000  # the high-cardinality column
    lengths = df["message"].drop_nulls().str.len_chars()
    written = lengths.filter(lengths > 0)
    assert written.min() < 60 and written.max() > 400  # type: ignore[operator]


def _words(value: object) -> set[str]:
    """Every word of the phrase lists, lower case, without punctuation."""
    if isinstance(value, str):
        return {w.strip(".,:-!?()#").lower() for w in value.replace("'", " ").split()}
    if isinstance(value, list | tuple):
        return set().union(*(_words(v) for v in value))
    return set()


def _misspelt(texts: list[str]) -> set[str]:
    known = _words(list(vars(PH).values()))
    return {w for w in _words(texts) - known if w.isalpha()}


def test_texts_look_like_tickets(binary: pl.DataFrame) -> None:
    texts = binary["message"].drop_nulls().filter(binary["message"].drop_nulls() != "")
    sample = texts.head(3_000).to_list()
    greeted = sum(t.lower().startswith(tuple(g.lower() for g in PH.greetings)) for t in sample)
    assert 0.4 < greeted / len(sample) < 0.6
    assert 0.25 < sum(any(c.isdigit() for c in t) for t in sample) / len(sample) < 0.35  # order no.
    assert 0.1 < sum(t == t.lower() for t in sample) / len(sample) < 0.25  # never pressed shift
    assert len(_misspelt(sample[:500])) > 20
    clean = _table(GenerateConfig(rows=500, n_products=50, typo_rate=0.0))["message"]
    assert _misspelt(clean.drop_nulls().to_list()) == set()


def test_task_variants() -> None:
    df = _table(GenerateConfig(rows=6_000, task="multiclass", n_classes=4))
    shares = df["label"].value_counts(normalize=True).sort("label")["proportion"].to_list()
    assert len(shares) == 4 and abs(shares[3] - 0.2) < 0.01 and min(shares[:3]) > 0.25
    cost = _table(GenerateConfig(rows=6_000, task="regression"))["label"].to_numpy()
    assert cost.min() > 0 and np.median(cost) < cost.mean()  # positive, right-skewed
    skew = lambda v: float(((v - v.mean()) ** 3).mean() / v.std() ** 3)  # noqa: E731
    assert skew(cost) > 1.5 and abs(skew(np.log1p(cost))) < 0.5  # log1p makes it symmetric


def test_bad_config_is_one_line() -> None:
    with pytest.raises(PipelineError, match="task must be one of binary, multiclass, regression"):
        GenerateConfig(task="ranking")
    with pytest.raises(PipelineError, match="n_classes must be >= 3"):
        GenerateConfig(task="multiclass", n_classes=2)


def _stage_cfg(path: str) -> DictConfig:
    """The slice of the composed configuration the stage reads."""
    cfg = OmegaConf.create({"seed": 1, "data": {"path": path}, "generate": {"rows": 300}})
    assert isinstance(cfg, DictConfig)
    return cfg


def test_demo_selected() -> None:
    assert demo_selected("data/raw/demo/*.parquet") and demo_selected("./data/raw/demo/x.csv")
    assert demo_selected(os.path.abspath("data/raw/demo/part-0000.parquet"))
    assert not demo_selected("data/raw/mine.csv")
    assert not demo_selected("data/raw/demo_old/*.parquet")
    assert not demo_selected("data/raw/demo/../mine.csv")
    assert not demo_selected("https://example.org/data/raw/demo/x.csv")


def test_writes_nothing_when_the_demo_is_not_selected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "data" / "raw" / "demo"
    summary = main(_stage_cfg("data/raw/tickets.csv"))
    assert "nothing generated" in summary and "data/raw/tickets.csv" in summary
    assert out.is_dir() and not any(out.iterdir())  # created empty: DVC expects the output
    (out / "old.parquet").write_bytes(b"earlier run")
    stamp = (out / "old.parquet").stat().st_mtime_ns
    main(_stage_cfg("s3://bucket/tickets.parquet"))
    assert [p.name for p in out.iterdir()] == ["old.parquet"]
    assert (out / "old.parquet").stat().st_mtime_ns == stamp
    summary = main(_stage_cfg("data/raw/demo/*.parquet"))
    assert summary.startswith("300 binary demo rows")
    assert [p.name for p in out.iterdir()] == ["part-0000.parquet"]


def test_trees_beat_linear_on_the_table() -> None:
    df = _table(GenerateConfig(rows=16_000, n_products=300), seed=5).unique(maintain_order=True)
    channel = df["channel"].str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")
    columns = [
        df[c].cast(pl.Float64).to_numpy()
        for c in ("amount", "customer_age", "tenure_days", "prior_tickets", "is_member")
    ]
    columns.append(df["created_at"].dt.hour().cast(pl.Float64).to_numpy())
    columns += [(channel == c).cast(pl.Float64).to_numpy() for c in ("email", "phone", "chat")]
    columns.append(df["product_sku"].str.slice(4).cast(pl.Float64).to_numpy())
    x = np.nan_to_num(np.column_stack(columns), nan=-1.0)
    y = df["label"].to_numpy()
    n = len(y) * 3 // 4
    with threadpool_limits(1):  # the machine is shared: no thread oversubscription
        gbm = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[:n], y[:n])
        mean, std = x[:n].mean(0), x[:n].std(0)
        lin = LogisticRegression(max_iter=500).fit((x[:n] - mean) / std, y[:n])
    auc_gbm = roc_auc_score(y[n:], gbm.predict_proba(x[n:])[:, 1])
    auc_lin = roc_auc_score(y[n:], lin.predict_proba((x[n:] - mean) / std)[:, 1])
    assert auc_gbm > auc_lin + 0.04, (auc_gbm, auc_lin)
    assert 0.62 < auc_gbm < 0.85


def test_a_failed_run_leaves_the_previous_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    cfg = GenerateConfig(rows=600, part_rows=300, n_products=50, workers=1)
    generate(cfg, 1, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls: list[int] = []
    write = core._write_part

    def dies_on_the_second_part(args: tuple[object, ...]) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed after the first part was written
        return write(args)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "_write_part", dies_on_the_second_part)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg, 2, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary left behind
