"""The stage fails loudly when parity breaks, skips the text model cleanly, and runs as a stage."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.common.errors import PipelineError
from pipeline.export import tabular
from pipeline.export.config import ExportConfig
from pipeline.export.contract import pick_champion
from pipeline.export.core import export_models
from pipeline.export.parity import compare
from tests.export.export_fixtures import paths_for

TABULAR_ONLY = ExportConfig(models=["baseline", "lightgbm"], batch_sizes=[1, 7], quantize=False)
REPO = Path(__file__).resolve().parents[2]


def test_wrong_feature_order_fails_parity_and_keeps_previous_output(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    paths = paths_for(project_copy)
    export_models(TABULAR_ONLY, paths)
    before = (paths.out_dir / "contract.json").read_bytes()
    real = tabular.graph_inputs

    def swapped(pipeline: object, profile: object) -> list[tabular.GraphInput]:
        inputs = real(pipeline, profile)  # type: ignore[arg-type]
        a, b = (i for i, spec in enumerate(inputs) if spec.column in ("amount", "review__chars"))
        inputs[a], inputs[b] = (
            replace(inputs[a], name=inputs[b].name),
            replace(inputs[b], name=inputs[a].name),
        )
        return inputs

    monkeypatch.setattr(tabular, "graph_inputs", swapped)
    with pytest.raises(PipelineError, match=r"ONNX parity failed for (baseline|lightgbm)") as err:
        export_models(TABULAR_ONLY, paths)
    message = str(err.value)
    assert "\n" not in message and "tolerance 1e-05" in message
    assert (paths.out_dir / "contract.json").read_bytes() == before


def test_data_without_text_model_skips_it(project_copy: Path):
    text_dir = project_copy / "models" / "text_model"
    shutil.rmtree(text_dir)
    text_dir.mkdir()
    (text_dir / "skipped.json").write_text(json.dumps({"skipped": True, "reason": "no text"}))
    cfg = replace(TABULAR_ONLY, models=["baseline", "lightgbm", "text_model"])
    result = export_models(cfg, paths_for(project_copy))
    assert set(result.contract["models"]) == {"baseline", "lightgbm"}
    assert result.contract["skipped"] == {"text_model": "the data has no text column"}
    assert not (paths_for(project_copy).out_dir / "tokenizer").exists()


def test_compare_tolerates_only_ties_and_small_differences():
    native = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])
    flipped_tie = np.array([[0.500001, 0.499999], [0.2, 0.8], [0.9, 0.1]])
    assert compare("m", "x", flipped_tie, native, 1e-5).passed
    off = np.array([[0.5, 0.5], [0.21, 0.79], [0.9, 0.1]])
    check = compare("m", "x", off, native, 1e-5)
    assert not check.passed and check.max_abs_diff == pytest.approx(0.01)
    wrong_label = np.array([[0.5, 0.5], [0.8, 0.2], [0.9, 0.1]])
    assert compare("m", "x", wrong_label, native, 0.5).label_mismatches == 1


def test_champion_respects_metric_direction():
    metrics = {
        "a": {"val": {"roc_auc": 0.9, "log_loss": 0.4}},
        "b": {"val": {"roc_auc": 0.8, "log_loss": 0.3}},
    }
    assert pick_champion(metrics, "roc_auc") == "a"
    assert pick_champion(metrics, "log_loss") == "b"
    with pytest.raises(PipelineError, match="no model has a finite validation 'f1'"):
        pick_champion(metrics, "f1")


def _stage_project(project_copy: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run the stage the way DVC does: from the project root, configs composed by Hydra."""
    shutil.copytree(REPO / "configs", project_copy / "configs")
    monkeypatch.chdir(project_copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return ["export=tiny", "export.models=[baseline,lightgbm]", "export.quantize=false"]


@pytest.mark.slow  # ~15 s: creating the MLflow SQLite store dominates
def test_stage_registers_onnx_versions_and_champion_alias(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    import mlflow

    from pipeline.common.stage import run_stage
    from pipeline.export.core import export_entry

    overrides = _stage_project(project_copy, monkeypatch)
    assert run_stage("export", export_entry, overrides) == 0
    contract = json.loads(Path("models/export/contract.json").read_text())
    champion = contract["champion"]
    registry = contract["models"][champion]["onnx_registry"]
    assert registry["registered_model"] == f"{champion}-onnx" and registry["version"] == "1"
    client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db")
    alias = client.get_model_version_by_alias(f"{champion}-onnx", "champion")
    assert str(alias.version) == "1"
    assert json.loads(Path("metrics/export.json").read_text())["champion"] == champion


def test_stage_reports_broken_parity_in_one_line(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from pipeline.common.stage import run_stage
    from pipeline.export.core import export_entry

    overrides = _stage_project(project_copy, monkeypatch)
    monkeypatch.setattr(tabular, "NULL_STRING", "<null>")  # the feeds no longer match training
    assert run_stage("export", export_entry, overrides) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: [export]") and "ONNX parity failed" in err
    assert not Path("models/export").exists() and not Path("mlflow.db").exists()
