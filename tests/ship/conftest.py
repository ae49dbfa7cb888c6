"""Fixtures for the shipping tests: tiny ONNX models and an export folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

LABELS = ["no", "yes"]


def tabular_model_bytes() -> bytes:
    """A scikit-learn pipeline (one-hot a string column, pass a float through) as ONNX."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=60).astype(np.float32),
            "channel": rng.choice(["email", "phone"], size=60),
        }
    )
    y = (frame["amount"] > 0).astype(int)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])],
                    remainder="passthrough",
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(frame, y)
    onx = to_onnx(
        model,
        initial_types=[
            ("amount", FloatTensorType([None, 1])),
            ("channel", StringTensorType([None, 1])),
        ],
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    return onx.SerializeToString()


def text_model_bytes(n_classes: int = 2) -> bytes:
    """A stand-in transformer: int64 ids and mask [batch, seq] → logits [batch, n_classes]."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [1, n_classes], np.linspace(-1, 1, n_classes).tolist()
    )
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids_f", "mask_f"], ["masked"]),
        helper.make_node("ReduceMean", ["masked"], ["pooled"], keepdims=1, axes=[1]),
        helper.make_node("MatMul", ["pooled", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "text",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="session")
def onnx_models() -> dict[str, bytes]:
    return {"lightgbm": tabular_model_bytes(), "text_model": text_model_bytes()}


def write_export(export_dir: Path, models: dict[str, bytes]) -> dict[str, Any]:
    """models/export as the export stage writes it: ONNX files plus contract.json."""
    export_dir.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    for name, blob in models.items():
        (export_dir / f"{name}.onnx").write_bytes(blob)
        entries[name] = {
            "file": f"{name}.onnx",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "kind": "text" if name == "text_model" else "tabular",
            "mlflow": {"run_id": f"run-{name}", "registered_model": name, "version": "3"},
        }
    contract = {
        "schema_version": 1,
        "task": "binary",
        "labels": LABELS,
        "id": "ticket_id",
        "models": entries,
        "champion": "lightgbm",
        "champion_metric": "val.roc_auc",
        "skipped": {"text_model": "the data has no text column"},
        "lineage": {
            "git_commit": "0123abc",
            "git_dirty": False,
            "data": {"data/processed": "md5-data"},
            "params": "md5-params",
        },
    }
    (export_dir / "contract.json").write_text(json.dumps(contract), encoding="utf-8")
    return contract


@pytest.fixture
def export_dir(tmp_path: Path, onnx_models: dict[str, bytes]) -> Path:
    directory = tmp_path / "models" / "export"
    write_export(directory, onnx_models)
    return directory
