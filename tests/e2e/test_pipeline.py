"""End to end on the tiny profile: `dvc repro` in a fresh copy runs every stage, a second run is a
no-op, a LightGBM hyperparameter re-runs only what depends on it, and the exported models serve.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from tests.e2e.serve import predict, serving
from tests.smoke import dvc_repro, make_copy, pipeline_env, stages_run

ALL_STAGES = ["config", "generate", "etl", "baseline", "lightgbm", "text_model", "export", "report"]
MODELS = ["baseline", "lightgbm", "text_model"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = make_copy(tmp_path_factory.mktemp("e2e") / "project")
    result = dvc_repro(path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert sorted(stages_run(result.stdout)) == sorted(ALL_STAGES)
    yield path


def test_every_stage_wrote_its_outputs(project: Path) -> None:
    for split in ["train", "val", "test"]:
        assert (project / "data" / "processed" / f"{split}.parquet").is_file()
    for model in MODELS:
        assert (project / "models" / model / "predictions_test.parquet").is_file(), model
        assert (project / "plots" / model / "roc.png").is_file(), model
    export = project / "models" / "export"
    contract = json.loads((export / "contract.json").read_text())
    assert set(contract["models"]) == set(MODELS)
    for name, entry in contract["models"].items():
        assert (export / entry["file"]).is_file(), name
    assert contract["champion"] in MODELS
    assert (project / "reports" / "report.html").stat().st_size > 10_000


def test_metrics_show_lists_every_model_beating_majority(project: Path) -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "metrics", "show", "--json"],
        cwd=project,
        env=pipeline_env(project),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    metrics = next(iter(json.loads(out).values()))["data"]
    test = pl.read_parquet(project / "data" / "processed" / "test.parquet")
    counts = test["__label__"].value_counts()["count"]
    share = counts.max() / test.height
    # Always predicting the majority class: F1 2m/(1+m) for that class, 0 for the others.
    majority_macro_f1 = 2 * share / (1 + share) / len(counts)
    for model in MODELS:
        scores = metrics[f"metrics/{model}.json"]["data"]["test"]
        # Tiny data, tiny models: assert they learned something, not a quality target.
        assert scores["roc_auc"] > 0.6, (model, scores)
        assert scores["macro_f1"] > majority_macro_f1 + 0.05, (model, scores, majority_macro_f1)


def test_second_repro_runs_nothing(project: Path) -> None:
    again = dvc_repro(project)
    assert again.returncode == 0, again.stderr[-2000:]
    assert stages_run(again.stdout) == []


def test_served_predictions_match_offline_predictions(project: Path) -> None:
    contract = json.loads((project / "models" / "export" / "contract.json").read_text())
    test = pl.read_parquet(project / "data" / "processed" / "test.parquet").head(50)
    fields = [f["name"] for f in contract["input_schema"]]
    records = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        for row in test.select(fields).to_dicts()
    ]
    with serving(project) as base:
        for model in MODELS:
            served = predict(base, records, model)
            offline = pl.read_parquet(project / "models" / model / "predictions_test.parquet")
            offline = offline.head(50)
            labels = contract["labels"]
            got = np.array([[p["probabilities"][c] for c in labels] for p in served["predictions"]])
            want = offline.select([f"proba_{i}" for i in range(len(labels))]).to_numpy()
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=model)


def test_lightgbm_param_change_reruns_only_downstream(project: Path) -> None:
    config = project / "configs" / "lightgbm" / "default.yaml"
    values = yaml.safe_load(config.read_text())
    values["params"]["num_leaves"] = int(values["params"]["num_leaves"]) + 3
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    result = dvc_repro(project)
    assert result.returncode == 0, result.stderr[-2000:]
    ran = stages_run(result.stdout)
    assert ran[:2] == ["config", "lightgbm"], ran
    assert not {"generate", "etl", "baseline", "text_model"} & set(ran), ran
