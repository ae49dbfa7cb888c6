"""What the benchmarks feed the models: raw records of a project's test split, and the same rows
as a trained scikit-learn Pipeline sees them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl


def contract(project: Path) -> dict[str, Any]:
    """The export's contract as plain JSON (the old server's contract has another schema)."""
    loaded: dict[str, Any] = json.loads(
        (project / "models" / "export" / "contract.json").read_text(encoding="utf-8")
    )
    return loaded


def served_model(project: Path, kind: str, prefer: str = "lightgbm") -> str | None:
    """A served model of `kind` (tabular | text): `prefer` if it is one, else the champion if
    it is one, else the first; None when the export has none."""
    models = contract(project)["models"]
    names = [n for n, entry in models.items() if entry.get("kind", "tabular") == kind]
    champion = contract(project).get("champion")
    for name in (prefer, champion, *names):
        if name in names:
            return str(name)
    return None


def records(project: Path, rows: int) -> list[dict[str, Any]]:
    """The first `rows` rows of the test split as a client sends them (input fields only, dates
    as ISO 8601 text), repeated when the split is shorter."""
    names = [f["name"] for f in contract(project)["input_schema"]]
    frame = pl.read_parquet(project / "data" / "processed" / "test.parquet", columns=names)
    out = [
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
        for row in frame.head(rows).to_dicts()
    ]
    return [out[i % len(out)] for i in range(rows)]


def v2_body(project: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An Open Inference Protocol request: one tensor per input field, as serving/v2.py reads."""
    kinds = {"number": "FP64", "boolean": "FP64"}
    return {
        "inputs": [
            {
                "name": f["name"],
                "shape": [len(rows)],
                "datatype": kinds.get(f["type"], "BYTES"),
                "data": [row[f["name"]] for row in rows],
            }
            for f in contract(project)["input_schema"]
        ]
    }


def native_pipeline(project: Path, name: str) -> Any:
    """The fitted scikit-learn Pipeline a model stage saved (`model.skops`). Every type in it is
    trusted: the file is this benchmark's own pipeline output."""
    import skops.io

    path = project / "models" / "trained" / name / "model.skops"
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def test_split(project: Path) -> Any:
    """The test split prepared as the model stages read it (`pipeline.common.data.Split`)."""
    from pipeline.common.data import load_profile, read_split

    processed = project / "data" / "processed"
    return read_split(processed, "test", load_profile(processed))
