"""Processed-data directories (profile.json + three split Parquet files) built without the ETL.

Support tickets with messy, realistic columns: a skewed amount with nulls and impossible values,
an age with bounds, a yes/no flag, a channel with a rare Unicode level and nulls, a long-tailed
city, a timestamp with gaps, and a review text with emoji, accents, other scripts, empty and
missing texts and a very long one. The target depends on amount, an age × channel interaction,
membership, the hour and the review's words:

- binary: escalated (no / yes, about 25% yes), the positive class last;
- multiclass: priority low / medium / high;
- regression: a cost in currency units (skewed; `target_transform="log1p"` optional).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf

from pipeline.common.data import LABEL
from pipeline.common.model import Model
from pipeline.common.train import ModelPaths
from serving.schemas import (
    SPLITS,
    FeatureSpec,
    ModelCard,
    Profile,
    SplitSettings,
    TargetStats,
    dump,
    read_file,
)

Task = Literal["binary", "multiclass", "regression"]
GOOD = ["thanks", "great", "resolved", "quick", "helpful", "works", "merci", "genial"]
BAD = ["broken", "refund", "angry", "crash", "urgent", "lost", "charged", "kaputt"]
FILLER = [
    "order",
    "the",
    "my",
    "App",
    "account,",
    "please!",
    "today",
    "I",
    "a",
    "#123",
    "it's",
    "café",
    "naïve",
    "日本",
    "🙂",
    "Ünïcode",
    "ok",
    "NOT",
    "very",
]
CHANNELS = ["email", "phone", "chat", "web", "café-counter"]
LABELS = {"binary": ["no", "yes"], "multiclass": ["low", "medium", "high"], "regression": []}


def _review(rng: np.random.Generator, bad: bool) -> str:
    words = list(rng.choice(FILLER, size=rng.integers(2, 12)))
    words += list(rng.choice(BAD if bad else GOOD, size=rng.integers(1, 3)))
    rng.shuffle(words)
    return " ".join(words)


def ticket_table(n: int, task: Task, seed: int = 0) -> pd.DataFrame:
    """The raw-after-cleaning columns of `n` tickets and their target in `LABEL`."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    age = rng.integers(18, 90, n).astype(float)
    member = rng.integers(0, 2, n).astype(float)
    channel = rng.choice(CHANNELS, n, p=[0.4, 0.3, 0.17, 0.1, 0.03]).astype(object)
    city = np.array([f"city {k}" for k in rng.zipf(1.5, n) % 300], dtype=object)
    created = np.datetime64("2024-01-01T00:00") + rng.integers(0, 365 * 24 * 60, n).astype(
        "timedelta64[m]"
    )
    hour = created.astype("datetime64[h]").astype(np.int64) % 24
    phone = channel == "phone"
    score = (
        0.9 * (np.log(amount) - 3.0)
        + 1.4 * (phone & (age > 60))  # an interaction trees find and a linear model does not
        - 0.8 * member
        + 0.5 * ((hour >= 22) | (hour < 6))
        + rng.normal(0.0, 0.6, n)
    )
    bad_text = rng.random(n) < 1.0 / (1.0 + np.exp(-(score - 0.5)))
    review = np.array([_review(rng, bool(b)) for b in bad_text], dtype=object)
    score = score + 0.8 * bad_text
    if task == "binary":
        target: np.ndarray = (score > np.quantile(score, 0.75)).astype(np.int64)
    elif task == "multiclass":
        target = np.searchsorted(np.quantile(score, [0.5, 0.8]), score).astype(np.int64)
    else:
        target = np.round(np.exp(2.5 + 0.6 * score), 2)
    for column, rate in ((amount, 0.1), (age, 0.05), (member, 0.05)):
        column[rng.random(n) < rate] = np.nan
    amount[rng.random(n) < 0.01] = -1.0  # impossible: bounds make it NaN
    channel[rng.random(n) < 0.06] = None
    created[rng.random(n) < 0.03] = np.datetime64("NaT")
    review[rng.random(n) < 0.05] = None
    review[rng.random(n) < 0.02] = ""
    review[0] = " ".join(["a very long review with many words"] * 400)
    return pd.DataFrame(
        {
            "ticket_id": [f"t{i:06d}" for i in range(n)],
            "amount": amount,
            "age": age,
            "is_member": member,
            "channel": pd.Series(channel, dtype=object),
            "city": pd.Series(city, dtype=object),
            "created_at": created.astype("datetime64[us]"),
            "review": pd.Series(review, dtype=object),
            LABEL: target,
        }
    )


