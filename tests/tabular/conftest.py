"""Processed-data directories (the `pipeline.common.dataset` contract) built without the ETL.

Three data sets: a synthetic support-ticket table with every column kind, nulls and a text
column (binary); scikit-learn's bundled breast-cancer (binary) and wine (multiclass) tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf

from pipeline.baseline.core import BaselineConfig, train_baseline
from pipeline.common.dataset import LABEL, SPLITS, Profile
from pipeline.common.tabular import ModelPaths
from pipeline.lightgbm.config import LGBMParams, LightGBMConfig
from pipeline.lightgbm.core import train_lightgbm

GOOD_WORDS = ["thanks", "great", "resolved", "quick", "helpful", "works", "fine"]
BAD_WORDS = ["broken", "refund", "angry", "crash", "urgent", "lost", "charged"]
# One-letter words, punctuation, digits, capitals: where scikit-learn and ONNX tokenizers differ.
FILLER = ["order", "the", "my", "App", "account,", "please!", "today", "I", "a", "#123", "it's"]
CHANNELS = ["email", "phone", "chat", "web"]


def _review(rng: np.random.Generator, bad: bool) -> str:
    words = list(rng.choice(FILLER, size=rng.integers(3, 12)))
    vocab = BAD_WORDS if bad else GOOD_WORDS
    words += list(rng.choice(vocab, size=rng.integers(1, 3)))
    rng.shuffle(words)
    return " ".join(words)


def synthetic_table(n: int, seed: int = 0, n_classes: int = 2) -> pd.DataFrame:
    """Tickets whose label depends on amount, channel, membership and review words, plus noise.

    Multiclass: the same score cut into `n_classes` ordered levels."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    age = rng.integers(18, 80, n).astype(float)
    is_member = rng.integers(0, 2, n).astype(float)
    channel = rng.choice(CHANNELS, n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    city = np.array([f"city_{k}" for k in rng.zipf(1.5, n) % 300], dtype=object)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), "h")
    channel_effect = pd.Series(channel).map({"email": 0.0, "phone": 1.0, "chat": 0.3, "web": -0.5})
    logit = (
        0.9 * (np.log(amount) - 3.0)
        + channel_effect.to_numpy()
        - 0.8 * is_member
        + rng.normal(0.0, 0.8, n)
        - 1.2
    )
    text_bad = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))  # the text echoes the label ...
    score = logit + 1.5 * text_bad + rng.normal(0.0, 0.5, n)
    if n_classes == 2:
        label = (score > 0.6).astype(np.int64)
    else:
        cuts = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
        label = np.searchsorted(cuts, score).astype(np.int64)
    review = np.array([_review(rng, bool(b)) for b in text_bad], dtype=object)
    for column, rate in ((amount, 0.1), (age, 0.05), (is_member, 0.05)):
        column[rng.random(n) < rate] = np.nan
    channel[rng.random(n) < 0.08] = None
    review[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "ticket_id": [f"t{i:06d}" for i in range(n)],
            "amount": amount,
            "age": age,
            "is_member": is_member,
            "channel": pd.Series(channel, dtype="string"),
            "city": pd.Series(city, dtype="string"),
            "created_at": created,
            "created_at_hour": created.hour.astype(float),
            "created_at_dow": created.day_of_week.astype(float),
            "review_length": pd.Series(review).fillna("").str.len().astype(float).to_numpy(),
            "review": pd.Series(review, dtype="string"),
            LABEL: label,
        }
    )


def write_processed(
    directory: Path, table: pd.DataFrame, profile_fields: dict[str, Any], seed: int = 0
) -> Profile:
    """Split 60/20/20 at random and write the splits and profile.json like the ETL does."""
    directory.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(table))
    cut = [int(0.6 * len(table)), int(0.8 * len(table))]
    rows: dict[str, int] = {}
    distribution: dict[str, dict[str, int]] = {}
    for split, index in zip(SPLITS, np.split(order, cut), strict=True):
        part = table.iloc[np.sort(index)].reset_index(drop=True)
        part.to_parquet(directory / f"{split}.parquet", index=False)
        rows[split] = len(part)
        counts = part[LABEL].value_counts()
        distribution[split] = {
            name: int(counts.get(k, 0)) for k, name in enumerate(profile_fields["labels"])
        }
    rows["rejected"] = 0
    profile = Profile(**profile_fields, rows=rows, label_distribution=distribution)
    (directory / "profile.json").write_text(json.dumps(profile.to_json(), indent=2))
    return profile


