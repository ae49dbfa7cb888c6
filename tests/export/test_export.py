"""The export stage end to end on a small project: files, contract, metadata, parity figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from pipeline.export.config import ExportConfig
from pipeline.export.contract import sha256
from pipeline.export.core import ExportResult, export_models
from tests.export.export_fixtures import MAX_LENGTH, paths_for

TINY = {"batch_sizes": [1, 7, 64], "sequence_lengths": [4, 8], "long_text_chars": 3000}


@pytest.fixture(scope="session")
def exported(project: Path) -> ExportResult:
    """One full export (three models, int8 variant) of the session project."""
    return export_models(ExportConfig(**TINY), paths_for(project))


def _checks(result: ExportResult, model: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.parity["checks"] if c["model"] == model}


def test_every_model_is_exported_single_file_and_checked(project: Path, exported: ExportResult):
    out = project / "models" / "export"
    for name in ("baseline", "lightgbm", "text_model"):
        path = out / f"{name}.onnx"
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path), load_external_data=False)
        external = [t.name for t in model.graph.initializer if t.data_location == 1]
        assert external == [], f"{name} has external data"
        assert exported.contract["models"][name]["sha256"] == sha256(path)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "baseline.onnx",
            "lightgbm.onnx",
            "text_model.onnx",
            "text_model.int8.onnx",
            "tokenizer",
            "contract.json",
            "parity.json",
        ]
    )
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))


def test_parity_is_within_tolerance_on_every_check(exported: ExportResult):
    assert exported.parity["passed"] is True
    for check in exported.parity["checks"]:
        assert check["passed"], check
        assert check["label_mismatches"] == 0
    summary = exported.metrics["parity"]
    assert summary["baseline"]["max_abs_diff"] <= 1e-5
    assert summary["lightgbm"]["max_abs_diff"] <= 1e-5
    assert summary["text_model"]["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize(
    ("model", "names"),
    [
        (
            "baseline",
            [
                "test_split",
                "batch_1",
                "batch_7",
                "batch_64",
                "edge:nulls",
                "edge:unseen_categories",
                "edge:extreme_values",
                "edge:texts",
                "reference:predictions_test",
            ],
        ),
        ("lightgbm", ["test_split", "edge:nulls", "edge:thresholds", "reference:predictions_test"]),
        (
            "text_model",
            [
                "tokenizer:test_split",
                "tokenizer:edge_texts",
                "test_split",
                "batch_1",
                "batch_64",
                "seq_len_4",
                "seq_len_8",
                f"seq_len_{MAX_LENGTH}",
                "edge:texts",
                "reference:predictions_test",
            ],
        ),
    ],
)
def test_each_kind_of_check_ran_on_rows(exported: ExportResult, model: str, names: list[str]):
    checks = _checks(exported, model)
    for name in names:
        assert checks[name]["rows"] > 0, name


def test_lightgbm_rows_on_split_thresholds_match_exactly(exported: ExportResult):
    check = _checks(exported, "lightgbm")["edge:thresholds"]
    # 6 values per threshold (t, float64 and float32 neighbours) on 4 base rows.
    assert check["rows"] >= 6 * 4 * 10
    assert check["label_mismatches"] == 0 and check["max_abs_diff"] < 1e-6
    inputs = exported.contract["models"]["lightgbm"]["inputs"]
    assert {i["dtype"] for i in inputs} == {"float64", "string"}


def test_contract_describes_inputs_labels_lineage(exported: ExportResult):
    contract = exported.contract
    assert contract["labels"] == ["no", "yes"] and contract["id"] == "ticket_id"
    schema = {f["name"]: f for f in contract["input_schema"]}
    assert schema["amount"] == {"name": "amount", "type": "number", "nullable": True, "min": 0.0}
    assert schema["is_member"]["type"] == "boolean"
    assert schema["review"]["type"] == "text" and schema["review"]["max_length"] == 5000
    assert schema["created_at"]["type"] == "datetime"
    assert contract["features"]["text_stats"] == ["chars", "words"]
    baseline = contract["models"]["baseline"]
    assert [i["column"] for i in baseline["inputs"]][:2] == ["amount", "is_member"]
    assert baseline["mlflow"]["run_id"] == "run-baseline"
    assert baseline["metrics"]["val"]["roc_auc"] > 0.5
    text = contract["models"]["text_model"]
    assert text["max_length"] == MAX_LENGTH and text["tokenizer"] == "tokenizer/tokenizer.json"
    assert text["text_input"]["fields"] == [{"name": "channel", "type": "category"}]
    lineage = contract["lineage"]
    assert lineage["params"] and all(v.endswith(".dir") for v in lineage["data"].values())
    assert set(lineage["models"]) == {"baseline", "lightgbm", "text_model"}
    best = max(contract["models"], key=lambda n: contract["models"][n]["metrics"]["val"]["roc_auc"])
    assert contract["champion"] == best


def test_onnx_metadata_repeats_the_contract(project: Path, exported: ExportResult):
    for name in ("baseline", "lightgbm", "text_model"):
        model = onnx.load(str(project / "models" / "export" / f"{name}.onnx"))
        props = {p.key: p.value for p in model.metadata_props}
        assert props["model"] == name
        assert json.loads(props["labels"]) == exported.contract["labels"]
        assert json.loads(props["lineage"]) == exported.contract["lineage"]
        assert json.loads(props["input_schema"]) == exported.contract["input_schema"]
        assert json.loads(props["mlflow"]) == exported.contract["models"][name]["mlflow"]


def test_text_graph_has_dynamic_axes_and_served_tokenizer(project: Path):
    from tokenizers import Tokenizer

    out = project / "models" / "export"
    model = onnx.load(str(out / "text_model.onnx"))
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"], graph_input.name
    assert [o.name for o in model.graph.output] == ["logits"]
    tokenizer = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    rows = tokenizer.encode_batch(["refund", "great " * 200])
    assert len(rows[1].ids) == MAX_LENGTH and len(rows[0].ids) == MAX_LENGTH  # padded to longest


def test_int8_report_compares_size_speed_accuracy(exported: ExportResult):
    report = exported.parity["quantized"]
    assert report["int8_bytes"] < report["fp32_bytes"]
    assert report["label_agreement"] >= 0.9
    assert np.isfinite(report["int8_latency_ms_batch1"]) and report["rows"] > 0
    assert exported.contract["quantized"]["text_model"]["file"] == "text_model.int8.onnx"
