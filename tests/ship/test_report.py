"""The model report: content from fixture files, self-contained, atomic (pipeline/report)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.common.errors import PipelineError
from pipeline.report.core import ReportConfig, build_report

from .conftest import PLOTS
from .htmltables import parse

ROOT = Path(__file__).resolve().parents[2]


def render(root: Path, **overrides: Any) -> tuple[str, Any]:
    result = build_report(ReportConfig(**overrides), root)
    html = result.path.read_text(encoding="utf-8")
    return html, parse(html)


def test_model_table_compares_every_model(report_project: Path) -> None:
    _, page = render(report_project)
    rows = page.tables["model-table"]
    assert rows[0] == [
        "model",
        "split",
        "accuracy",
        "macro_f1",
        "log_loss",
        "roc_auc",
        "pr_auc",
        "brier",
    ]
    body = {(r[0].replace("champion", "").strip(), r[1]): r[2:] for r in rows[1:] if len(r) > 2}
    assert body[("baseline", "val")] == ["0.8100", "0.7400", "0.4100", "0.8600", "0.6200", "0.1300"]
    assert body[("lightgbm", "test")][3] == "0.9123"
    assert body[("lightgbm", "test")][5] == "n/a"  # -1 = not computable, never shown as a value
    skipped = next(r for r in rows if r[0] == "text_model")
    assert skipped[1] == "skipped: the data has no text column"  # the export stage's reason
    # Champion from the contract; best value per split and metric highlighted.
    assert [r[0] for r in rows[1:] if "champion" in r[0]] == ["lightgbmchampion"] * 2
    attrs = page.cell_attrs["model-table"]
    best = {
        (rows[i][0], rows[i][1], rows[0][j])
        for i, row in enumerate(attrs)
        for j, a in enumerate(row)
        if "best" in (a.get("class") or "")
    }
    assert ("lightgbmchampion", "test", "roc_auc") in best
    assert ("baseline", "test", "brier") in best  # lower wins; lightgbm's is n/a
    assert ("baseline", "val", "log_loss") not in best


def test_images_are_embedded_pngs(report_project: Path) -> None:
    _, page = render(report_project)
    expected = {f"{m} · {k}" for m in ("baseline", "lightgbm") for k in PLOTS}
    expected.add("lightgbm · feature importance")
    assert {img["alt"] for img in page.images} == expected
    for img in page.images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    lgbm_roc = next(i for i in page.images if i["alt"] == "lightgbm · roc")["src"] or ""
    assert (
        base64.b64decode(lgbm_roc.split(",", 1)[1])
        == (report_project / "plots/lightgbm/roc.png").read_bytes()
    )


def test_page_makes_no_external_request(report_project: Path) -> None:
    html, page = render(report_project)
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    csp = next(m for m in page.meta if m.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (csp["content"] or "")


def test_data_profile_export_and_lineage(report_project: Path) -> None:
    _, page = render(report_project)
    assert ["rejected", "12"] in page.tables["rows-table"]
    assert ["no", "525 (75.0%)", "120 (80.0%)"] in page.tables["label-table"]
    columns = {r[0]: r for r in page.tables["column-table"][1:]}
    assert columns["amount"][1:4] == ["numeric", "float64", "12.5%"]
    assert columns["channel"][3] == "10.0%"  # 100 nulls of 1,000 split rows
    assert "categories: 2 values" in columns["channel"][4]
    export = {r[0]: r for r in page.tables["export"][1:]}
    assert export["lightgbm"][2] == "lightgbm.onnx" and len(export["lightgbm"][3]) == 12
    assert ["passed", "yes"] in page.tables["parity"]
    assert ["tolerances.probabilities", "1e-05"] in page.tables["parity"]
    summary = page.tables["parity-summary"]
    assert summary[0] == ["", "max_abs_diff", "rows", "passed"]
    assert ["lightgbm", "3.1e-07", "150", "yes"] in summary
    checks = page.tables["parity-checks"]
    assert [r[1] for r in checks[1:]] == ["test split", "batch 7"]
    assert ["git_commit", "0123abc"] in page.tables["lineage"]
    assert ["data.data/processed", "md5-data"] in page.tables["lineage"]
    assert ["lightgbm.run_id", "run-lightgbm"] in page.tables["mlflow-runs"]


def test_missing_inputs_are_reported_not_hidden(report_project: Path) -> None:
    (report_project / "metrics" / "baseline.json").unlink()
    shutil.rmtree(report_project / "models" / "export")
    html, page = render(report_project)
    baseline = next(r for r in page.tables["model-table"] if r[0] == "baseline")
    assert baseline[1].startswith("not run")
    assert "No champion yet" in html and "no export yet" in html


def test_config_selects_models_and_metrics(report_project: Path) -> None:
    _, page = render(report_project, models=["lightgbm"], metrics=["roc_auc"], title="Churn")
    assert page.tables["model-table"][0] == ["model", "split", "roc_auc"]
    assert len(page.tables["model-table"]) == 3


def test_broken_input_fails_in_one_line_and_keeps_the_old_report(report_project: Path) -> None:
    result = build_report(ReportConfig(), report_project)
    before = result.path.read_bytes()
    (report_project / "metrics" / "lightgbm.json").write_text("{not json")
    with pytest.raises(PipelineError, match=r"metrics/lightgbm\.json: not valid JSON"):
        build_report(ReportConfig(), report_project)
    assert result.path.read_bytes() == before
    assert [p.name for p in result.path.parent.iterdir()] == ["report.html"]


def test_bad_config_is_refused() -> None:
    with pytest.raises(PipelineError, match=r"report\.models is empty"):
        ReportConfig(models=[])


def test_stage_entrypoint_writes_the_report(report_project: Path) -> None:
    shutil.copytree(ROOT / "configs", report_project / "configs")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.report", "report.title=Churn report"],
        cwd=report_project,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "champion lightgbm" in proc.stderr
    html = (report_project / "reports" / "report.html").read_text()
    assert "<title>Churn report</title>" in html
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline.report", "report.colour=red"],
        cwd=report_project,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 1 and "error: [report]" in bad.stderr


def test_multiclass_label_distribution(report_project: Path) -> None:
    profile_path = report_project / "data" / "processed" / "profile.json"
    profile = json.loads(profile_path.read_text())
    profile["labels"] = ["a", "b", "c"]
    profile["label_distribution"] = {"train": {"a": 1, "b": 2, "c": 1}}
    profile_path.write_text(json.dumps(profile))
    _, page = render(report_project)
    assert page.tables["label-table"][1:] == [
        ["a", "1 (25.0%)"],
        ["b", "2 (50.0%)"],
        ["c", "1 (25.0%)"],
    ]


def test_splits_are_shown_in_pipeline_order(report_project: Path) -> None:
    # The ETL writes key-sorted JSON (rejected, test, train, val); the page reorders.
    profile_path = report_project / "data" / "processed" / "profile.json"
    profile_path.write_text(json.dumps(json.loads(profile_path.read_text()), sort_keys=True))
    _, page = render(report_project)
    assert [r[0] for r in page.tables["rows-table"][1:]] == ["train", "val", "test", "rejected"]
    assert page.tables["label-table"][0] == ["label", "train", "test"]
