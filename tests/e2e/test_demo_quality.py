"""The default `make repro` on the demo data shows why each model exists (slow: the full-size
demo and MiniLM fine-tuning on the CPU, a quarter of an hour or more on two cores).

Every model's probabilities beat the base rate on log loss and Brier, the tabular models are
calibrated, F1 at the tuned threshold beats the best constant guess, LightGBM beats the linear
baseline on the table, and the transformer beats TF-IDF + logistic regression on the same text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tests.smoke import dvc_repro, make_copy


def tfidf_on_text_alone(processed: Path, text: str) -> float:
    """The yardstick of the text model: TF-IDF (word 1-2-grams) + logistic regression."""
    train, test = (pl.read_parquet(processed / f"{s}.parquet") for s in ("train", "test"))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vectorizer.fit_transform(train[text].fill_null("").to_list())
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, train["__label__"].to_numpy())
    scores = model.predict_proba(vectorizer.transform(test[text].fill_null("").to_list()))[:, 1]
    return float(roc_auc_score(test["__label__"].to_numpy(), scores))


@pytest.mark.slow
def test_default_run_shows_why_each_model_exists(tmp_path: Path) -> None:
    project = make_copy(tmp_path / "project", profile=None)
    result = dvc_repro(project, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    processed = project / "data" / "processed"
    p = pl.read_parquet(processed / "train.parquet")["__label__"].mean()
    y = pl.read_parquet(processed / "test.parquet")["__label__"].to_numpy()
    base_log_loss = -float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    base_brier = float(np.mean((p - y) ** 2))
    constant_f1 = 2 * y.mean() / (1 + y.mean())  # always "escalate": the best constant F1
    scores = {
        name: json.loads((project / "metrics" / f"{name}.json").read_text())["test"]
        for name in ("baseline", "lightgbm", "text_model")
    }
    print(json.dumps({"base_log_loss": base_log_loss, "base_brier": base_brier, **scores}))
    for name, test in scores.items():
        assert test["log_loss"] < base_log_loss and test["brier"] < base_brier, name
        assert test["f1"] > constant_f1, name
    for name in ("baseline", "lightgbm"):
        assert scores[name]["ece"] <= 0.03, name
    assert scores["lightgbm"]["roc_auc"] > scores["baseline"]["roc_auc"]
    yardstick = tfidf_on_text_alone(processed, "message")
    print(f"tfidf on text alone: {yardstick:.4f}")
    assert scores["text_model"]["roc_auc"] > yardstick