def synthetic_processed(
    directory: Path, n: int = 2500, seed: int = 0, n_classes: int = 2
) -> Profile:
    """The synthetic ticket table as a processed-data directory."""
    fields = {
        "task": "binary" if n_classes == 2 else "multiclass",
        "target": "escalated",
        "id": "ticket_id",
        "labels": ["no", "yes"] if n_classes == 2 else [f"level_{k}" for k in range(n_classes)],
        "numeric": ["amount", "age", "is_member"],
        "categorical": ["channel", "city"],
        "text": "review",
        "datetime": ["created_at"],
        "derived": ["created_at_hour", "created_at_dow", "review_length"],
    }
    return write_processed(directory, synthetic_table(n, seed, n_classes), fields, seed)


def sklearn_processed(directory: Path, name: str) -> Profile:
    """Breast cancer (binary) or wine (multiclass) as a processed-data directory."""
    from sklearn import datasets

    bunch = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]()
    columns = [re.sub(r"\W+", "_", c).strip("_") for c in bunch.feature_names]
    table = pd.DataFrame(bunch.data, columns=columns)
    table.insert(0, "row_id", np.arange(len(table)))
    table[LABEL] = bunch.target.astype(np.int64)
    labels = [str(t) for t in bunch.target_names]
    fields = {
        "task": "binary" if len(labels) == 2 else "multiclass",
        "target": "target",
        "id": "row_id",
        "labels": labels,
        "numeric": columns,
        "categorical": [],
        "text": None,
        "datetime": [],
        "derived": [],
    }
    return write_processed(directory, table, fields)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic") / "processed"
    synthetic_processed(directory)
    return directory


@pytest.fixture(scope="session")
def synthetic_multiclass_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic3") / "processed"
    synthetic_processed(directory, n_classes=3)
    return directory


@pytest.fixture(scope="session")
def breast_cancer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("breast_cancer") / "processed"
    sklearn_processed(directory, "breast_cancer")
    return directory


@pytest.fixture(scope="session")
def wine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wine") / "processed"
    sklearn_processed(directory, "wine")
    return directory


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite store for the session: MLflow's first schema set-up takes seconds."""
    yield f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracking_cfg(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> DictConfig:
    """A composed-config stand-in with tracking pointed at the session store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    return OmegaConf.create(
        {
            "seed": 7,
            "tracking": {"uri": tracking_uri, "experiment": "tests", "optional": False},
        }
    )


@dataclass(frozen=True)
class Trained:
    """A model trained once per session on the synthetic data, for several tests to inspect."""

    paths: ModelPaths
    metrics: dict[str, dict[str, float]]


def small_lightgbm(**changes: Any) -> LightGBMConfig:
    """Few fast trees on one thread (what the tiny profile uses)."""
    params = LGBMParams(n_estimators=300, learning_rate=0.1, n_jobs=1, min_child_samples=10)
    return LightGBMConfig(params=params, early_stopping_rounds=20, **changes)


@pytest.fixture(scope="session")
def lightgbm_synthetic(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    paths = ModelPaths.for_model("lightgbm", tmp_path_factory.mktemp("lgbm_synthetic"))
    return Trained(paths, train_lightgbm(small_lightgbm(), 5, synthetic_dir, paths, None))


@pytest.fixture(scope="session")
def baseline_synthetic(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    paths = ModelPaths.for_model("baseline", tmp_path_factory.mktemp("baseline_synthetic"))
    return Trained(paths, train_baseline(BaselineConfig(), 0, synthetic_dir, paths, None))
