"""The typed files that cross stage boundaries (docs/architecture.md), one definition each: here,
not in `pipeline/`, because the server reads the contract without importing training code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

Task = Literal["binary", "multiclass", "regression"]
SPLITS = ("train", "val", "test")
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")
TEXT_STATS = ("chars", "words", "exclaims", "digits")
DERIVED_SEP = "__"  # a derived column is f"{source}{DERIVED_SEP}{part}", e.g. created_at__hour


class Typed(BaseModel):
    """Strict base: unknown keys are an error, so nobody writes a key that nobody reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(Typed):
    """Which raw columns get which cleaning, and which features are derived from them."""

    numeric: list[str] = []  # booleans included, as 0/1
    boolean: list[str] = []  # numeric columns that arrive as true/false
    bounds: dict[str, tuple[float | None, float | None]] = {}
    categorical: list[str] = []
    datetime: list[str] = []
    # strptime formats per datetime column; ISO 8601 is always accepted as well
    datetime_formats: dict[str, str] = {}
    # naive datetimes are in this zone; aware ones are converted to it; parts are computed in it
    timezone: str = "UTC"
    datetime_parts: list[str] = list(DATETIME_PARTS)
    text: str | None = None
    text_stats: list[str] = list(TEXT_STATS)

    @property
    def raw_inputs(self) -> list[str]:
        """The fields a caller sends, in a stable order."""
        return [*self.numeric, *self.categorical, *self.datetime, *self.text_column]

    @property
    def text_column(self) -> list[str]:
        return [self.text] if self.text else []

    @property
    def derived(self) -> list[str]:
        """Derived numeric features: calendar parts of datetimes, text statistics."""
        names = [f"{c}{DERIVED_SEP}{p}" for c in self.datetime for p in self.datetime_parts]
        return names + [f"{t}{DERIVED_SEP}{s}" for t in self.text_column for s in self.text_stats]

    @property
    def folded_text(self) -> str | None:
        """The derived string column TF-IDF steps read (see `serving.features.fold_text`)."""
        return f"{self.text}{DERIVED_SEP}folded" if self.text else None

    @property
    def model_numeric(self) -> list[str]:
        """Numeric model inputs: raw numeric columns, then derived features."""
        return [*self.numeric, *self.derived]


class ColumnStats(Typed):
    """What the ETL saw in one column of the kept rows."""

    role: Literal["id", "numeric", "categorical", "datetime", "text", "derived"]
    null_rate: float
    min: float | str | None = None  # numbers; ISO text for datetimes
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    n_levels: int | None = None  # categorical
    level_counts: dict[str, int] | None = None  # most frequent first, at most etl.max_levels
    empty_rate: float | None = None  # text


class TargetStats(Typed):
    """Regression: the target's distribution in one split (in the target's own units)."""

    count: int
    min: float
    max: float
    mean: float
    std: float
    quantiles: dict[str, float]  # "0.05" … "0.95"


class SplitSettings(Typed):
    method: Literal["stratified", "time", "hash"]
    train: float
    val: float
    test: float
    time_column: str | None = None


class Profile(Typed):
    """`data/processed/profile.json`: what the ETL produced and learned about the data."""

    schema_version: Literal[1] = 1
    data: str  # the data config's name
    source: str  # the file, glob or URL (query string removed)
    format: Literal["csv", "parquet", "jsonl"]
    task: Task
    target: str  # the user's target column
    target_transform: Literal["none", "log1p"] = "none"  # regression: models learn log1p(y)
    id: str  # id column of the splits (`row_id` when the data has none)
    labels: list[str] = []  # classes, in label-index order; [] for regression
    positive: str | None = None  # binary: the class whose probability is thresholded
    features: FeatureSpec
    rows_in: int
    rows: dict[str, int]  # train, val, test, rejected
    rejected_reasons: dict[str, int] = {}
    columns: dict[str, ColumnStats] = {}
    label_distribution: dict[str, dict[str, int]] = {}  # split → counts
    target_stats: dict[str, TargetStats] = {}  # split → stats
    split: SplitSettings
    seed: int

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"


class GraphInput(Typed):
    """One `[N, 1]` graph input of a tabular model and the prepared column that feeds it."""

    name: str  # as the graph names it
    column: str  # raw or derived column (`serving.features.prepare_columns`)
    dtype: Literal["float32", "float64", "int64", "string"]  # nulls: NaN / "" for strings


class TextField(Typed):
    name: str
    type: Literal["number", "category"]


class TextInput(Typed):
    """How a text model's input string is built: fields as `name: value | ` before the text."""

    text: str
    fields: list[TextField] = []


class TokenizerSpec(Typed):
    """The `tokenizers` JSON a text model needs; truncation to `max_length` is built in."""

    file: str  # relative to the model's directory
    sha256: str
    max_length: int
    pad_id: int
    pad_left: bool = False


class Outputs(Typed):
    """Graph output names."""

    probabilities: str | None = None  # classification: [N, C]
    value: str | None = None  # regression: [N, 1]
    interval: str | None = None  # quantile regression: [N, 2] (lower, upper)


class Decision(Typed):
    """How a label is chosen from (calibrated) probabilities."""

    kind: Literal["threshold", "argmax"]
    objective: str  # binary: the threshold is chosen for it on the validation split
    threshold: float | None = None  # binary: the positive class when its probability >= this
    positive: str | None = None  # binary
    # multiclass: argmax of probabilities × these (all 1 without a class-prior adjustment)
    class_weights: list[float] | None = None


