"""scikit-learn Pipelines (baseline, LightGBM) to ONNX: one `[N, 1]` graph input per model column.

The fitted Pipeline is exported as a whole, preprocessing included, so the served graph takes the
model columns (raw fields and derived features) and returns `probabilities` `[N, n_classes]`.
Strings cannot be null in ONNX: the contract says a null string is sent as "" and a null number as
NaN, and the copy of the Pipeline that gets converted treats "" as missing.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.dataset import Profile
from pipeline.common.errors import PipelineError
from pipeline.export.converters import register_converters

NULL_STRING = ""  # what a null category or text becomes in front of the graph
# Modules whose classes a model file may contain; anything else needs export.trusted_types.
TRUSTED_MODULES = ("sklearn.", "lightgbm.", "numpy.", "scipy.", "builtins.", "collections.")
# scikit-learn's default token pattern in RE2 syntax (ONNX Runtime's Tokenizer): maximal runs of
# two or more Unicode word characters, as `(?u)\b\w\w+\b` finds them.
SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
RE2_TOKEN_PATTERN = r"[\pL\pN_]{2,}"


@dataclass(frozen=True)
class GraphInput:
    """One graph input: its name, the column it is fed from and its element type."""

    name: str  # the graph's (convert_pipeline gives the name skl2onnx chose)
    column: str
    dtype: str  # "float32" | "float64" | "string"

    def to_json(self) -> dict[str, str]:
        null = NULL_STRING if self.dtype == "string" else "NaN"
        return {"name": self.name, "column": self.column, "dtype": self.dtype, "null": null}


def load_pipeline(path: Path, extra_trusted: list[str]) -> Any:
    """Load a skops model file, trusting only scikit-learn/LightGBM/NumPy types (never pickle)."""
    import skops.io

    if not path.is_file():
        raise PipelineError(
            "model file not found", where=str(path), fix="train it first: dvc repro"
        )
    untrusted = skops.io.get_untrusted_types(file=path)
    unknown = [t for t in untrusted if not t.startswith(TRUSTED_MODULES) and t not in extra_trusted]
    if unknown:
        raise PipelineError(
            f"model file holds types outside scikit-learn/LightGBM/NumPy: {unknown}",
            where=str(path),
            fix="add them to export.trusted_types if you wrote them (they also need an ONNX "
            "converter)",
        )
    return skops.io.load(path, trusted=untrusted)


def graph_inputs(pipeline: Any, profile: Profile) -> list[GraphInput]:
    """The model columns in fit order, typed from the profile (numbers or strings)."""
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None:
        raise PipelineError(
            "the Pipeline was not fitted on a DataFrame, so its input columns are unknown",
            where=type(pipeline).__name__,
            fix="fit the model stage's Pipeline on a pandas DataFrame of the model columns",
        )
    strings = {*profile.categorical, *([profile.text] if profile.text else [])}
    # Tree ensembles split on exact float64 thresholds: feed them float64 (see double_trees).
    number = "float64" if hasattr(pipeline.steps[-1][1], "booster_") else "float32"
    numbers = set(profile.model_numeric)
    inputs = []
    for column in map(str, names):
        if column not in strings | numbers:
            raise PipelineError(
                f"model column '{column}' is neither numeric, categorical nor text in the profile",
                where="data/processed/profile.json",
                fix="train on profile.model_numeric + categorical + text columns only",
            )
        inputs.append(GraphInput(column, column, "string" if column in strings else number))
    return inputs


def native_frame(frame: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """The native Pipeline's input, built exactly as the model stages build it."""
    from pipeline.common.tabular import model_frame

    return model_frame(frame, profile)


def feeds(frame: pd.DataFrame, inputs: list[GraphInput]) -> dict[str, np.ndarray]:
    """ONNX Runtime feeds for a frame: numbers with NaN for nulls, strings with "" for nulls."""
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        values = frame[spec.column]
        if spec.dtype != "string":
            array = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            out[spec.name] = array.astype(spec.dtype).reshape(-1, 1)
        else:
            out[spec.name] = np.array(
                [[NULL_STRING if _is_null(v) else str(v)] for v in values.to_list()], dtype=object
            )
    return out


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _estimators(obj: Any) -> Iterator[Any]:
    """Every estimator inside a Pipeline / ColumnTransformer / FeatureUnion, depth first."""
    yield obj
    children: list[Any] = []
    if hasattr(obj, "steps"):
        children = [step for _, step in obj.steps]
    elif hasattr(obj, "transformers_"):
        children = [t for _, t, _ in obj.transformers_]
    elif hasattr(obj, "transformer_list"):
        children = [t for _, t in obj.transformer_list]
    for child in children:
        if not isinstance(child, str):
            yield from _estimators(child)


def onnx_ready_copy(pipeline: Any) -> Any:
    """A copy whose string handling matches the graph's convention: "" stands for missing."""
    from sklearn.impute import SimpleImputer

    clone = copy.deepcopy(pipeline)
    for est in _estimators(clone):
        stats = getattr(est, "statistics_", None)
        if isinstance(est, SimpleImputer) and stats is not None and stats.dtype == object:
            est.missing_values = NULL_STRING
        for i, cats in enumerate(getattr(est, "categories_", None) or []):
            if cats.dtype == object and any(_is_null(c) for c in cats):
                est.categories_[i] = np.array(
                    [NULL_STRING if _is_null(c) else c for c in cats], dtype=object
                )
    return clone


