"""The demo data: deterministic, dirty in the documented ways, and learnable but not trivially."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pipeline.common.errors import PipelineError
from pipeline.generate.core import GenerateConfig, generate, make_part
from pipeline.generate.text import CLOSERS, CORE, DETAILS, GREETINGS, SIGN_OFFS


def _table(cfg: GenerateConfig, seed: int = 1) -> pl.DataFrame:
    frame = pl.from_arrow(make_part(cfg, seed, 0, cfg.rows, 1))
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    cfg = GenerateConfig(rows=1_000, part_rows=400, n_products=50, workers=1)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(cfg, seed, tmp_path / name)
    parts = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert parts == ["part-0000.parquet", "part-0001.parquet", "part-0002.parquet"]
    a, b, c = (pl.read_parquet(tmp_path / n / "*.parquet") for n in "abc")
    assert a.height == 1_000
    assert a.equals(b)
    assert not a.equals(c)
    assert a["ticket_id"].n_unique() == 1_000 - (4 + 4 + 2)  # 1% exact duplicates per part


def test_dirty_in_the_documented_ways() -> None:
    df = _table(GenerateConfig(rows=20_000, n_products=2_000))
    assert abs(df["label"].mean() - 0.2) < 0.01  # type: ignore[operator]
    nullable = ["amount", "customer_age", "channel", "is_member", "message", "created_at"]
    assert all(df[c].null_count() > 0 for c in nullable)
    assert df.is_duplicated().sum() >= 2 * 190
    assert (df["amount"] < 0).sum() > 50
    assert ((df["customer_age"] < 0) | (df["customer_age"] > 120)).sum() > 50
    assert (df["message"] == "").sum() > 100
    spellings = df["channel"].drop_nulls().unique().to_list()
    assert "email" in spellings and "EMAIL" in spellings and len(spellings) > 10
    assert df["product_sku"].n_unique() > 1_000  # the high-cardinality column
    lengths = df["message"].drop_nulls().str.len_chars()
    assert lengths.max() > 4 * lengths.filter(lengths > 0).min()  # type: ignore[operator]
    vocabulary = {
        w
        for pool in (GREETINGS, SIGN_OFFS, *CORE, *DETAILS, *CLOSERS)
        for phrase in pool
        for w in phrase.split()
    }
    words = {w for m in df["message"].drop_nulls().head(2_000).to_list() for w in m.split()}
    misspelt = {w for w in words - vocabulary if not w.startswith(("(order", "#"))}
    assert len(misspelt) > 20
    assert df.schema["is_member"] == pl.Boolean and df.schema["created_at"] == pl.Datetime("us")


def test_multiclass_switch() -> None:
    df = _table(GenerateConfig(rows=6_000, task="multiclass", n_classes=3))
    shares = df["label"].value_counts(normalize=True).sort("label")["proportion"].to_list()
    assert len(shares) == 3 and abs(shares[2] - 0.2) < 0.01 and min(shares) > 0.15


def test_bad_config_is_one_line() -> None:
    with pytest.raises(PipelineError, match="task must be binary or multiclass"):
        GenerateConfig(task="regression")


def test_trees_beat_linear_and_text_carries_signal() -> None:
    df = _table(GenerateConfig(rows=24_000, n_products=300), seed=5)
    df = df.unique(maintain_order=True)
    hour = df["created_at"].dt.hour().cast(pl.Float64)
    x = np.column_stack(
        [
            df[c].cast(pl.Float64).to_numpy()
            for c in ("amount", "customer_age", "tenure_days", "prior_tickets", "is_member")
        ]
        + [
            hour.to_numpy(),
            df["channel"]
            .str.strip_chars()
            .str.to_lowercase()
            .str.contains("phone")
            .cast(pl.Float64)
            .to_numpy(),
            df["product_sku"].str.slice(4).cast(pl.Float64).to_numpy(),
        ]
    )
    y = df["label"].to_numpy()
    n = len(y) * 3 // 4
    x = np.nan_to_num(x, nan=-1.0)
    gbm = HistGradientBoostingClassifier(max_iter=150, random_state=0).fit(x[:n], y[:n])
    lin = LogisticRegression(max_iter=500).fit((x[:n] - x[:n].mean(0)) / x[:n].std(0), y[:n])
    auc_gbm = roc_auc_score(y[n:], gbm.predict_proba(x[n:])[:, 1])
    auc_lin = roc_auc_score(y[n:], lin.predict_proba((x[n:] - x[:n].mean(0)) / x[:n].std(0))[:, 1])
    assert auc_gbm > auc_lin + 0.05, (auc_gbm, auc_lin)
    assert 0.65 < auc_gbm < 0.95
    texts = df["message"].fill_null("").to_list()
    tfidf = TfidfVectorizer(min_df=2).fit(texts[:n])
    text_model = LogisticRegression(max_iter=500).fit(tfidf.transform(texts[:n]), y[:n])
    auc_text = roc_auc_score(y[n:], text_model.predict_proba(tfidf.transform(texts[n:]))[:, 1])
    assert 0.6 < auc_text < 0.9, auc_text
