"""End to end on the tiny profile, in a fresh copy, with a fourth model added by following
docs/add-a-model.md: every stage runs, the models serve what they predicted offline (API and
batch scoring), a second run is a no-op, a failed stage keeps every earlier output byte for
byte, and a parameter change re-runs only what depends on it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from tests.docs.add_a_model import add_model
from tests.e2e.serve import predict, score_file, serving, tolerance
from tests.smoke import dvc, dvc_repro, git, make_copy, stages_run

SHIPPED = ["baseline", "lightgbm", "text_model"]
# Everything a run produces that a failed later run must leave exactly as it was.
OUTPUTS = ("data/processed", "models", "metrics", "plots", "reports", "params.yaml")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = make_copy(tmp_path_factory.mktemp("e2e") / "project")
    fourth = add_model(path)
    git(path, "add", "-A")
    git(path, "commit", "-qm", f"add {fourth} as docs/add-a-model.md says")
    result = dvc_repro(path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    ran = stages_run(result.stdout)
    expected = {"config", "generate", "etl", *SHIPPED, fourth, "export", "report"}
    assert set(ran) == expected, ran
    yield path


def models(project: Path) -> list[str]:
    return list(yaml.safe_load((project / "params.yaml").read_text())["models"])


def snapshot(project: Path) -> dict[str, str]:
    """sha256 of every file under the outputs (temporary and lock files excluded)."""
    out = {}
    for name in OUTPUTS:
        root = project / name
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path.relative_to(project))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def records_of(project: Path, rows: int) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """Raw records of the test split as a caller sends them, and the split's first rows."""
    contract = json.loads((project / "models" / "export" / "contract.json").read_text())
    test = pl.read_parquet(project / "data" / "processed" / "test.parquet").head(rows)
    fields = [f["name"] for f in contract["input_schema"]]
    records = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        for row in test.select(fields).to_dicts()
    ]
    return records, test


def test_every_model_is_trained_exported_and_reported(project: Path) -> None:
    names = models(project)
    assert names == [*SHIPPED, "forest"]
    contract = json.loads((project / "models" / "export" / "contract.json").read_text())
    assert set(contract["models"]) == set(names)
    for name, entry in contract["models"].items():
        assert (project / "models" / "export" / entry["file"]).is_file(), name
        card = json.loads((project / "models" / "trained" / name / "card.json").read_text())
        assert card["parity"]["passed"], name
    assert contract["champion"] in names
    page = (project / "reports" / "report.html").read_text()
    for name in names:
        assert f'data-model="{name}"' in page, name


def test_metrics_show_every_model_learned(project: Path) -> None:
    out = dvc(project, "metrics", "show", "--json").stdout
    metrics = next(iter(json.loads(out).values()))["data"]
    for name in models(project):
        scores = metrics[f"metrics/{name}.json"]["data"]["test"]
        assert "duration_s" not in json.dumps(scores)
        if name != "text_model":  # a tiny random encoder cannot read the demo's tone
            # Tiny data: the tabular models find the table's signal (about 400 test rows, so
            # a loose bound). Full-size quality: tests/e2e/test_demo_quality.py.
            assert scores["roc_auc"] > 0.58, (name, scores)


def test_served_and_batch_scored_predictions_equal_the_offline_ones(project: Path) -> None:
    records, test = records_of(project, 40)
    contract = json.loads((project / "models" / "export" / "contract.json").read_text())
    labels = contract["labels"]
    scored = project / "scored.parquet"
    api: dict[str, np.ndarray] = {}
    with serving(project) as base:
        for name in models(project):
            served = predict(base, records, name)["predictions"]
            offline = pl.read_parquet(
                project / "models" / "trained" / name / "predictions_test.parquet"
            ).head(len(records))
            want = offline.select([f"proba_{i}" for i in range(len(labels))]).to_numpy()
            got = np.array([[p["probabilities"][c] for c in labels] for p in served])
            tol = tolerance(project, name)
            np.testing.assert_allclose(got, want, atol=tol, err_msg=name)
            api[name] = got
            # Labels agree, except where the offline probability is within the tolerance of
            # the contract's threshold (as the stage's own parity check allows).
            threshold = contract["models"][name]["decision"]["threshold"]
            clear = np.abs(want[:, -1] - threshold) > tol
            served_labels = np.array([p["label"] for p in served])
            assert (served_labels == offline["label"].to_numpy())[clear].all(), name
    source = project / "records.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    for name in models(project):
        score_file(project, source, scored, "--model", name)
        got = pl.read_parquet(scored)
        batch = got.select([f"proba_{i}" for i in range(len(labels))]).to_numpy()
        np.testing.assert_allclose(batch, api[name], atol=1e-6, err_msg=name)  # the same graph
    assert len(test) == len(records)


def test_second_repro_runs_nothing_and_a_forced_rerun_changes_no_metric(project: Path) -> None:
    again = dvc_repro(project)
    assert again.returncode == 0, again.stderr[-2000:]
    assert stages_run(again.stdout) == []
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first run")  # `dvc metrics diff` compares against HEAD
    forced = dvc(project, "repro", "--force", "--single-item", "lightgbm")
    assert forced.returncode == 0, forced.stderr[-2000:]
    diff = dvc(project, "metrics", "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout or "{}") == {}, diff.stdout
    # The card names the new MLflow run, so the export and the report follow; nothing else.
    assert stages_run(dvc_repro(project).stdout) == ["export", "report"]


def test_failed_etl_keeps_every_output_and_the_fixed_config_runs(project: Path) -> None:
    data = project / "configs" / "data" / "demo.yaml"
    good = data.read_text()
    before = snapshot(project)
    data.write_text(good.replace("target: label", "target: no_such_column"))
    try:
        failed = dvc_repro(project)
        assert failed.returncode != 0
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error: [etl]")]
        assert len(errors) == 1 and "no_such_column" in errors[0], failed.stderr[-2000:]
        after = {k: v for k, v in snapshot(project).items() if k != "params.yaml"}
        assert after == {k: v for k, v in before.items() if k != "params.yaml"}
    finally:
        data.write_text(good)
    fixed = dvc_repro(project)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert snapshot(project) == before


def test_failed_export_keeps_every_output(project: Path) -> None:
    # A model's reference predictions no longer match its graph: export's serving parity fails.
    reference = project / "models" / "trained" / "lightgbm" / "predictions_test.parquet"
    good = reference.read_bytes()
    before = snapshot(project)
    frame = pl.read_parquet(reference)
    frame.with_columns(pl.col("proba_1") * 0.5).write_parquet(reference)
    try:
        failed = dvc(project, "repro", "--single-item", "export")
        assert failed.returncode != 0
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error: [export]")]
        assert len(errors) == 1 and "lightgbm" in errors[0], failed.stderr[-2000:]
        after = snapshot(project)
        changed = {k for k in before if before[k] != after.get(k)}
        assert changed == {str(reference.relative_to(project))}, changed
    finally:
        reference.write_bytes(good)
    assert snapshot(project) == before
    assert stages_run(dvc_repro(project).stdout) == []


def test_a_lightgbm_parameter_reruns_only_what_depends_on_it(project: Path) -> None:
    config = project / "configs" / "lightgbm" / "default.yaml"
    values = yaml.safe_load(config.read_text())
    values["params"]["num_leaves"] = int(values["params"]["num_leaves"]) + 3
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    result = dvc_repro(project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert stages_run(result.stdout) == ["config", "lightgbm", "export", "report"]
