"""What the tabular model stages (baseline, LightGBM) share: their input frame and their outputs.

Input frame (also what their ONNX exports take): one `[N, 1]` column per model input, in
`model_columns(profile)` order — numeric inputs as float64 with NaN for missing, categorical and
text inputs as Python strings with "" for missing. ONNX string tensors cannot hold a null, so ""
is the missing-string marker everywhere: in training, in the exported graph and in serving. The
fitted pipelines treat "" as its own category and as an empty text.

Outputs: `save_model` writes `models/<name>/` (model.skops with reproducible bytes, predictions,
evaluation.json, run.json), `metrics/<name>.json` and `plots/<name>/`, and logs them to MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.common.dataset import LABEL, SPLITS, Profile, load_profile, split_path
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json

if TYPE_CHECKING:
    from pipeline.common.tracking import Run

MISSING_STRING = ""
EVAL_SPLITS = ("val", "test")
RUN_KEYS = ("run_id", "experiment_id", "tracking_uri", "registered_model", "version")


@dataclass
class TfidfConfig:
    """TfidfVectorizer arguments for the text column (the `tfidf` key of both tabular stages)."""

    max_features: int = 20000
    min_df: int = 2
    ngram_range: list[int] = field(default_factory=lambda: [1, 2])
    # ASCII words of any length: what skl2onnx's Tokenizer matches. scikit-learn's default drops
    # one-letter words, the ONNX graph keeps them, and the bigrams of the two then differ.
    token_pattern: str = "[a-zA-Z0-9_]+"
    # false: skl2onnx 1.20 converts sublinear_tf=True with up to 0.03 error per TF-IDF value.
    sublinear_tf: bool = False


def build_tfidf(config: TfidfConfig) -> Any:
    """The TF-IDF step both tabular pipelines use for the text column (float64, ONNX-safe)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        max_features=config.max_features,
        min_df=config.min_df,
        ngram_range=(config.ngram_range[0], config.ngram_range[1]),
        token_pattern=config.token_pattern,
        sublinear_tf=config.sublinear_tf,
        dtype=np.float64,
    )


def string_columns(profile: Profile) -> list[str]:
    """Categorical inputs followed by the text column, if any."""
    return [*profile.categorical, *([profile.text] if profile.text else [])]


def model_columns(profile: Profile) -> list[str]:
    """Every tabular model input, in the order the pipelines and the ONNX graphs expect."""
    return [*profile.model_numeric, *string_columns(profile)]


def model_frame(df: pd.DataFrame, profile: Profile, where: str = "input") -> pd.DataFrame:
    """Select and type the model inputs of `df` (extra columns are ignored)."""
    missing = [c for c in model_columns(profile) if c not in df.columns]
    if missing:
        raise PipelineError(
            f"missing model input columns {missing}",
            where=where,
            fix="re-run the ETL so the splits match profile.json",
        )
    columns: dict[str, np.ndarray] = {}
    for col in profile.model_numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        columns[col] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    for col in string_columns(profile):
        text = df[col].astype("string").fillna(MISSING_STRING)
        columns[col] = text.to_numpy(dtype=object)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(df)))
    # Keep Python-str object columns: scikit-learn and skl2onnx both expect them.
    for col in string_columns(profile):
        frame[col] = frame[col].astype(object)
    return frame