def _options(pipeline: Any, locale: str) -> dict[int, dict[str, Any]]:
    from sklearn.feature_extraction.text import CountVectorizer

    options: dict[int, dict[str, Any]] = {id(pipeline.steps[-1][1]): {"zipmap": False}}
    for est in _estimators(pipeline):
        if isinstance(est, CountVectorizer):  # TfidfVectorizer included
            pattern = est.token_pattern
            tokenexp = RE2_TOKEN_PATTERN if pattern == SKLEARN_TOKEN_PATTERN else pattern
            options[id(est)] = {"tokenexp": tokenexp, "locale": locale}
    return options


def convert_pipeline(
    pipeline: Any, inputs: list[GraphInput], opset: int, ml_opset: int, locale: str
) -> tuple[Any, list[GraphInput]]:
    """Convert a fitted Pipeline to an ONNX ModelProto with `label` and `probabilities` outputs.

    Returns the model and the inputs named as the graph names them: skl2onnx matches the
    Pipeline's columns by their own names but renames the graph inputs to word characters
    ("Review Text" → "Review_Text", "label" → "label1" beside its own outputs), so the contract
    maps each graph name back to the column it is fed from.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    register_converters()
    ready = onnx_ready_copy(pipeline)
    kinds = {"float32": FloatTensorType, "float64": DoubleTensorType, "string": StringTensorType}
    types = [(i.name, kinds[i.dtype]([None, 1])) for i in inputs]
    try:
        model = convert_sklearn(
            ready,
            initial_types=types,
            options=_options(ready, locale),
            target_opset={"": opset, "ai.onnx.ml": ml_opset},
        )
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(
            f"skl2onnx cannot convert the Pipeline: {first}",
            where=type(ready.steps[-1][1]).__name__,
            fix="use steps skl2onnx supports (imputers, scalers, encoders, TF-IDF, linear and "
            "tree models) or register a converter",
        ) from None
    named = [i.name for i in model.graph.input]
    if len(named) != len(inputs):
        raise PipelineError(
            f"skl2onnx made {len(named)} graph inputs for {len(inputs)} model columns",
            where=type(ready.steps[-1][1]).__name__,
            fix="give every model column a name of its own in the data",
        )
    if any(i.dtype == "float64" for i in inputs):
        double_trees(model, ready.steps[-1][1])
    return model, [dataclasses.replace(i, name=n) for i, n in zip(inputs, named, strict=True)]


def double_trees(model: Any, estimator: Any) -> int:
    """Give LightGBM's tree ensemble its exact float64 thresholds and leaf values.

    LightGBM compares float64 inputs with float64 thresholds. The converter writes them as
    float32, so a value between a threshold and its float32 rounding went the other way (rows
    exactly on a threshold disagreed). With float64 graph inputs and `*_as_tensor` float64
    attributes, ONNX Runtime compares and sums in float64 like LightGBM. Returns the nodes set.
    """
    from onnx import TensorProto, helper, numpy_helper

    booster = getattr(estimator, "booster_", None)
    if booster is None:
        return 0
    exact = _lightgbm_thresholds(booster.dump_model()["tree_info"])
    changed = 0
    for node in model.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        attrs = {a.name: a for a in node.attribute}
        keys = zip(
            attrs["nodes_treeids"].ints,
            attrs["nodes_featureids"].ints,
            attrs["nodes_modes"].strings,
            attrs["nodes_values"].floats,
            strict=True,
        )
        values = []
        for tree, feature, mode, value in keys:
            t64 = exact.get((tree, feature, value)) if mode == b"BRANCH_LEQ" else None
            if mode == b"BRANCH_LEQ" and t64 is None:
                raise PipelineError(
                    f"tree {tree}: no float64 threshold for feature {feature} near {value}",
                    where="lightgbm.onnx",
                    fix="re-train; the booster dump and the graph differ",
                )
            values.append(value if t64 is None else t64)
        weights = list(attrs["class_weights"].floats)
        for name in ("nodes_values", "class_weights"):
            node.attribute.remove(attrs[name])
        for name, array in (("nodes_values", values), ("class_weights", weights)):
            tensor = numpy_helper.from_array(np.array(array, dtype=np.float64))
            node.attribute.append(helper.make_attribute(f"{name}_as_tensor", tensor))
        changed += len(values)
    for output in model.graph.output:  # the ensemble's probabilities are float32 whatever T is
        if output.name == "probabilities":
            output.type.tensor_type.elem_type = TensorProto.FLOAT
    return changed


def _lightgbm_thresholds(tree_info: list[dict[str, Any]]) -> dict[tuple[int, int, float], float]:
    """(tree, feature, float32 threshold) → float64 threshold for every numerical split."""
    out: dict[tuple[int, int, float], float] = {}
    for tree_id, tree in enumerate(tree_info):  # keyed as the converter writes the graph
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" not in node:
                continue
            if node.get("decision_type") == "<=":
                t64 = float(node["threshold"])
                with np.errstate(over="ignore"):  # 1e300 thresholds are inf in float32
                    t32 = float(np.float32(t64))
                out[(tree_id, int(node["split_feature"]), t32)] = t64
            stack.extend(node[k] for k in ("left_child", "right_child") if k in node)
    return out
