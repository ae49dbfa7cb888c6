"""The processed splits as every model stage reads them (through `prepare_columns`, as the
server reads a request), and a model's predictions on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import polars as pl

from pipeline.common.errors import PipelineError
from serving.features import prepare_columns
from serving.schemas import SPLITS, FileError, Profile, Typed, read_file

PROCESSED_DIR = Path("data/processed")
PROFILE_FILE = "profile.json"
LABEL = "__label__"  # class index (classification) or target value (regression) in the splits
MISSING_STRING = ""  # ONNX string tensors cannot hold a null: "" stands for a missing string
T = TypeVar("T", bound=Typed)


def read_stage_file(path: Path, kind: type[T]) -> T:
    """A stage's typed file, or a one-line PipelineError naming the file and the stage to re-run."""
    try:
        return read_file(path, kind)
    except FileError as exc:
        raise PipelineError(str(exc)) from None


def load_profile(processed_dir: Path = PROCESSED_DIR) -> Profile:
    """The ETL's profile, with a one-line error when the ETL has not run (or ran an old version)."""
    return read_stage_file(Path(processed_dir) / PROFILE_FILE, Profile)


def split_path(split: str, processed_dir: Path = PROCESSED_DIR) -> Path:
    """Path of one split's Parquet file."""
    return Path(processed_dir) / f"{split}.parquet"


@dataclass(frozen=True)
class Split:
    """One split as a model sees it: prepared columns, the target and the row ids."""

    name: str
    columns: dict[str, np.ndarray]  # `prepare_columns` output: cleaned raw + derived features
    y: np.ndarray  # int64 class index, or float64 target (log1p-transformed when configured)
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self, names: list[str]) -> pd.DataFrame:
        """The named columns as the graphs receive them: float64, or str with "" for missing."""
        out = {name: self.columns[name] for name in names}
        for name, values in out.items():
            if values.dtype == object:
                out[name] = np.array([MISSING_STRING if v is None else v for v in values], object)
            else:
                out[name] = np.asarray(values, dtype=np.float64)
        return pd.DataFrame(out, index=pd.RangeIndex(len(self)))

    def take(self, rows: np.ndarray, name: str | None = None) -> Split:
        """A subset (or reordering, or repetition) of the rows."""
        return Split(
            name or self.name,
            {k: v[rows] for k, v in self.columns.items()},
            self.y[rows],
            self.ids[rows],
        )


