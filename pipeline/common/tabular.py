"""scikit-learn models behind `Model`: a subclass names its estimator; preprocessing, ONNX
conversion, skops file and MLflow flavor are done here. Missing strings arrive as "" (its own
category, an empty text), missing numbers as NaN, in training and in the graph alike."""

from __future__ import annotations

import io
import re
import zipfile
from abc import abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from pipeline.common.converters import TOKEN_PATTERN, register_converters
from pipeline.common.errors import PipelineError
from pipeline.common.model import MODEL_FILE, Model, ModelGraph
from serving.schemas import GraphInput, Outputs

if TYPE_CHECKING:
    from onnx import ModelProto
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from pipeline.common.data import Split, Splits
    from pipeline.common.tracking import Run

OPSET = {"": 18, "ai.onnx.ml": 3}
NATIVE_FILE = "model.skops"
IMPORTANCE_TOP = 50  # features kept in the card


@dataclass
class TfidfConfig:
    """TfidfVectorizer arguments (scikit-learn's names) for the folded text column."""

    max_features: int | None = 20000
    min_df: int | float = 2  # documents (int) or share of documents (float)
    max_df: int | float = 1.0
    ngram_range: list[int] = field(default_factory=lambda: [1, 2])
    stop_words: str | None = None  # "english" or null
    sublinear_tf: bool = False
    norm: str | None = "l2"  # l2 | l1 | null
    use_idf: bool = True


@dataclass
class FeaturesConfig:
    """Preprocessing inside the Pipeline; every choice converts to ONNX."""

    # scale: median imputation + standardisation; impute: median only; passthrough: NaN kept
    # (for estimators that handle it, e.g. LightGBM)
    numeric: str = "scale"
    # onehot (unseen levels → all zeros) | ordinal (one code per level, unseen → -1) |
    # target (scikit-learn's cross-fitted TargetEncoder; binary and regression only)
    categorical: str = "onehot"
    min_frequency: int | None = 5  # onehot/ordinal: rarer levels share one column / code
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)