class Calibration(Typed):
    method: Literal["none", "sigmoid", "isotonic"]
    fitted_on: Literal["val"] = "val"


class MlflowRef(Typed):
    """The MLflow run and registered version (no tracking URI: it can carry credentials)."""

    run_id: str
    experiment_id: str
    registered_model: str | None = None
    version: str | None = None


class ModelEntry(Typed):
    """Everything needed to run one exported model: in the card and, copied, in the contract."""

    name: str
    kind: Literal["tabular", "text"]  # tabular: one input per column; text: tokenizer → ids
    file: str  # the ONNX graph, relative to the directory holding this entry's file
    sha256: str
    inputs: list[GraphInput] = []  # tabular
    text_input: TextInput | None = None  # text
    tokenizer: TokenizerSpec | None = None  # text
    outputs: Outputs
    decision: Decision | None = None  # classification
    calibration: Calibration | None = None  # classification
    metrics: dict[str, dict[str, float]] = {}  # split → metric → value
    mlflow: MlflowRef | None = None
    version: str = "unversioned"  # the registered version, when registration ran


class ParityCheck(Typed):
    """One comparison of an ONNX graph with its reference on named rows."""

    model: str
    name: str
    rows: int
    max_abs_diff: float
    tolerance: float
    label_mismatches: int = 0  # differing labels where the reference is not a tie
    passed: bool


class ParityReport(Typed):
    """Every parity check of a stage; `passed` only when all of them passed."""

    schema_version: Literal[1] = 1
    checks: list[ParityCheck]
    passed: bool


class ModelCard(Typed):
    """`models/trained/<name>/card.json`: one model stage's result, read by export and report."""

    schema_version: Literal[1] = 1
    name: str
    task: Task
    labels: list[str] = []  # the graph's probability columns, compared with the data's by the gate
    skipped: str | None = None  # the reason the stage trained nothing (e.g. no text column)
    entry: ModelEntry | None = None  # None when skipped
    parity: ParityReport | None = None  # the ONNX graph against the native model
    importance: dict[str, float] = {}  # feature → importance
    params: dict[str, float | int | str | bool | None] = {}


class FieldSchema(Typed):
    """One raw input field as a caller sends it."""

    name: str
    type: Literal["number", "boolean", "category", "datetime", "text"]
    nullable: bool
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None  # seen in training (others are accepted: "unseen")
    max_length: int | None = None  # strings
    datetime_format: str | None = None  # accepted besides ISO 8601


class Incumbent(Typed):
    name: str
    version: str
    score: float | None  # None: could not be re-scored on the current validation split


class Promotion(Typed):
    """The champion gate's decision, with both scores and the reason."""

    policy: Literal["always", "if_better", "never"]
    metric: str  # e.g. val.roc_auc
    candidate: str  # the best model of this run
    candidate_score: float
    incumbent: Incumbent | None = None
    promoted: bool
    reason: str


class Lineage(Typed):
    git_commit: str | None
    git_dirty: bool | None
    data: dict[str, str]  # processed data path → DVC-style md5
    params: str | None  # md5 of params.yaml
    models: dict[str, str] = {}  # model → md5 of its trained directory


class Contract(Typed):
    """`models/export/contract.json`: all the server and batch scoring read besides the files."""

    schema_version: Literal[1] = 1
    task: Task
    target: str
    labels: list[str] = []
    id: str | None = None  # a caller may send it; it is echoed back
    input_schema: list[FieldSchema]
    features: FeatureSpec
    models: dict[str, ModelEntry]
    champion: str  # the model served when a request names none
    champion_metric: str
    promotion: Promotion | None = None
    skipped: dict[str, str] = {}  # model → why it was not exported
    lineage: Lineage | None = None


T = TypeVar("T", bound=Typed)
CONTRACT_FILE = "contract.json"
_REWRITER = {
    "Profile": "the ETL: dvc repro etl",
    "ModelCard": "the model's stage: dvc repro <model>",
    "ParityReport": "the export: dvc repro export",
    "Contract": "the export: dvc repro export",
}


class FileError(Exception):
    """A typed file is missing or does not match its definition; the message says the fix."""


def read_file(path: str | os.PathLike[str], kind: type[T]) -> T:
    """Read and validate a typed file; raise FileError in one line naming the file and the fix."""
    path = Path(path)
    fix = f"fix: re-run {_REWRITER.get(kind.__name__, 'the stage that writes it')}"
    if not path.is_file():
        raise FileError(f"{path}: not found; {fix}")
    try:
        return kind.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise FileError(f"{path}: {where}: {first['msg']}; {fix}") from None


def load_contract(models_dir: Path) -> Contract:
    """The export's contract; FileError in one line (with the fix) when it cannot be served."""
    if not models_dir.is_dir():
        raise FileError(
            f"{models_dir}: models directory not found; fix: run `make repro` (or "
            "`dvc repro export`) first, or pass --models"
        )
    contract = read_file(models_dir / CONTRACT_FILE, Contract)
    if contract.champion not in contract.models:
        raise FileError(
            f"{models_dir / CONTRACT_FILE}: champion {contract.champion!r} is not "
            f"one of the models {sorted(contract.models)}; fix: re-run the export"
        )
    return contract


def dump(obj: Typed) -> str:
    """Pretty, key-sorted JSON text (stable diffs)."""
    return json.dumps(obj.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
