"""Model columns whose names are not ONNX-style identifiers still reach the right graph inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.export.tabular import GraphInput, convert_pipeline, feeds

# Spreadsheet-style names, one clash after renaming, a leading digit and skl2onnx's output names.
NUMERIC = ["Weight (kg)", "Weight__kg_", "2nd visit", "label", "probabilities"]
CATEGORY = "Größe Farbe"


def test_graph_inputs_are_renamed_in_the_contract_and_fed_from_their_columns() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.normal(size=80) for c in NUMERIC})
    frame[CATEGORY] = rng.choice(["rot", "blau"], 80)
    y = (frame["Weight (kg)"] + (frame[CATEGORY] == "rot") > 0.5).astype(int)
    pre = ColumnTransformer(
        [
            ("n", StandardScaler(), NUMERIC),
            ("c", OneHotEncoder(handle_unknown="ignore"), [CATEGORY]),
        ]
    )
    pipeline = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, y)
    given = [GraphInput(c, c, "float32") for c in NUMERIC] + [
        GraphInput(CATEGORY, CATEGORY, "string")
    ]

    model, inputs = convert_pipeline(pipeline, given, 17, 3, "en_US")

    assert [i.column for i in inputs] == [*NUMERIC, CATEGORY]
    assert [i.name for i in inputs] == [i.name for i in model.graph.input]
    assert len({i.name for i in inputs}) == len(inputs)
    assert inputs[0].name == "Weight__kg_" and inputs[1].name != "Weight__kg_"
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (proba,) = session.run(["probabilities"], feeds(frame, inputs))
    np.testing.assert_allclose(proba, pipeline.predict_proba(frame), atol=1e-5)