class SklearnModel(Model):
    """A Pipeline of preprocessing (`config.features`, else the defaults) and `estimator()`."""

    # Graph type of the numeric inputs: float64 compares and sums exactly like scikit-learn
    # and LightGBM; scikit-learn's own trees compare float32 and want "float32".
    numeric_dtype: ClassVar[Literal["float32", "float64"]] = "float64"
    requirements: ClassVar[tuple[str, ...]] = ()  # extra pip packages of the MLflow flavor
    pipeline_: Pipeline
    example_: Any

    @abstractmethod
    def estimator(self) -> Any:
        """The final estimator for `self.profile.task` (seeded with `self.seed`)."""

    def features(self) -> FeaturesConfig:
        found = getattr(self.config, "features", None)
        return found if isinstance(found, FeaturesConfig) else FeaturesConfig()

    def columns(self) -> list[str]:
        """The Pipeline's input columns: numeric, categorical, then the folded text."""
        spec = self.profile.features
        return [*spec.model_numeric, *spec.categorical, *filter(None, [spec.folded_text])]

    def preprocessor(self, dense: bool = False) -> ColumnTransformer:
        """Columns in, one matrix out (sparse when TF-IDF makes it so, unless `dense`)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import SimpleImputer
        from sklearn.model_selection import KFold, StratifiedKFold
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import (
            OneHotEncoder,
            OrdinalEncoder,
            StandardScaler,
            TargetEncoder,
        )

        spec, cfg = self.profile.features, self.features()
        parts: list[tuple[str, Any, Any]] = []
        if spec.model_numeric:
            impute = SimpleImputer(strategy="median", keep_empty_features=True)
            numeric: Any = {
                "scale": Pipeline([("impute", impute), ("scale", StandardScaler())]),
                "impute": impute,
                "passthrough": "passthrough",
            }[cfg.numeric]
            parts.append(("numeric", numeric, spec.model_numeric))
        if spec.categorical:
            rare = cfg.min_frequency
            folds = StratifiedKFold if self.profile.is_classification else KFold
            encoder = {
                "onehot": OneHotEncoder(handle_unknown="ignore", min_frequency=rare),
                "ordinal": OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                    min_frequency=rare,
                    dtype=np.float64,
                ),
                "target": TargetEncoder(cv=folds(n_splits=5, shuffle=True, random_state=self.seed)),
            }[cfg.categorical]
            parts.append(("categorical", encoder, spec.categorical))
        if spec.folded_text:  # already lower case, words joined by one space
            args = {**asdict(cfg.tfidf), "ngram_range": tuple(cfg.tfidf.ngram_range)}
            tfidf = TfidfVectorizer(
                lowercase=False, token_pattern=TOKEN_PATTERN, dtype=np.float64, **args
            )
            parts.append(("text", tfidf, spec.folded_text))  # a column name: 1-D input
        return ColumnTransformer(parts, sparse_threshold=0.0 if dense else 0.3)

    def pipeline(self) -> Pipeline:
        from sklearn.pipeline import Pipeline
        from sklearn.utils import get_tags

        final = self.estimator()
        dense = not get_tags(final).input_tags.sparse  # e.g. HistGradientBoosting
        return Pipeline([("features", self.preprocessor(dense)), ("model", final)])

    def check(self) -> None:
        """Refuse preprocessing the graph cannot reproduce, before any training."""
        from sklearn.base import is_classifier, is_regressor

        where = f"configs/{self.name}"
        cfg = self.features()
        for key, allowed in (
            ("numeric", ("scale", "impute", "passthrough")),
            ("categorical", ("onehot", "ordinal", "target")),
        ):
            if getattr(cfg, key) not in allowed:
                raise PipelineError(
                    f"features.{key} '{getattr(cfg, key)}' is not one of {allowed}",
                    where=where,
                    fix="pick one",
                )
        if cfg.categorical == "target" and self.profile.task == "multiclass":
            raise PipelineError(
                "features.categorical 'target' cannot be exported to ONNX for a multiclass task",
                where=where,
                fix="use onehot or ordinal",
            )
        final = self.estimator()
        if self.profile.is_classification:
            fits = is_classifier(final) and hasattr(final, "predict_proba")
        else:
            fits = is_regressor(final)
        if not fits:
            raise PipelineError(
                f"{type(final).__name__} does not suit a {self.profile.task} task",
                where=where,
                fix="name a classifier (with predict_proba) or a regressor to match the task",
            )

    def fit(self, data: Splits, run: Run | None) -> None:
        frame = data.train.frame(self.columns())
        self.example_ = frame.head(5)  # the MLflow flavor's input example
        self.pipeline_ = plain_vocabularies(self.pipeline().fit(frame, data.train.y))

    def predict(self, split: Split) -> np.ndarray:
        frame = split.frame(self.columns())
        if self.profile.is_classification:
            return np.asarray(self.pipeline_.predict_proba(frame), dtype=np.float64)
        return np.asarray(self.pipeline_.predict(frame), dtype=np.float64).reshape(-1)

    def graph_inputs(self) -> list[GraphInput]:
        strings = {*self.profile.features.categorical, self.profile.features.folded_text}
        return [
            GraphInput(name=c, column=c, dtype="string" if c in strings else self.numeric_dtype)
            for c in self.columns()
        ]

    def onnx_model(self, inputs: list[GraphInput]) -> ModelProto:
        """skl2onnx's conversion of the fitted Pipeline (subclasses adjust the result)."""
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

        register_converters()
        kinds = dict(float32=FloatTensorType, float64=DoubleTensorType, string=StringTensorType)
        types = [(i.name, kinds[i.dtype]([None, 1])) for i in inputs]
        final = self.pipeline_.steps[-1][1]
        options = {id(final): {"zipmap": False}} if self.profile.is_classification else {}
        try:
            # A fixed graph name: skl2onnx's default is random, and the bytes should repeat.
            return convert_sklearn(
                self.pipeline_,
                name=self.name,
                initial_types=types,
                options=options,
                target_opset=OPSET,
            )
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PipelineError(
                f"skl2onnx cannot convert the Pipeline: {first}",
                where=f"configs/{self.name}",
                fix="use steps skl2onnx converts, or register a converter for yours",
            ) from None

    def to_onnx(self, out_dir: Path) -> ModelGraph:
        inputs = self.graph_inputs()
        model = self.onnx_model(inputs)
        # skl2onnx makes input names safe and distinct ("a b" → "a_b"); the contract maps them back.
        named = [i.name for i in model.graph.input]
        inputs = [i.model_copy(update={"name": n}) for i, n in zip(inputs, named, strict=True)]
        (out_dir / MODEL_FILE).write_bytes(model.SerializeToString())
        produced = {o.name for o in model.graph.output}
        outputs = (
            Outputs(probabilities="probabilities")
            if self.profile.is_classification
            else Outputs(value="variable", interval="interval" if "interval" in produced else None)
        )
        return ModelGraph(MODEL_FILE, outputs, inputs)

    def save(self, out_dir: Path) -> None:
        dump_model(self.pipeline_, out_dir / NATIVE_FILE)

    def log_model(self, run: Run, out_dir: Path) -> None:
        run.log_sklearn_model(self.pipeline_, self.example_, self.requirements)

    def importance(self) -> dict[str, float]:
        """The top transformed features by feature_importances_, else mean |coef_| over classes."""
        final = self.pipeline_.steps[-1][1]
        values = getattr(final, "feature_importances_", None)
        if values is None and hasattr(final, "coef_"):
            values = np.abs(np.atleast_2d(final.coef_)).mean(axis=0)
        if values is None:
            return {}
        names = map(str, self.pipeline_[:-1].get_feature_names_out())
        ranked = sorted(zip(names, map(float, values), strict=True), key=lambda kv: -kv[1])
        return dict(ranked[:IMPORTANCE_TOP])