def load_split(
    processed_dir: Path, split: str, profile: Profile
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(model input frame, int class indices, ids) of one processed split."""
    path = split_path(split, processed_dir)
    if not path.is_file():
        raise PipelineError(
            f"split '{split}' not found", where=str(path), fix="run the ETL first: dvc repro etl"
        )
    df = pd.read_parquet(path)
    for required in (LABEL, profile.id):
        if required not in df.columns:
            raise PipelineError(
                f"column '{required}' missing", where=str(path), fix="re-run the ETL"
            )
    y = df[LABEL].to_numpy(dtype=np.int64)
    return model_frame(df, profile, where=str(path)), y, df[profile.id].to_numpy()


@dataclass(frozen=True)
class ModelPaths:
    """Where a model stage writes: `models/<name>/`, `metrics/<name>.json`, `plots/<name>/`."""

    model_dir: Path
    metrics_path: Path
    plots_dir: Path

    @classmethod
    def for_model(cls, name: str, root: Path = Path(".")) -> ModelPaths:
        return cls(root / "models" / name, root / "metrics" / f"{name}.json", root / "plots" / name)


@dataclass(frozen=True)
class Splits:
    """Model inputs, class indices and ids of the train/val/test splits."""

    profile: Profile
    frames: dict[str, pd.DataFrame]
    labels: dict[str, np.ndarray]
    ids: dict[str, np.ndarray]

    @classmethod
    def load(cls, processed_dir: Path) -> Splits:
        profile = load_profile(processed_dir)
        frames, labels, ids = {}, {}, {}
        for split in SPLITS:
            frames[split], labels[split], ids[split] = load_split(processed_dir, split, profile)
        if len(np.unique(labels["train"])) < 2:
            raise PipelineError(
                "the train split holds a single class",
                where=str(split_path("train", processed_dir)),
                fix="check the target column and the split settings of the data config",
            )
        return cls(profile, frames, labels, ids)

    def predictions(self, model: Any, splits: Sequence[str] = EVAL_SPLITS) -> dict[str, Any]:
        """`SplitPredictions` of a fitted classifier on the evaluation splits."""
        from pipeline.common.evaluation import SplitPredictions

        return {
            split: SplitPredictions(
                ids=self.ids[split],
                y_true=self.labels[split],
                proba=_full_proba(model, self.frames[split], self.profile.n_classes),
            )
            for split in splits
        }


def _full_proba(model: Any, frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    # A class missing from the train split gets no column from predict_proba; put it back at 0.
    proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
    classes = np.asarray(model.classes_, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((len(frame), n_classes), dtype=np.float64)
    full[:, classes] = proba
    return full


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int]) -> Any:
    """Replace skops' memory-address ids (and the array file names built from them) by
    first-seen order, so the same model always serialises to the same bytes."""
    if isinstance(node, list):
        return [_renumber(item, ids) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "_stop_words_id" and isinstance(value, dict):
            # scikit-learn's vectorizers cache id(stop_words), a memory address, to skip a
            # re-check; dropping the cache keeps the bytes independent of the process.
            value = {**value, "content": "null"}
        if key == "__id__" and isinstance(value, int):
            value = ids.setdefault(value, len(ids))
        elif key == "file" and isinstance(value, str) and value.removesuffix(".npy").isdigit():
            value = f"{ids.setdefault(int(value.removesuffix('.npy')), len(ids))}.npy"
        out[key] = _renumber(value, ids)
    return out


def dump_model(model: Any, path: Path) -> None:
    """`skops.io.dump` with reproducible bytes (stable ids, fixed zip timestamps, no pickle)."""
    import io
    import json
    import zipfile

    import skops.io

    ids: dict[int, int] = {}
    with zipfile.ZipFile(io.BytesIO(skops.io.dumps(model))) as source:
        schema = _renumber(json.loads(source.read("schema.json")), ids)
        entries = {"schema.json": json.dumps(schema, indent=2).encode("utf-8")}
        for name in source.namelist():
            stem = name.removesuffix(".npy")
            if name != "schema.json":
                new = f"{ids[int(stem)]}.npy" if stem.isdigit() and int(stem) in ids else name
                entries[new] = source.read(name)
    with open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as target:
        for name in sorted(entries):
            target.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), entries[name])


def save_model(
    name: str,
    model: Any,
    splits: Splits,
    paths: ModelPaths,
    run: Run | None,
    feature_importance: Mapping[str, float] | None = None,
    write_extra: Callable[[Path], None] | None = None,
    requirements: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Evaluate a fitted pipeline and write `models/<name>/` (model.skops, predictions,
    evaluation.json, run.json), metrics and plots; log all of it to the MLflow run."""
    from pipeline.common.evaluation import evaluate_model

    with atomic_dir(paths.model_dir) as tmp:
        dump_model(model, tmp / "model.skops")
        if write_extra is not None:
            write_extra(tmp)
        predictions = splits.predictions(model)
        metrics = evaluate_model(
            name,
            splits.profile,
            predictions,
            tmp,
            paths.metrics_path,
            paths.plots_dir,
            feature_importance,
        )
        if run is not None:
            run.log_metrics(metrics)
            run.log_artifacts(paths.plots_dir, "plots")
            run.log_artifacts(tmp / "evaluation.json")
            run.log_dict(splits.profile.to_json(), "profile.json")
            example = splits.frames["train"].head(5)
            run.log_sklearn_model(model, example, name, requirements)
        summary = run.summary() if run is not None else dict.fromkeys(RUN_KEYS)
        write_json(tmp / "run.json", summary)
    return metrics
