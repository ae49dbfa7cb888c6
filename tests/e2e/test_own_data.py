"""The README's walk for your own data: write a CSV and `configs/data/<name>.yaml`, select it,
`make repro`, serve, call the API with raw values as they stand in the file — no code change.

Two files unlike the demo: support tickets with European timestamps (`24-02-2015 11.35`),
spreadsheet-style column names, yes/no flags, rare categories and Unicode notes (binary, CRLF
line endings); and insurance costs with a skewed numeric target (regression, log1p).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.e2e.serve import predict, score_file, serving, tolerance
from tests.smoke import dvc_repro, git, make_copy, stages_run

NOTES = [
    "still waiting for the refund 😡",
    "Danke, alles gut!",
    "não recebi a fatura",
    "",
    "ok",
    "the router keeps dropping the connection " * 40,
    "naïve question about the café order — résumé attached",
    "配送が遅れています",
]


def _tickets(rows: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], str]:
    out = []
    for i in range(rows):
        age = int(rng.integers(18, 90))
        member = bool(rng.random() < 0.4)
        plan = str(rng.choice(["Básico", "Pro", "Team", "Legacy 2019"], p=[0.5, 0.3, 0.18, 0.02]))
        hour = int(rng.integers(0, 24))
        night = hour < 7
        note = str(rng.choice(NOTES))
        score = 0.04 * (age - 50) - 0.9 * member + 1.2 * night + (0.8 if "refund" in note else 0)
        day, month = int(rng.integers(1, 29)), int(rng.integers(1, 13))
        out.append(
            {
                "Ticket ID": f"T-{i:05d}",
                "Opened": f"{day:02d}-{month:02d}-2015 {hour:02d}.{int(rng.integers(60)):02d}",
                "Customer Age": age if rng.random() > 0.05 else "",
                "Plan": plan,
                "Is Member": "yes" if member else "no",
                "Notes": note,
                "Escalated": "yes" if score + rng.normal(0, 0.8) > 0.3 else "no",
            }
        )
    config = """
name: tickets
path: data/raw/tickets.csv
target: Escalated
id: Ticket ID
text: Notes
categorical: [Plan]
numeric: [Customer Age, Is Member]
datetime: [Opened]
datetime_format:
  Opened: "%d-%m-%Y %H.%M"
timezone: Europe/Berlin
bounds:
  Customer Age: [0, 120]
"""
    return out, config


def _costs(rows: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], str]:
    out = []
    for i in range(rows):
        age = int(rng.integers(18, 65))
        smoker = bool(rng.random() < 0.2)
        region = str(rng.choice(["north", "south", "east", "west", "islands"]))
        cost = np.exp(7.5 + 0.025 * age + 1.1 * smoker + (0.3 if region == "islands" else 0))
        out.append(
            {
                "policy": i + 1000,
                "age": age,
                "smoker": "yes" if smoker else "no",
                "region": region,
                "claim note": str(rng.choice(NOTES)),
                "charges": round(float(cost * rng.lognormal(0, 0.25)), 2),
            }
        )
    config = """
name: costs
path: data/raw/costs.csv
target: charges
task: regression
target_transform: log1p
id: policy
text: claim note
categorical: [region]
numeric: [age, smoker]
"""
    return out, config


CASES = {"tickets": _tickets, "costs": _costs}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def _select(project: Path, name: str) -> None:
    config = project / "configs" / "config.yaml"
    config.write_text(re.sub(r"(?m)^(\s*- data:)\s*\S+", rf"\1 {name}", config.read_text()))


def _as_sent(value: str, field: dict[str, Any]) -> Any:
    """A CSV cell as a caller sends it: numbers as numbers, yes/no as booleans, text as is."""
    if field["type"] == "boolean":
        return {"yes": True, "no": False}.get(value)
    if field["type"] == "number":
        return None if value == "" else float(value)
    return value


@pytest.mark.parametrize("name", list(CASES))
def test_own_csv_runs_end_to_end_and_serves_raw_values(tmp_path: Path, name: str) -> None:
    project = make_copy(tmp_path / "project")
    rows, config = CASES[name](900, np.random.default_rng(11))
    _write_csv(project / "data" / "raw" / f"{name}.csv", rows)
    (project / "configs" / "data" / f"{name}.yaml").write_text(config.lstrip())
    _select(project, name)
    git(project, "add", "-A")
    git(project, "commit", "-qm", f"{name} data")

    result = dvc_repro(project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The demo generator is not selected: it wrote no rows, and the demo folder is no input.
    assert not list((project / "data" / "raw" / "demo").glob("*.parquet"))
    (project / "data" / "raw" / "unrelated.csv").write_text("a,b\n1,2\n")
    (project / "data" / "raw" / "notes.txt").write_text("not the selected data\n")
    assert stages_run(dvc_repro(project).stdout) == []

    contract = json.loads((project / "models" / "export" / "contract.json").read_text())
    assert contract["task"] == ("regression" if name == "costs" else "binary")
    fields = {f["name"]: f for f in contract["input_schema"]}
    test = pl.read_parquet(project / "data" / "processed" / "test.parquet").head(30)
    id_column = contract["id"]
    by_id = {str(r[id_column]): r for r in rows}
    records = [
        {k: _as_sent(v, fields[k]) for k, v in by_id[str(i)].items() if k in fields}
        for i in test[id_column].to_list()
    ]
    if name == "tickets":
        assert records[0]["Opened"].count(".") == 1  # sent as written: "24-02-2015 11.35"

    with serving(project) as base:
        for model in contract["models"]:
            served = predict(base, records, model)["predictions"]
            offline = pl.read_parquet(
                project / "models" / "trained" / model / "predictions_test.parquet"
            ).head(len(records))
            if name == "costs":
                got = np.array([p["value"] for p in served])
                want = offline["value"].to_numpy()
                np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=model)
            else:
                got = np.array([p["probabilities"]["yes"] for p in served])
                want = offline["proba_1"].to_numpy()
                np.testing.assert_allclose(got, want, atol=tolerance(project, model), err_msg=model)

    source = project / "data" / "raw" / f"{name}.csv"
    scored = project / "scored.parquet"
    score_file(project, source, scored)
    assert pl.read_parquet(scored).height == len(rows)
    page = (project / "reports" / "report.html").read_text()
    assert ("<th>rmse</th>" in page) is (name == "costs")  # the test-metrics table
