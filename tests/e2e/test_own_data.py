"""The README's walk for your own data, on two schemas unlike the demo data's: write a CSV and
`configs/data/<name>.yaml`, select it, `dvc repro`, serve, call the API — no code change.
Some columns are named as spreadsheet exports name them ("Weight (kg)", "Customer Notes").
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.serve import predict, serving
from tests.smoke import dvc_repro, make_copy, stages_run


def _shipments(rows: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], str]:
    """Multiclass with a text column: shipment priority from weight, fragility and the notes."""
    words = {
        "low": ["standard parcel", "no rush", "regular restock", "whenever convenient"],
        "medium": ["customer waiting", "needed this week", "replacement part", "follow up"],
        "high": ["urgent outage", "hospital order", "line down asap", "critical spare"],
    }
    out = []
    for i in range(rows):
        weight = float(rng.gamma(2.0, 3.0))
        fragile = bool(rng.random() < 0.3)
        score = weight / 6 + 1.5 * fragile + rng.normal(0, 0.6)
        level = "low" if score < 1.2 else "medium" if score < 2.4 else "high"
        # The notes mostly agree with the level: the text signal.
        note_level = level if rng.random() < 0.7 else str(rng.choice(list(words)))
        out.append(
            {
                "sku_code": f"S{i:05d}",
                "Weight (kg)": round(weight, 2) if rng.random() > 0.05 else "",
                "colour": str(rng.choice(["red", "Blue ", "green", "BLACK"])),
                "fragile": "true" if fragile else "false",
                "shipped_on": f"2024-{1 + i % 12:02d}-{1 + i % 27:02d} {i % 24:02d}:15:00",
                "Customer Notes": f"{rng.choice(words[note_level])} for depot {i % 7}",
                "priority": level,
            }
        )
    contract = """
name: shipments
path: data/raw/shipments.csv
target: priority
id: sku_code
text: Customer Notes
categorical: [colour]
numeric: ["Weight (kg)", fragile]
datetime: [shipped_on]
bounds:
  "Weight (kg)": [0, 500]
"""
    return out, contract


def _accounts(rows: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], str]:
    """Tabular only (no id, no text, no datetime): churn from usage and plan."""
    out = []
    for _ in range(rows):
        usage = float(rng.exponential(10))
        plan = str(rng.choice(["basic", "pro", "team"]))
        risk = -0.15 * usage + (1.2 if plan == "basic" else 0.0) + rng.normal(0, 0.7)
        out.append(
            {
                "Monthly Usage": round(usage, 3),
                "seats": int(rng.integers(1, 50)),
                "plan": plan,
                "churned": "yes" if risk > 0 else "no",
                "internal_comment": "ignored column",
            }
        )
    contract = """
name: accounts
path: data/raw/accounts.csv
target: churned
id: null
text: null
categorical: [plan]
numeric: [Monthly Usage, seats]
datetime: []
drop: [internal_comment]
"""
    return out, contract


CASES = {"shipments": _shipments, "accounts": _accounts}


@pytest.mark.parametrize("name", list(CASES))
def test_own_csv_runs_end_to_end_and_serves(tmp_path: Path, name: str) -> None:
    project = make_copy(tmp_path / "project")
    rows, contract = CASES[name](800, np.random.default_rng(7))
    raw = project / "data" / "raw" / f"{name}.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    with raw.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (project / "configs" / "data" / f"{name}.yaml").write_text(contract.lstrip())
    config = project / "configs" / "config.yaml"
    config.write_text(re.sub(r"(?m)^(\s*- data:)\s*\S+", rf"\1 {name}", config.read_text()))

    result = dvc_repro(project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "etl" in stages_run(result.stdout)

    contract_json = json.loads((project / "models" / "export" / "contract.json").read_text())
    has_text = name == "shipments"
    assert ("text_model" in contract_json["models"]) is has_text
    if not has_text:
        skipped = json.loads((project / "metrics" / "text_model.json").read_text())
        assert skipped.get("skipped") is True
    # skl2onnx names graph inputs in word characters; the contract feeds each from its column.
    spaced = "Weight (kg)" if has_text else "Monthly Usage"
    graph_names = {i["column"]: i["name"] for i in contract_json["models"]["lightgbm"]["inputs"]}
    assert graph_names[spaced] == spaced.replace(" ", "_").replace("(", "_").replace(")", "_")
    labels = contract_json["labels"]
    assert len(labels) == (3 if has_text else 2), labels

    fields = [f["name"] for f in contract_json["input_schema"]]
    assert "internal_comment" not in fields
    records = []
    for row in rows[:5]:
        record: dict[str, Any] = {}
        for field in fields:
            value = row[field]
            if field == "fragile":
                value = value == "true"
            elif field in {"Weight (kg)", "Monthly Usage", "seats"}:
                value = None if value == "" else float(value)
            record[field] = value
        records.append(record)
    with serving(project) as base:
        for model in contract_json["models"]:
            served = predict(base, records, model)
            assert len(served["predictions"]) == len(records)
            for pred in served["predictions"]:
                assert pred["label"] in labels
                assert abs(sum(pred["probabilities"].values()) - 1) < 1e-4
                assert pred["model"] == model
