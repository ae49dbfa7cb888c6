"""The processed-data contract between the ETL and every model stage.

The ETL writes `data/processed/{train,val,test}.parquet` and `data/processed/profile.json`.
Each split holds, per row: the id column, the raw input columns after cleaning (the same fields a
caller sends to the API), the derived numeric features computed by `serving.features`, and
`LABEL` (the class index into `Profile.labels`). Model stages read splits only through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError

PROCESSED_DIR = Path("data/processed")
PROFILE_FILE = "profile.json"
SPLITS = ("train", "val", "test")
LABEL = "__label__"  # class index column; reserved so it never clashes with a user's column


@dataclass(frozen=True)
class Profile:
    """What the ETL learned about the data; read by models, export, serving and the report."""

    task: str  # "binary" | "multiclass"
    target: str  # the user's target column name
    id: str  # id column in the splits (the ETL creates `row_id` when the data has none)
    labels: list[str]  # class names; LABEL holds the index into this list
    numeric: list[str]  # raw numeric columns (booleans included, as 0/1)
    categorical: list[str]  # raw categorical columns (normalised spelling)
    text: str | None  # the free-text column, if any
    datetime: list[str]  # raw datetime columns
    derived: list[str]  # numeric features derived from raw columns by serving.features
    rows: dict[str, int]  # rows per split, plus "rejected"
    columns: dict[str, Any] = field(default_factory=dict)  # per-column stats (types, nulls, ...)
    label_distribution: dict[str, dict[str, int]] = field(default_factory=dict)  # split → counts
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the ETL records

    @property
    def raw_inputs(self) -> list[str]:
        """The fields a caller sends: every raw model input, in a stable order."""
        text = [self.text] if self.text else []
        return [*self.numeric, *self.categorical, *self.datetime, *text]

    @property
    def model_numeric(self) -> list[str]:
        """Numeric model inputs: raw numeric columns followed by derived features."""
        return [*self.numeric, *self.derived]

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Profile:
        known = {k: v for k, v in payload.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def load_profile(processed_dir: Path = PROCESSED_DIR) -> Profile:
    """Read the profile written by the ETL, with a clear error when the ETL has not run."""
    path = Path(processed_dir) / PROFILE_FILE
    if not path.is_file():
        raise PipelineError(
            "profile not found", where=str(path), fix="run the ETL first: dvc repro etl"
        )
    return Profile.from_json(json.loads(path.read_text(encoding="utf-8")))


def split_path(split: str, processed_dir: Path = PROCESSED_DIR) -> Path:
    """Path of one split's Parquet file."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return Path(processed_dir) / f"{split}.parquet"
