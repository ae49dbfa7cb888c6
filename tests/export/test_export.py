"""Export on fixture cards: what it copies, the contract, serving parity, the stage's failures."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.common.data import Predictions, Split, read_rows
from pipeline.common.errors import PipelineError
from pipeline.common.stage import run_stage
from pipeline.export import parity
from pipeline.export.core import ExportConfig, export, main
from pipeline.export.records import caller_records, edge_records, input_schema
from serving.features import prepare_columns, prepare_records
from serving.runtime import load_model
from serving.schemas import Contract, ModelEntry, Outputs, ParityReport, Profile, read_file
from tests.export.conftest import NO_TRACKING, Factory
from tests.export.projects import MODELS, SKIPPED

NAMES = [*MODELS, *SKIPPED]
REPO = Path(__file__).resolve().parents[2]


def run(root: Path, names: list[str] = NAMES, **config: object) -> Contract:
    return export(ExportConfig(**config), names, root, NO_TRACKING)  # type: ignore[arg-type]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file the stage writes, by path."""
    files = [*(root / "models" / "export").rglob("*"), root / "metrics" / "export.json"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def test_binary_export_copies_graphs_and_writes_the_contract(project: Factory) -> None:
    root = project("binary")
    contract = run(root)
    out = root / "models" / "export"
    assert read_file(out / "contract.json", Contract) == contract
    assert set(contract.models) == set(MODELS) and contract.skipped == SKIPPED
    for name, entry in contract.models.items():
        card_dir = root / "models" / "trained" / name
        assert entry.file == f"{name}/model.onnx"
        assert hashlib.sha256((out / entry.file).read_bytes()).hexdigest() == entry.sha256
        assert (out / entry.file).read_bytes() == (card_dir / "model.onnx").read_bytes()
    tokenizer = contract.models["reader"].tokenizer
    assert tokenizer is not None and tokenizer.file == "reader/tokenizer.json"
    assert (out / tokenizer.file).read_bytes() == (
        root / "models/trained/reader/tokenizer.json"
    ).read_bytes()
    # The champion is the best on val by the task's default metric, roc_auc (higher is better).
    val = {n: e.metrics["val"]["roc_auc"] for n, e in contract.models.items()}
    assert (
        contract.champion == max(val, key=val.__getitem__)
        and contract.champion_metric == "val.roc_auc"
    )
    assert contract.promotion is not None and not contract.promotion.promoted
    assert "no tracking store" in contract.promotion.reason
    assert contract.lineage is not None and set(contract.lineage.models) == set(MODELS)


def test_input_schema_describes_what_callers_send(project: Factory) -> None:
    root = project("binary")
    contract = run(root, category_max_length=40, text_max_length=300)
    fields = {f.name: f for f in contract.input_schema}
    assert list(fields) == ["amount", "is_member", "channel", "city", "created_at", "review"]
    assert (fields["amount"].type, fields["amount"].min, fields["amount"].nullable) == (
        "number",
        0.0,
        True,
    )
    assert (fields["is_member"].type, fields["is_member"].nullable) == ("boolean", False)
    assert (
        fields["channel"].categories == ["email", "fax", "phone", "web"]
        and fields["channel"].nullable
    )
    assert "東京" in (fields["city"].categories or []) and fields["city"].max_length == 40
    assert not fields["city"].nullable
    assert fields["created_at"].datetime_format == "%d-%m-%Y %H.%M"
    assert (fields["review"].type, fields["review"].max_length) == ("text", 300)


def test_records_are_what_a_caller_sends_and_prepare_like_the_splits(built: Factory) -> None:
    root = built("binary")
    profile = read_file(root / "data/processed/profile.json", Profile)
    rows = read_rows(root / "data/processed", "test", profile)
    records = caller_records(rows, profile)
    json.dumps(records)  # plain JSON values only
    assert {type(r["is_member"]) for r in records} == {bool}
    dates = [r["created_at"] for r in records if r["created_at"] is not None]
    assert any("T" in d for d in dates) and any("." in d and "T" not in d for d in dates)
    assert any(r["amount"] is None for r in records) and any(r["review"] is None for r in records)
    served = prepare_records(records, profile.features)
    offline = prepare_columns(rows.raw, profile.features)
    assert served.keys() == offline.keys()
    for name, values in offline.items():
        if values.dtype == object:
            assert list(served[name]) == list(values), name
        else:
            np.testing.assert_array_equal(served[name], values, err_msg=name)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_other_tasks_export_with_parity(project: Factory, task: str) -> None:
    root = project(task)
    contract = run(root)
    report = read_file(root / "models/export/parity.json", ParityReport)
    assert report.passed and {c.model for c in report.checks} == set(MODELS)
    names = {c.name for c in report.checks}
    assert {"test split", "edge: nulls", "edge: unseen categories", "edge: texts"} <= names
    assert "edge: extreme numbers" in names
    out = root / "models/export"
    profile = read_file(root / "data/processed/profile.json", Profile)
    rows = read_rows(root / "data/processed", "test", profile)
    for name, entry in contract.models.items():
        got = load_model(out, entry).run(prepare_columns(rows.raw, profile.features))
        reference = pd.read_parquet(root / f"models/trained/{name}/predictions_test.parquet")
        if task == "regression":
            np.testing.assert_allclose(got["value"], reference["value"], rtol=1e-6)
        else:
            assert got["probabilities"].shape == (len(rows.ids), 3)
    metric = "rmse" if task == "regression" else "roc_auc"
    val = {n: e.metrics["val"][metric] for n, e in contract.models.items()}
    best = (min if task == "regression" else max)(val, key=val.__getitem__)  # rmse: lower wins
    assert contract.champion == best and contract.champion_metric == f"val.{metric}"


def test_metrics_file_is_small_flat_and_timing_free(project: Factory) -> None:
    root = project("binary")
    contract = run(root)
    metrics = json.loads((root / "metrics/export.json").read_text())
    assert metrics["champion"] == contract.champion and metrics["promoted"] is False
    assert set(metrics) == {"champion", "promoted", *(f"parity_{n}" for n in MODELS)}
    assert all(
        isinstance(v, float) and math.isfinite(v) and v < 1e-5
        for k, v in metrics.items()
        if k.startswith("parity_")
    )


def test_champion_metric_direction_and_bad_settings(project: Factory) -> None:
    root = project("binary")
    contract = run(root, champion_metric="log_loss")
    losses = {n: e.metrics["val"]["log_loss"] for n, e in contract.models.items()}
    assert contract.champion == min(losses, key=losses.__getitem__)
    with pytest.raises(
        PipelineError, match=r"export.champion_metric 'rmse' is not a binary metric"
    ):
        run(root, champion_metric="rmse")
    with pytest.raises(PipelineError, match=r"export.promote is 'sometimes'"):
        run(root, promote="sometimes")


def test_failing_parity_fails_in_one_line_and_keeps_previous_outputs(project: Factory) -> None:
    root = project("binary")
    run(root)
    before = snapshot(root)
    path = root / "models/trained/shaky/predictions_test.parquet"
    frame = pd.read_parquet(path)
    frame.loc[3, "proba_1"] += 0.01  # the stage's predictions no longer match its graph
    frame.loc[3, "proba_0"] -= 0.01
    frame.to_parquet(path, index=False)
    with pytest.raises(PipelineError) as failure:
        run(root)
    message = str(failure.value)
    assert "\n" not in message
    assert "serving parity failed for shaky on test split: max |Δ| 0.01" in message
    assert snapshot(root) == before
    leftovers = [p.name for p in (root / "models").iterdir()]
    assert sorted(leftovers) == ["export", "trained"]


def test_changed_graph_is_refused_before_anything_is_written(project: Factory) -> None:
    root = project("binary")
    run(root)
    before = snapshot(root)
    graph = root / "models/trained/sturdy/model.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")
    with pytest.raises(PipelineError) as failure:
        run(root)
    message = str(failure.value)
    assert "models/trained/sturdy/model.onnx: SHA-256" in message and "\n" not in message
    assert message.endswith("fix: re-run the model stage: dvc repro sturdy")
    assert snapshot(root) == before


