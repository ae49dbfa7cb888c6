"""Raw API records → model input arrays, through the same feature code the ETL runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.features import FeatureSpec, prepare_records
from serving.text_input import build_texts

Records = list[dict[str, Any]]

_NUMERIC = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


def feature_spec(features: Mapping[str, Any]) -> FeatureSpec:
    """The contract's `features` block as the spec `serving.features` works from."""
    return FeatureSpec.from_json(features)


def model_columns(records: Records, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Cleaned raw columns plus derived features, named as the contract's `inputs[].column`."""
    return prepare_records(records, spec)


def model_texts(records: Records, spec: FeatureSpec, text_spec: Mapping[str, Any]) -> list[str]:
    """The text model's input strings, built from the cleaned columns as in training."""
    return build_texts(prepare_records(records, spec), text_spec)


def column_array(values: np.ndarray | Sequence[Any], dtype: str, missing: str = "") -> np.ndarray:
    """One [N, 1] graph input. Missing strings become `missing` (ONNX strings cannot be null)."""
    if dtype == "string":
        return np.array([[missing if v is None else v] for v in values], dtype=object)
    kind = _NUMERIC.get(dtype)
    if kind is None:
        raise ValueError(f"unsupported model input dtype {dtype!r}")
    return np.asarray(values, dtype=kind).reshape(-1, 1)
