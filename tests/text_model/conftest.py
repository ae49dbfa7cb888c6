"""Text model fixtures: a tiny processed data set (the ETL's contract) with a text signal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from omegaconf import DictConfig

from pipeline.common.config import compose
from pipeline.common.dataset import LABEL, PROFILE_FILE, Profile
from pipeline.text_model.outputs import TextModelPaths

REPO = Path(__file__).resolve().parents[2]
FILLER = [
    *("the", "it", "was", "my", "order", "and", "with", "a"),
    *("for", "of", "to", "this", "that", "item", "package"),
]
# One vocabulary per class: a text mentions two words of its class, so the signal is learnable.
CLASS_WORDS = [
    ["great", "excellent", "love", "perfect", "happy", "fast"],
    ["broken", "awful", "refund", "terrible", "slow", "angry"],
    ["question", "how", "when", "where", "price", "colour"],
]


def make_texts(labels: np.ndarray, rng: np.random.Generator, noise: float = 0.1) -> list[str]:
    """Short review-like texts; `noise` of them carry another class's words."""
    n_classes = int(labels.max()) + 1
    texts = []
    for label in labels:
        shown = int(rng.integers(n_classes)) if rng.random() < noise else int(label)
        words = list(rng.choice(FILLER, size=int(rng.integers(4, 12))))
        for word in rng.choice(CLASS_WORDS[shown], size=2, replace=False):
            words.insert(int(rng.integers(len(words) + 1)), str(word))
        texts.append(" ".join(words).capitalize())
    return texts


def write_processed(
    directory: Path,
    n_classes: int = 2,
    with_text: bool = True,
    rows: tuple[int, int, int] = (600, 200, 200),
    seed: int = 0,
) -> Profile:
    """Write {train,val,test}.parquet and profile.json as the ETL would."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    labels = (
        [str(k) for k in range(n_classes)] if n_classes == 2 else ["praise", "complaint", "ask"]
    )
    offset = 0
    counts = {}
    for split, n in zip(("train", "val", "test"), rows, strict=True):
        # Imbalanced like real data: class 0 is the most frequent.
        y = rng.choice(
            n_classes, size=n, p=np.linspace(2, 1, n_classes) / np.linspace(2, 1, n_classes).sum()
        )
        frame = {
            "ticket_id": [f"t{offset + i:05d}" for i in range(n)],
            "amount": rng.gamma(2.0, 20.0, size=n).round(2),
            "channel": rng.choice(["email", "phone", "chat"], size=n).tolist(),
            "text_length": rng.integers(0, 200, size=n).astype(np.float64),
            LABEL: y.astype(np.int64),
        }
        if with_text:
            frame["review"] = make_texts(y, rng)
        pl.DataFrame(frame).write_parquet(directory / f"{split}.parquet")
        counts[split] = n
        offset += n
    profile = Profile(
        task="binary" if n_classes == 2 else "multiclass",
        target="label",
        id="ticket_id",
        labels=labels,
        numeric=["amount"],
        categorical=["channel"],
        text="review" if with_text else None,
        datetime=[],
        derived=["text_length"],
        rows={**counts, "rejected": 0},
    )
    (directory / PROFILE_FILE).write_text(json.dumps(profile.to_json()), encoding="utf-8")
    return profile


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, which only fight the other tests for CPUs."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_processed() -> Callable[..., Profile]:
    """`write_processed` for tests (conftest modules are not imported by name)."""
    return write_processed


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch project directory as the working directory, tracking into its own SQLite."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def tiny_cfg(project: Path) -> Callable[..., DictConfig]:
    """Compose the repo's configs with the tiny profile plus overrides, tracking in `project`."""

    def make(*overrides: str) -> DictConfig:
        base = [
            "profile=tiny",
            f"tracking.uri=sqlite:///{project / 'mlflow.db'}",
            # The fixture's keyword task is learnt in 3 epochs with a large step size.
            "text_model.lr=1e-2",
            "text_model.max_epochs=3",
        ]
        return compose([*base, *overrides], config_dir=REPO / "configs")

    return make


@pytest.fixture
def paths(project: Path) -> TextModelPaths:
    """Stage paths inside the scratch project (the default relative paths, resolved there)."""
    return TextModelPaths(
        processed_dir=project / "data/processed",
        model_dir=project / "models/text_model",
        metrics_path=project / "metrics/text_model.json",
        plots_dir=project / "plots/text_model",
    )
