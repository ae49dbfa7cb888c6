"""Fixtures for the shipping tests: tiny ONNX models, an export folder and a report project."""

from __future__ import annotations

import hashlib
import io
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


@pytest.fixture(scope="session")
def png_factory() -> Any:
    """Small real PNGs drawn with matplotlib, one per title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def make(title: str) -> bytes:
        fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
        ax.plot([0, 1], [0, 1])
        ax.set_title(title)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    return make


METRICS = {
    "baseline": {
        "val": {
            "accuracy": 0.81,
            "macro_f1": 0.74,
            "log_loss": 0.41,
            "roc_auc": 0.86,
            "pr_auc": 0.62,
            "brier": 0.13,
        },
        "test": {
            "accuracy": 0.80,
            "macro_f1": 0.73,
            "log_loss": 0.42,
            "roc_auc": 0.85,
            "pr_auc": 0.61,
            "brier": 0.14,
        },
    },
    "lightgbm": {
        "val": {
            "accuracy": 0.86,
            "macro_f1": 0.79,
            "log_loss": 0.33,
            "roc_auc": 0.91,
            "pr_auc": 0.71,
            "brier": 0.10,
        },
        "test": {
            "accuracy": 0.85,
            "macro_f1": 0.78,
            "log_loss": 0.35,
            "roc_auc": 0.9123,
            "pr_auc": 0.70,
            "brier": -1.0,
        },
    },
}
PROFILE = {
    "task": "binary",
    "target": "churned",
    "id": "ticket_id",
    "labels": LABELS,
    "numeric": ["amount"],
    "categorical": ["channel"],
    "text": None,
    "datetime": ["created_at"],
    "derived": ["created_at_hour"],
    "rows": {"train": 700, "val": 150, "test": 150, "rejected": 12},
    "columns": {
        "amount": {"dtype": "float64", "null_rate": 0.125, "min": 0.0, "max": 950.5},
        "channel": {"dtype": "string", "null_count": 100, "categories": ["email", "phone"]},
        "created_at": {"dtype": "datetime", "null_rate": 0.0},
    },
    "label_distribution": {"train": {"no": 525, "yes": 175}, "test": {"no": 120, "yes": 30}},
}
PLOTS = ("roc", "pr", "confusion", "calibration")


def write_report_project(root: Path, png_factory: Any, models: dict[str, bytes] | None) -> None:
    """The files the report stage reads, as the other stages write them."""
    metrics_dir = root / "metrics"
    metrics_dir.mkdir(parents=True)
    for name, payload in METRICS.items():
        (metrics_dir / f"{name}.json").write_text(json.dumps(payload))
        plot_dir = root / "plots" / name
        plot_dir.mkdir(parents=True)
        for kind in PLOTS:
            (plot_dir / f"{kind}.png").write_bytes(png_factory(f"{name} {kind}"))
    (root / "plots" / "lightgbm" / "feature_importance.png").write_bytes(png_factory("gain"))
    (root / "plots" / "text_model").mkdir(parents=True)
    (metrics_dir / "text_model.json").write_text(json.dumps({"skipped": True}))
    (metrics_dir / "etl.json").write_text(json.dumps({"rows_in": 1012, "rows_rejected": 12}))
    (metrics_dir / "export.json").write_text(json.dumps({"lightgbm": {"max_abs_diff": 3e-7}}))
    processed = root / "data" / "processed"
    processed.mkdir(parents=True)
    (processed / "profile.json").write_text(json.dumps(PROFILE))
    if models is not None:
        export = root / "models" / "export"
        write_export(export, models)
        check = {
            "model": "lightgbm",
            "name": "test split",
            "rows": 150,
            "max_abs_diff": 3.1e-7,
            "tolerance": 1e-5,
            "label_mismatches": 0,
            "passed": True,
        }
        parity = {
            "passed": True,
            "tolerances": {"probabilities": 1e-5, "logits": 1e-4},
            "summary": {
                "lightgbm": {"max_abs_diff": 3.1e-7, "rows": 150, "passed": True},
                "baseline": {"max_abs_diff": 8e-8, "rows": 150, "passed": True},
            },
            "checks": [check, {**check, "name": "batch 7", "rows": 7}],
        }
        (export / "parity.json").write_text(json.dumps(parity))


@pytest.fixture
def report_project(tmp_path: Path, png_factory: Any) -> Path:
    # The report reads only the contract's entries, not the ONNX graphs.
    models = {"lightgbm": b"onnx lightgbm", "baseline": b"onnx baseline"}
    write_report_project(tmp_path, png_factory, models)
    return tmp_path
