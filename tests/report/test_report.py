"""The report's content, parsed back from its HTML; offline, atomic, model-agnostic."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.common import metrics
from pipeline.common.errors import PipelineError
from pipeline.common.stage import run_stage
from pipeline.report.core import ReportConfig, build_report, main
from serving.schemas import Contract, Incumbent, ModelCard, Profile, dump, read_file
from tests.export.projects import MODELS
from tests.report.conftest import NAMES, Factory
from tests.report.htmltables import ReportParser, parse

REPO = Path(__file__).resolve().parents[2]
INTERVAL = re.compile(r"\[(-?[\d.]+), (-?[\d.]+)\]")


def render(root: Path, names: list[str] = NAMES, **config: Any) -> tuple[str, ReportParser]:
    """Build and parse the page; 200 resamples unless the test says otherwise (speed)."""
    path, _ = build_report(ReportConfig(**{"bootstrap_resamples": 200, **config}), names, 0, root)
    html = path.read_text(encoding="utf-8")
    return html, parse(html)


def rows(page: ReportParser, table: str) -> dict[str, list[str]]:
    """A table's body rows by their first cell (a champion badge's text removed)."""
    return {r[0].removesuffix("champion"): r for r in page.tables[table][1:]}


def card(root: Path, name: str) -> ModelCard:
    return read_file(root / "models" / "trained" / name / "card.json", ModelCard)


def test_base_rate_row_beside_every_model(project: Factory) -> None:
    root = project("binary")
    _, page = render(root, names=[*NAMES, "ghost"])
    header = page.tables["truth"][0]
    assert header == ["model", "labels from", "accuracy", "f1", "roc_auc", "pr_auc", "log_loss",
                      "brier", "ece", "test roc_auc 95% interval", "standing"]  # fmt: skip
    table = rows(page, "truth")
    assert list(table) == ["base rate", *NAMES, "ghost"]
    # The base rate predicts the training prior; scored like every model.
    profile = read_file(root / "data/processed/profile.json", Profile)
    y = pd.read_parquet(root / "models/trained/sturdy/predictions_test.parquet")[
        "y_true"
    ].to_numpy()
    counts = profile.label_distribution["train"]
    prior = np.array([counts[label] for label in profile.labels], dtype=float) / sum(
        counts.values()
    )
    expected = metrics.classification(
        y, np.tile(prior, (len(y), 1)), np.zeros(len(y), int), profile
    )
    base = dict(zip(header, table["base rate"], strict=True))
    assert base["labels from"] == "majority class"
    for metric in ("accuracy", "log_loss", "brier", "ece"):
        assert base[metric] == f"{expected[metric]:.4f}", metric
    assert base["accuracy"] == f"{np.mean(y == 0):.4f}"  # majority-class accuracy
    for name in MODELS:
        shown = dict(zip(header, table[name], strict=True))
        test = card(root, name).entry.metrics["test"]  # type: ignore[union-attr]
        assert shown["labels from"] == "threshold 0.350 on P(yes), f1"  # the tuned threshold
        assert shown["log_loss"] == f"{test['log_loss']:.4f}" and shown["f1"] == f"{test['f1']:.4f}"
    assert table["absent"][1] == "skipped: the data has no column this model needs"
    assert table["ghost"][1] == "not run: no card yet"
    assert f"majority class {base['accuracy']}; at each model's decision: sturdy" in page.text(
        "majority"
    )
    # Every cell worse than the base rate is marked, and only those.
    names = [r[0].removesuffix("champion") for r in page.tables["truth"]]
    for name in MODELS:
        attrs = page.cell_attrs["truth"][names.index(name)]
        test = card(root, name).entry.metrics["test"]  # type: ignore[union-attr]
        for j, metric in enumerate(header[2:9], start=2):
            worse = metrics.improvement(metric, test[metric], expected[metric]) < 0
            assert ("worse" in (attrs[j].get("class") or "")) == worse, (name, metric)


def test_intervals_contain_the_estimate_and_overlaps_are_not_ranked(project: Factory) -> None:
    root = project("binary")
    html, page = render(root, bootstrap_resamples=1000)  # the default
    table = rows(page, "truth")
    bounds, points = {}, {}
    for name in MODELS:
        low, high = map(float, INTERVAL.fullmatch(table[name][-2]).groups())  # type: ignore[union-attr]
        points[name] = card(root, name).entry.metrics["test"]["roc_auc"]  # type: ignore[union-attr]
        assert low < points[name] < high
        bounds[name] = (low, high)
    best = max(points, key=points.__getitem__)
    assert table[best][-1] == "best"
    for name in set(MODELS) - {best}:
        overlaps = bounds[name][1] >= bounds[best][0] and bounds[name][0] <= bounds[best][1]
        assert table[name][-1] == ("within noise of the best" if overlaps else "below the best")
    # Seeded: the same inputs give the same page, byte for byte.
    assert render(root, bootstrap_resamples=1000)[0] == html


def test_models_within_noise_are_said_to_be_unranked(project: Factory) -> None:
    root = project("binary")
    twin = root / "models/trained/twin"
    shutil.copytree(root / "models/trained/sturdy", twin)
    (root / "plots/twin").mkdir()
    _, page = render(root, names=["sturdy", "twin"])
    table = rows(page, "truth")
    assert {table["sturdy"][-1], table["twin"][-1]} == {"best", "within noise of the best"}
    assert "cannot be told apart from it (95% intervals overlap)" in page.text("ranking")


def test_champion_gate_decision_with_both_scores_and_reason(project: Factory) -> None:
    root = project("binary")
    path = root / "models/export/contract.json"
    contract = read_file(path, Contract)
    assert contract.promotion is not None
    kept = contract.promotion.model_copy(
        update={
            "incumbent": Incumbent(name="sturdy", version="2", score=0.8412),
            "reason": "sturdy does not beat sturdy v2 by export.min_improvement=0",
        }
    )
    path.write_text(dump(contract.model_copy(update={"promotion": kept})), encoding="utf-8")
    _, page = render(root)
    gate = dict(page.tables["gate"])
    assert gate["candidate (best of this run)"] == "sturdy"
    assert gate["candidate score"] == f"{kept.candidate_score:.4f}"
    assert gate["incumbent (MLflow alias champion)"] == "sturdy v2"
    assert (gate["incumbent score"], gate["promoted"]) == ("0.8412", "no")
    assert gate["reason"] == kept.reason and gate["policy"] == "export.promote=if_better"
    assert "Served by default: sturdy" in page.text("champion")
    incomparable = kept.model_copy(
        update={"incumbent": Incumbent(name="old", version="1", score=None)}
    )
    path.write_text(dump(contract.model_copy(update={"promotion": incomparable})), encoding="utf-8")
    assert dict(render(root)[1].tables["gate"])["incumbent score"] == "incomparable"


def test_regression_section(project: Factory) -> None:
    root = project("regression")
    html, page = render(root)
    header = page.tables["truth"][0]
    assert header == ["model", "rmse", "mae", "r2", "mape", "test rmse 95% interval", "standing"]
    profile = read_file(root / "data/processed/profile.json", Profile)
    y = pd.read_parquet(root / "models/trained/sturdy/predictions_test.parquet")[
        "y_true"
    ].to_numpy()
    mean = profile.target_stats["train"].mean
    base = dict(zip(header, rows(page, "truth")["base rate"], strict=True))
    assert base["rmse"] == f"{np.sqrt(np.mean((y - mean) ** 2)):.4f}"
    assert base["mae"] == f"{np.mean(np.abs(y - mean)):.4f}"
    assert f"Base rate: the training mean, {mean:.4g}." in html
    assert [r[0] for r in page.tables["target-table"][1:]] == ["train", "val", "test"]
    assert "label-table" not in page.tables and "majority" not in page.ids


def test_multiclass_labels_and_decisions(project: Factory) -> None:
    _, page = render(project("multiclass"))
    assert rows(page, "truth")["sturdy"][1] == "argmax"
    assert [r[0] for r in page.tables["label-table"][1:]] == ["billing", "bug", "praise"]
    assert page.tables["label-table"][0] == ["label", "train", "val", "test"]


def test_page_is_self_contained_and_offline(project: Factory) -> None:
    root = project("binary")
    html, page = render(root)
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    csp = next(m for m in page.meta if m.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (csp["content"] or "")
    assert {i["alt"] for i in page.images} == {
        f"{m} · {p}" for m in MODELS for p in ("calibration", "importance")
    }
    for img in page.images:
        name, plot = (img["alt"] or "").split(" · ")
        data = base64.b64decode((img["src"] or "").removeprefix("data:image/png;base64,"))
        assert data == (root / "plots" / name / f"{plot}.png").read_bytes()


def test_data_export_and_lineage_sections(project: Factory) -> None:
    root = project("binary")
    _, page = render(root)
    assert [r[0] for r in page.tables["rows-table"][1:]] == ["train", "val", "test", "rejected"]
    assert ["target is null", "2"] in page.tables["rejected-table"]
    columns = rows(page, "column-table")
    assert columns["amount"][1] == "numeric" and columns["amount"][2].endswith("%")
    assert columns["city"][7].startswith("8 levels: berlin (")
    exported = rows(page, "export-table")
    assert (
        exported["reader"][1:3] == ["text", "reader/model.onnx"]
        and len(exported["reader"][3]) == 12
    )
    assert rows(page, "skipped-table")["absent"][1] == "the data has no column this model needs"
    assert rows(page, "schema-table")["created_at"][-1] == "%d-%m-%Y %H.%M"
    parity = page.tables["parity-table"][1:]
    assert {r[0] for r in parity} == set(MODELS) and all(r[-1] == "yes" for r in parity)
    assert "edge: texts" in {r[1] for r in parity}
    lineage = dict(page.tables["lineage"])
    assert lineage["models/trained/sturdy md5"].endswith(".dir")
    assert rows(page, "mlflow-runs")["shaky"][1:] == ["run1", "7", "shaky", "3"]


def test_missing_inputs_are_said_not_hidden(project: Factory) -> None:
    root = project("binary")
    shutil.rmtree(root / "models/export")
    html, page = render(root)
    assert "No export yet" in html and "gate" not in page.tables
    assert rows(page, "truth")["base rate"][0] == "base rate"  # the test split still speaks
    shutil.rmtree(root / "data")
    html, _ = render(root)
    assert "No data profile" in html


def test_broken_input_fails_in_one_line_and_keeps_the_old_page(project: Factory) -> None:
    root = project("binary")
    path, _ = build_report(ReportConfig(), NAMES, 0, root)
    before = path.read_bytes()
    (root / "models/export/parity.json").write_text('{"checks": []}', encoding="utf-8")
    with pytest.raises(
        PipelineError, match=r"parity.json: passed: Field required; fix: re-run the export"
    ):
        build_report(ReportConfig(), NAMES, 0, root)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    with pytest.raises(PipelineError, match=r"report.output must end in .html"):
        ReportConfig(output="report.pdf")


def test_stage_entry(
    project: Factory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project("binary")
    shutil.copytree(REPO / "configs", root / "configs")
    monkeypatch.chdir(root)
    argv = [
        f"models=[{','.join(NAMES)}]",
        "report.title=Churn report",
        "report.bootstrap_resamples=200",
    ]
    assert run_stage("report", main, argv) == 0
    assert "<title>Churn report</title>" in (root / "reports/report.html").read_text(
        encoding="utf-8"
    )
    assert run_stage("report", main, ["report.colour=red"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: [report]")


def test_cells_show_rounding_noise_as_zero_and_keep_small_values() -> None:
    from pipeline.report.html import fmt

    assert fmt(3.8e-16) == "0.0000"
    assert fmt(0.0005) == "0.0005"
    assert fmt(0.12345) == "0.1235"
    assert fmt(123456.0) == "1.235e+05"