def plain_vocabularies(pipeline: Pipeline) -> Pipeline:
    """Vocabularies with Python ints, not NumPy ones: skops writes each NumPy scalar as a file."""
    from sklearn.feature_extraction.text import CountVectorizer

    for _, step, _ in getattr(pipeline[0], "transformers_", []):
        if isinstance(step, CountVectorizer):
            step.vocabulary_ = {word: int(k) for word, k in step.vocabulary_.items()}
    return pipeline


def instantiate(spec: dict[str, Any], seed: int, where: str) -> Any:
    """The estimator a `_target_` config names, seeded unless the config sets random_state."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate
    from omegaconf import OmegaConf

    if "_target_" not in spec:
        raise PipelineError("no '_target_' key", where=where, fix="name an estimator class")
    try:
        estimator = hydra_instantiate(OmegaConf.create(spec), _convert_="all")
    except InstantiationException as exc:
        message = " ".join(str(exc).split())  # hydra puts the cause on a second line
        raise PipelineError(
            message, where=where, fix="check the class path and its arguments"
        ) from None
    if "random_state" in estimator.get_params() and "random_state" not in spec:
        estimator.set_params(random_state=seed)
    return estimator


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# skops names objects and array files by memory address; vectorizers cache id(stop_words).
_ADDRESS = re.compile(r'("__id__": |"file": ")(\d+)')
_STOP_WORDS_ID = re.compile(r'("_stop_words_id": \{[^}]*"content": )"\d+"')


def dump_model(model: Any, path: Path) -> None:
    """`skops.io.dump` with reproducible bytes (addresses numbered in order, fixed timestamps)."""
    import skops.io

    with zipfile.ZipFile(io.BytesIO(skops.io.dumps(model))) as source:
        files = {name: source.read(name) for name in source.namelist()}
    ids: dict[str, str] = {}
    schema = _STOP_WORDS_ID.sub(r'\1"null"', files.pop("schema.json").decode("utf-8"))
    schema = _ADDRESS.sub(lambda m: m[1] + ids.setdefault(m[2], str(len(ids))), schema)
    stem = {f"{old}.npy": f"{new}.npy" for old, new in ids.items()}
    files = {stem.get(name, name): data for name, data in files.items()}
    files["schema.json"] = schema.encode("utf-8")
    with open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as target:
        for name in sorted(files):
            target.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), files[name])