def write_processed(
    directory: Path,
    task: Task,
    n: int = 3000,
    seed: int = 0,
    target_transform: Literal["none", "log1p"] = "none",
) -> Profile:
    """Write a processed-data directory as the ETL would (60/20/20 random split)."""
    directory.mkdir(parents=True, exist_ok=True)
    table = ticket_table(n, task, seed)
    order = np.random.default_rng(seed).permutation(n)
    rows: dict[str, int] = {"rejected": 0}
    distribution: dict[str, dict[str, int]] = {}
    stats: dict[str, TargetStats] = {}
    for split, index in zip(SPLITS, np.split(order, [int(0.6 * n), int(0.8 * n)]), strict=True):
        part = table.iloc[np.sort(index)].reset_index(drop=True)
        part.to_parquet(directory / f"{split}.parquet", index=False)
        rows[split] = len(part)
        y = part[LABEL].to_numpy()
        if task == "regression":
            qs = {f"{q:.2f}": float(np.quantile(y, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
            stats[split] = TargetStats(
                count=len(y),
                min=float(y.min()),
                max=float(y.max()),
                mean=float(y.mean()),
                std=float(y.std()),
                quantiles=qs,
            )
        else:
            counts = np.bincount(y, minlength=len(LABELS[task]))
            distribution[split] = dict(zip(LABELS[task], map(int, counts), strict=True))
    profile = Profile(
        data="tickets",
        source="tests/tickets.csv",
        format="csv",
        task=task,
        target={"regression": "cost"}.get(task, "escalated" if task == "binary" else "priority"),
        target_transform=target_transform,
        id="ticket_id",
        labels=LABELS[task],
        positive="yes" if task == "binary" else None,
        features=FeatureSpec(
            numeric=["amount", "age", "is_member"],
            boolean=["is_member"],
            bounds={"amount": (0.0, None), "age": (0.0, 120.0)},
            categorical=["channel", "city"],
            datetime=["created_at"],
            text="review",
        ),
        rows_in=n,
        rows=rows,
        label_distribution=distribution,
        target_stats=stats,
        split=SplitSettings(method="stratified", train=0.6, val=0.2, test=0.2),
        seed=seed,
    )
    (directory / "profile.json").write_text(dump(profile), encoding="utf-8")
    return profile


# --- pytest fixtures (imported by the conftest of each test folder that trains models) --------

FAST = {  # configs that keep each model stage to seconds on the fixtures
    "lightgbm": {"params": {"n_jobs": 1, "learning_rate": 0.1}, "early_stopping_rounds": 20},
    "forest": {"n_estimators": 40, "n_jobs": 1},
}


def stage_cfg(
    name: str, seed: int = 7, tracking: dict[str, Any] | None = None, **groups: Any
) -> DictConfig:
    """A composed-config stand-in: tracking off unless given, the fast settings of `name`
    merged with `groups[name]`, and any other group (e.g. decision) as given."""
    node = OmegaConf.merge(FAST.get(name, {}), groups.pop(name, {}))
    return OmegaConf.create(
        {"seed": seed, "tracking": tracking or {"enabled": False}, name: node, **groups}
    )


@dataclass(frozen=True)
class Trained:
    paths: ModelPaths
    scores: dict[str, dict[str, float]]

    @property
    def card(self) -> ModelCard:
        return read_file(self.paths.model_dir / "card.json", ModelCard)

    def predictions(self, split: str = "test") -> pd.DataFrame:
        return pd.read_parquet(self.paths.model_dir / f"predictions_{split}.parquet")


# Module-level caches, so every test folder's conftest shares the same directories and runs
# (a session fixture imported into several conftests would be one fixture per folder).
_DATA: dict[tuple[Any, ...], Path] = {}
_RUNS: dict[tuple[Any, ...], Trained] = {}


@pytest.fixture(scope="session")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`processed(task, n=3000, target_transform="none")` → a directory holding
    data/processed/, made once per session for the same arguments."""

    def make(task: Task, n: int = 3000, target_transform: str = "none") -> Path:
        key = (task, n, target_transform)
        if key not in _DATA:
            root = tmp_path_factory.mktemp(f"{task}_{n}_{target_transform}")
            write_processed(root / "data" / "processed", task, n, 0, target_transform)  # type: ignore[arg-type]
            _DATA[key] = root
        return _DATA[key]

    return make


@pytest.fixture(scope="session")
def trained(
    processed: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Trained]:
    """`trained(model_cls, name, task, **data)` → a stage run through the runner with the fast
    settings, once per session for the same arguments (tests only read its outputs)."""
    from pipeline.common.train import train_model

    def train(model_cls: type[Model], name: str, task: Task, **data: Any) -> Trained:
        key = (model_cls, name, task, *sorted(data.items()))
        if key not in _RUNS:
            source = processed(task, **data) / "data" / "processed"
            root = tmp_path_factory.mktemp(f"run_{name}_{task}")
            paths = replace(ModelPaths.for_model(name, root), processed_dir=source)
            _RUNS[key] = Trained(paths, train_model(model_cls, stage_cfg(name), name, paths, 7))
        return _RUNS[key]

    return train
