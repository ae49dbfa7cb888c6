"""Builders of a small project on disk, shaped like the real stage outputs, for the export tests.

Processed splits and a profile as the ETL writes them, a baseline and a LightGBM Pipeline of the
kind the tabular stages fit (saved with skops), and a tiny random BERT with a locally trained
WordPiece tokenizer (saved with save_pretrained)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.dataset import LABEL, Profile
from pipeline.common.tabular import model_frame
from pipeline.export.core import ExportPaths
from serving.features import FeatureSpec, derive_features
from serving.text_input import build_texts

N_ROWS = 480
MAX_LENGTH = 24
WORDS = [
    *("refund", "broken", "great", "late", "delivery", "love"),
    *("slow", "fast", "support", "thanks", "awful", "fine"),
]
TEXT_SPEC = {"text": "review", "fields": [{"name": "channel", "type": "category"}]}


def _raw_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    reviews = [" ".join(rng.choice(WORDS, size=rng.integers(0, 14))) for _ in range(n)]
    frame = pd.DataFrame(
        {
            "ticket_id": np.arange(n, dtype=np.int64),
            "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "is_member": rng.integers(0, 2, n).astype(np.float64),
            "channel": rng.choice(np.array(["email", "phone", "web", None], dtype=object), n),
            "city": rng.choice(np.array([f"city {i}" for i in range(30)], dtype=object), n),
            "created_at": pd.to_datetime("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
            "review": np.array(reviews, dtype=object),
        }
    )
    frame.loc[rng.random(n) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(n) < 0.05, "created_at"] = pd.NaT
    frame.loc[rng.random(n) < 0.05, "review"] = None
    return frame


def _labels(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    text = frame["review"].fillna("")
    score = (
        0.03 * frame["amount"].fillna(20)
        + 1.5 * text.str.contains("broken|awful|refund")
        - frame["is_member"]
        + rng.normal(0, 0.7, len(frame))
    )
    return (score > np.median(score)).to_numpy(np.int64)


def write_processed(root: Path, seed: int = 0) -> Profile:
    """Splits + profile.json under root/data/processed, as the ETL writes them."""
    rng = np.random.default_rng(seed)
    frame = _raw_frame(rng, N_ROWS)
    spec = FeatureSpec(
        numeric=["amount", "is_member"],
        boolean=["is_member"],
        bounds={"amount": [0.0, None]},
        categorical=["channel", "city"],
        datetime=["created_at"],
        datetime_parts=["dayofweek", "hour"],
        text="review",
        text_stats=["chars", "words"],
    )
    derived = derive_features(
        {
            "created_at": frame["created_at"].to_numpy("datetime64[us]"),
            "review": frame["review"].to_numpy(object),
        },
        spec,
    )
    for name, values in derived.items():
        frame[name] = values
    frame[LABEL] = _labels(frame, rng)
    out = root / "data" / "processed"
    out.mkdir(parents=True, exist_ok=True)
    bounds = {"train": (0, 320), "val": (320, 400), "test": (400, N_ROWS)}
    for split, (lo, hi) in bounds.items():
        frame.iloc[lo:hi].reset_index(drop=True).to_parquet(out / f"{split}.parquet")
    nulls = {
        c: float(frame[c].isna().mean())
        for c in ["amount", "is_member", "channel", "city", "created_at", "review"]
    }
    profile = Profile(
        task="binary",
        target="escalated",
        id="ticket_id",
        labels=["no", "yes"],
        numeric=spec.numeric,
        categorical=spec.categorical,
        text="review",
        datetime=spec.datetime,
        derived=spec.derived,
        rows={s: hi - lo for s, (lo, hi) in bounds.items()} | {"rejected": 0},
        columns={c: {"null_rate": rate} for c, rate in nulls.items()},
        extra={"feature_spec": spec.to_json()},
    )
    (out / "profile.json").write_text(json.dumps(profile.to_json()), encoding="utf-8")
    return profile


def baseline_pipeline(profile: Profile) -> Any:
    """ColumnTransformer (impute + scale, one-hot, TF-IDF) + LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    features = ColumnTransformer(
        [
            ("numeric", numeric, profile.model_numeric),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", min_frequency=5, max_categories=20),
                profile.categorical,
            ),
            ("text", TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True), "review"),
        ]
    )
    model = LogisticRegression(max_iter=2000, class_weight="balanced")
    return Pipeline([("features", features), ("model", model)])