@dataclass(frozen=True)
class Splits:
    """The train, val and test splits and the profile that describes them."""

    profile: Profile
    train: Split
    val: Split
    test: Split

    def __getitem__(self, split: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    @classmethod
    def load(cls, processed_dir: Path = PROCESSED_DIR) -> Splits:
        """Read and prepare the three splits; every class must occur in train."""
        profile = load_profile(processed_dir)
        splits = {s: read_split(processed_dir, s, profile) for s in SPLITS}
        seen = set(np.unique(splits["train"].y).tolist())
        missing = [c for k, c in enumerate(profile.labels) if k not in seen]
        if profile.is_classification and missing:
            raise PipelineError(
                f"class '{missing[0]}' does not occur in the train split",
                where=str(split_path("train", processed_dir)),
                fix="give the data more rows of it, or merge rare classes in the data",
            )
        return cls(profile, splits["train"], splits["val"], splits["test"])


@dataclass(frozen=True)
class SplitRows:
    """One processed split as stored, before `prepare_columns`: what callers send."""

    ids: np.ndarray
    y: np.ndarray  # class index, or target value in its own units
    raw: dict[str, Any]  # raw input columns as NumPy arrays (object arrays for strings)


def read_rows(processed_dir: Path, split: str, profile: Profile) -> SplitRows:
    """A processed split's ids, targets and raw input columns."""
    path = split_path(split, processed_dir)
    if not path.is_file():
        raise PipelineError(
            f"split '{split}' not found", where=str(path), fix="run the ETL first: dvc repro etl"
        )
    frame = pl.read_parquet(path)
    spec = profile.features
    missing = [c for c in [profile.id, LABEL, *spec.raw_inputs] if c not in frame]
    if missing:
        raise PipelineError(
            f"columns {missing} missing", where=str(path), fix="re-run the ETL: dvc repro etl"
        )
    raw: dict[str, Any] = {}
    for name in spec.raw_inputs:
        if name in spec.numeric:
            raw[name] = frame[name].cast(pl.Float64).to_numpy()
        elif name in spec.datetime:
            raw[name] = frame[name].cast(pl.Datetime("us")).to_numpy()
        else:
            raw[name] = np.array(frame[name].to_list(), dtype=object)
    return SplitRows(frame[profile.id].to_numpy(), frame[LABEL].to_numpy(), raw)


def read_split(processed_dir: Path, split: str, profile: Profile) -> Split:
    """One processed split, prepared for the models."""
    rows = read_rows(processed_dir, split, profile)
    y = rows.y.astype(np.int64 if profile.is_classification else np.float64)
    if profile.target_transform == "log1p":  # regression only (the ETL refuses it otherwise)
        y = np.log1p(y)
    return Split(split, prepare_columns(rows.raw, profile.features), y, rows.ids)


@dataclass(frozen=True)
class Predictions:
    """A model's final predictions on one split, in the target's own units."""

    split: Split
    y_true: np.ndarray  # class index, or the target in its own units
    proba: np.ndarray | None = None  # [N, C] float64, classes in profile.labels order
    labels: np.ndarray | None = None  # class index per row, from the decision
    values: np.ndarray | None = None  # [N] regression
    interval: np.ndarray | None = None  # [N, 2] (lower, upper), quantile models only
    gain: float = 1.0  # `Calibrator.gain` on these rows: parity scales its tolerance by it

    def frame(self, profile: Profile) -> pd.DataFrame:
        """The predictions file: id, y_true, label + proba_<i>, or value (+ lower, upper)."""
        out: dict[str, object] = {profile.id: self.split.ids, "y_true": self.y_true}
        if self.proba is not None and self.labels is not None:
            out["label"] = np.asarray(profile.labels, dtype=object)[self.labels]
            out.update({f"proba_{k}": self.proba[:, k] for k in range(self.proba.shape[1])})
        if self.values is not None:
            out["value"] = self.values
        if self.interval is not None:
            out["lower"], out["upper"] = self.interval[:, 0], self.interval[:, 1]
        return pd.DataFrame(out)

    @classmethod
    def read(cls, path: Path, profile: Profile, stage: str) -> Predictions:
        """A model stage's predictions file (`frame`) read back, or a one-line PipelineError."""
        scores = [f"proba_{k}" for k in range(profile.n_classes)]
        outputs = ["label", *scores] if profile.is_classification else ["value"]
        needed = [profile.id, "y_true", *outputs]
        frame = pd.read_parquet(path) if path.is_file() else None
        if frame is None or any(c not in frame for c in needed):
            raise PipelineError(
                f"missing, or without columns {needed}",
                where=str(path),
                fix=f"re-run the model stage: dvc repro {stage}",
            )
        y, ids = frame["y_true"].to_numpy(), frame[profile.id].to_numpy()
        split = Split(path.stem.removeprefix("predictions_"), {}, y, ids)
        if not profile.is_classification:
            bounds = frame[["lower", "upper"]].to_numpy(np.float64) if "lower" in frame else None
            values = frame["value"].to_numpy(np.float64)
            return cls(split, y.astype(np.float64), values=values, interval=bounds)
        proba = frame[scores].to_numpy(np.float64)
        labels = frame["label"].map({label: k for k, label in enumerate(profile.labels)})
        return cls(split, y.astype(np.int64), proba, labels.to_numpy(np.int64))