def test_missing_or_stale_cards_are_one_line_errors(project: Factory) -> None:
    root = project("binary")
    with pytest.raises(
        PipelineError, match=r"models/trained/ghost/card.json: not found; fix: re-run"
    ):
        run(root, names=["sturdy", "ghost"])
    regression = project("regression")
    shutil.rmtree(root / "models/trained/shaky")
    shutil.copytree(regression / "models/trained/shaky", root / "models/trained/shaky")
    with pytest.raises(
        PipelineError, match=r"the card is for a regression task .* dvc repro shaky"
    ):
        run(root)
    with pytest.raises(PipelineError, match=r"every model was skipped"):
        run(root, names=["absent"])


def test_stage_entry_runs_from_the_config(
    project: Factory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project("binary")
    shutil.copytree(REPO / "configs", root / "configs")
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = [
        f"models=[{','.join(NAMES)}]",
        "export.min_improvement=0.01",
        "tracking.optional=true",
        "tracking.uri=http://127.0.0.1:9",  # nothing listens: no store, so no incumbent
    ]
    assert run_stage("export", main, overrides) == 0
    assert read_file(root / "models/export/contract.json", Contract).champion == "sturdy"
    assert run_stage("export", main, ["export.promote=sometimes"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: [export] configs/export: export.promote is 'sometimes'")


class Quantiles:
    """Stands in for a loaded regression graph with an `interval` output."""

    name = "quantiles"
    entry = ModelEntry(
        name="quantiles", kind="tabular", file="m.onnx", sha256="0" * 64,
        outputs=Outputs(value="value", interval="interval"),
    )  # fmt: skip

    def run(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        amount = np.nan_to_num(columns["amount"])
        return {"value": amount, "interval": np.column_stack([amount - 1, amount + 1])}


def test_regression_intervals_are_checked_too(built: Factory) -> None:
    root = built("regression")
    profile = read_file(root / "data/processed/profile.json", Profile)
    rows = read_rows(root / "data/processed", "test", profile)
    records = caller_records(rows, profile)
    amount = np.nan_to_num(rows.raw["amount"])
    split = Split("test", {}, rows.y, rows.ids)
    bounds = np.column_stack([amount - 1, amount + 1])
    native = Predictions(split, rows.y, values=amount, interval=bounds)
    model = Quantiles()
    assert parity.reference_check(model, records, native, profile, 1e-9).passed  # type: ignore[arg-type]
    bounds[5, 1] += 1e-3 * max(1.0, abs(bounds[5, 1]))  # one upper bound moves
    check = parity.reference_check(model, records, native, profile, 1e-5)  # type: ignore[arg-type]
    assert not check.passed and check.max_abs_diff == pytest.approx(1e-3, rel=0.01)
    edges = edge_records(records, input_schema(profile, 200, 5000), profile)
    assert all(parity.edge_check(model, n, r, profile, 1e-9).passed for n, r in edges.items())  # type: ignore[arg-type]