def lightgbm_pipeline(profile: Profile) -> Any:
    """Numeric pass-through + ordinal codes (rare levels pooled) + small TF-IDF → LGBMClassifier."""
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, min_frequency=5, dtype=np.float64
    )
    tfidf = TfidfVectorizer(min_df=2, ngram_range=(1, 2), dtype=np.float64)
    features = ColumnTransformer(
        [
            ("numeric", "passthrough", profile.model_numeric),
            ("categorical", encoder, profile.categorical),
            ("text", tfidf, "review"),
        ]
    )
    model = LGBMClassifier(
        n_estimators=80,
        num_leaves=15,
        min_child_samples=5,
        verbose=-1,
        deterministic=True,
        n_jobs=1,
        random_state=0,
    )
    return Pipeline([("features", features), ("model", model)])


def _metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(y, proba[:, 1])),
        "accuracy": float(accuracy_score(y, proba.argmax(1))),
        "log_loss": float(log_loss(y, proba)),
    }


def _write_model_outputs(
    root: Path, name: str, profile: Profile, val: np.ndarray, test: np.ndarray
) -> None:
    """predictions_test.parquet, run.json and metrics/<name>.json for one model."""
    splits = {s: pd.read_parquet(root / "data/processed" / f"{s}.parquet") for s in ("val", "test")}
    model_dir = root / "models" / name
    preds = pd.DataFrame(
        {
            "ticket_id": splits["test"]["ticket_id"],
            "label": [profile.labels[i] for i in test.argmax(1)],
        }
    )
    for i in range(test.shape[1]):
        preds[f"proba_{i}"] = test[:, i].astype(np.float64)
    preds.to_parquet(model_dir / "predictions_test.parquet")
    run = {
        "run_id": f"run-{name}",
        "experiment_id": "1",
        "tracking_uri": "sqlite:///x.db",
        "registered_model": name,
        "version": "1",
    }
    (model_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    metrics = {
        "val": _metrics(splits["val"][LABEL].to_numpy(), val),
        "test": _metrics(splits["test"][LABEL].to_numpy(), test),
    }
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics" / f"{name}.json").write_text(json.dumps(metrics), encoding="utf-8")


def write_tabular(root: Path, profile: Profile, name: str, pipeline: Any) -> Any:
    """Fit on train, save model.skops (+ booster.txt) and the reference outputs."""
    import skops.io

    frames = {
        s: pd.read_parquet(root / "data/processed" / f"{s}.parquet")
        for s in ("train", "val", "test")
    }
    pipeline.fit(model_frame(frames["train"], profile), frames["train"][LABEL].to_numpy())
    model_dir = root / "models" / name
    model_dir.mkdir(parents=True, exist_ok=True)
    skops.io.dump(pipeline, model_dir / "model.skops")
    if hasattr(pipeline.steps[-1][1], "booster_"):
        pipeline.steps[-1][1].booster_.save_model(str(model_dir / "booster.txt"))
    val, test = (pipeline.predict_proba(model_frame(frames[s], profile)) for s in ("val", "test"))
    _write_model_outputs(root, name, profile, val, test)
    return pipeline


def write_text_model(root: Path, profile: Profile) -> None:
    """A tiny random BERT + WordPiece tokenizer trained on the train texts, saved like the stage."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    frames = {
        s: pd.read_parquet(root / "data/processed" / f"{s}.parquet")
        for s in ("train", "val", "test")
    }
    texts = {
        s: build_texts(
            {c: [None if pd.isna(v) else v for v in f[c]] for c in ("review", "channel")}, TEXT_SPEC
        )
        for s, f in frames.items()
    }
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        texts["train"], trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    model = BertForSequenceClassification(config).eval()
    model_dir = root / "models" / "text_model"
    model.save_pretrained(model_dir / "hf")
    fast.save_pretrained(model_dir / "hf")
    payload = {"max_length": MAX_LENGTH, "text_input": TEXT_SPEC, "labels": profile.labels}
    (model_dir / "text_config.json").write_text(json.dumps(payload), encoding="utf-8")

    def proba(batch: list[str]) -> np.ndarray:
        enc = fast(batch, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
        with torch.no_grad():
            return torch.softmax(model(**enc).logits, dim=-1).numpy()

    val, test = (
        np.concatenate([proba(texts[s][i : i + 32]) for i in range(0, len(texts[s]), 32)])
        for s in ("val", "test")
    )
    _write_model_outputs(root, "text_model", profile, val, test)


def build_project(root: Path, text_model: bool = True) -> ExportPaths:
    """Everything the export stage reads, under root."""
    profile = write_processed(root)
    write_tabular(root, profile, "baseline", baseline_pipeline(profile))
    write_tabular(root, profile, "lightgbm", lightgbm_pipeline(profile))
    if text_model:
        write_text_model(root, profile)
    (root / "params.yaml").write_text("export: {}\n", encoding="utf-8")
    return paths_for(root)


def paths_for(root: Path) -> ExportPaths:
    """ExportPaths rooted at a test project."""
    return ExportPaths(
        processed_dir=root / "data/processed",
        models_dir=root / "models",
        metrics_dir=root / "metrics",
        params_file=root / "params.yaml",
    )
