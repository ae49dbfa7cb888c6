"""Both fitted pipelines convert to ONNX (skl2onnx + onnxmltools) and match predict_proba.

The export stage owns the real export; this guards the choices made here for it (encoders,
TF-IDF tokenization, missing-string marker) against a model that trains but cannot be served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.common.dataset import load_profile
from pipeline.common.tabular import load_split, string_columns
from tests.tabular.conftest import Trained
from tests.tabular.tabular_helpers import hostile_rows, load_model


def _to_onnx(model: Any, profile: Any) -> Any:
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import convert_sklearn, update_registered_converter
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from sklearn.feature_extraction.text import TfidfVectorizer

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    inputs = [(c, FloatTensorType([None, 1])) for c in profile.model_numeric]
    inputs += [(c, StringTensorType([None, 1])) for c in string_columns(profile)]
    options: dict[int, dict[str, Any]] = {id(model): {"zipmap": False}}
    for step in model.named_steps["features"].named_transformers_.values():
        if isinstance(step, TfidfVectorizer):
            options[id(step)] = {"locale": "C"}  # images often lack en_US.UTF-8
    # onnxmltools' LightGBM converter emits ai.onnx.ml 3; skl2onnx 1.20 defaults to 5.
    opsets = {"": 17, "ai.onnx.ml": 3}
    return convert_sklearn(model, initial_types=inputs, options=options, target_opset=opsets)


def _feed(frame: pd.DataFrame, profile: Any) -> dict[str, np.ndarray]:
    feed = {c: frame[c].to_numpy(np.float32).reshape(-1, 1) for c in profile.model_numeric}
    for c in string_columns(profile):
        feed[c] = frame[c].to_numpy(object).reshape(-1, 1)
    return feed


@pytest.mark.parametrize("trained", ["baseline_synthetic", "lightgbm_synthetic"])
def test_onnx_probabilities_match_the_pipeline(
    trained: str, synthetic_dir: Path, request: pytest.FixtureRequest
) -> None:
    import onnxruntime as ort

    fitted: Trained = request.getfixturevalue(trained)
    profile = load_profile(synthetic_dir)
    model = load_model(fitted.paths.model_dir / "model.skops")
    session = ort.InferenceSession(
        _to_onnx(model, profile).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    frame, _, _ = load_split(synthetic_dir, "test", profile)
    frame = pd.concat([frame, hostile_rows(synthetic_dir)], ignore_index=True)
    names = [o.name for o in session.get_outputs()]
    onnx_proba = session.run(None, _feed(frame, profile))[names.index("probabilities")]
    np.testing.assert_allclose(onnx_proba, model.predict_proba(frame), atol=1e-5)
