"""Batch scoring: the API's checks, features and answers, for files of any size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from serving.batch import main
from tests.serving.conftest import app_client, reference_of, wait_ready


def _typed(record: dict[str, Any]) -> dict[str, Any]:
    """One type per column, as a file has (JSON lets 0 stand for false, 3 for 3.0)."""
    amount, member = record["amount"], record["is_member"]
    return {
        **record,
        "amount": float(amount) if isinstance(amount, int | float) else amount,
        "is_member": member if isinstance(member, str) else bool(member),
    }


def _table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{**_typed(r), "ticket_id": f"T{i}"} for i, r in enumerate(records)]
    )


def _write(records: list[dict[str, Any]], path: Path) -> Path:
    if path.suffix == ".jsonl":
        path.write_text(
            "".join(json.dumps({**r, "ticket_id": f"T{i}"}) + "\n" for i, r in enumerate(records))
        )
    elif path.suffix == ".parquet":
        pq.write_table(_table(records), path)
    else:
        pcsv.write_csv(_table(records), path)
    return path


@pytest.fixture(scope="module")
def api_probabilities(export_dir: Path) -> np.ndarray:
    records = reference_of(export_dir)["records"]
    with app_client(export_dir) as client:
        wait_ready(client)
        out = client.post("/v1/predict", json={"records": records}).json()
    return np.array([[p["probabilities"][k] for k in ("no", "yes")] for p in out["predictions"]])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_scores_equal_the_api_within_1e_6(
    export_dir: Path, tmp_path: Path, api_probabilities: np.ndarray, suffix: str
) -> None:
    records = reference_of(export_dir)["records"]
    source = _write(records, tmp_path / f"in{suffix}")
    out = tmp_path / "scores.parquet"
    # Small chunks: the file is read and scored in pieces.
    assert main([str(source), str(out), "--models", str(export_dir), "--chunk-rows", "16"]) == 0
    scores = pq.read_table(out).to_pydict()
    assert scores["row"] == list(range(len(records)))
    assert scores["ticket_id"] == [f"T{i}" for i in range(len(records))]
    got = np.column_stack([scores["proba_0"], scores["proba_1"]])
    np.testing.assert_allclose(got, api_probabilities, atol=1e-6, rtol=0)
    assert set(scores["model"]) == {"baseline"} and set(scores["version"]) == {"3"}
    contract = json.loads((export_dir / "contract.json").read_text())
    assert set(scores["onnx_sha256"]) == {contract["models"]["baseline"]["sha256"]}
    assert not (tmp_path / "scores.rejects.parquet").exists()


def test_bad_rows_go_to_the_rejects_file_with_their_reasons(
    export_dir: Path, tmp_path: Path
) -> None:
    records = [dict(r) for r in reference_of(export_dir)["records"][:20]]
    records[3]["amount"] = "abc"
    records[7]["created_at"] = "0001-01-01T00:00:00+01:00"
    records[9]["is_member"] = "maybe"
    for r in records:
        r["amount"] = None if r["amount"] is None else str(r["amount"])
        r["is_member"] = str(r["is_member"])
    source = _write(records, tmp_path / "in.csv")
    out = tmp_path / "scores.parquet"
    assert main([str(source), str(out), "--models", str(export_dir), "--model", "forest"]) == 0
    scores = pq.read_table(out).to_pydict()
    assert len(scores["row"]) == 17 and set(scores["model"]) == {"forest"}
    rejects = pq.read_table(tmp_path / "scores.rejects.parquet").to_pydict()
    assert rejects["row"] == [3, 7, 9]
    assert rejects["ticket_id"] == ["T3", "T7", "T9"]
    assert rejects["field"] == ["amount", "created_at", "is_member"]
    assert "'abc'" in rejects["reason"][0] and "in range" in rejects["reason"][1]


def test_a_file_of_only_bad_rows_fails_with_one_line(
    export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [{**r, "amount": "n/a?"} for r in reference_of(export_dir)["records"][:5]]
    source = _write([{**r, "is_member": str(r["is_member"])} for r in records], tmp_path / "x.csv")
    out = tmp_path / "o.parquet"
    assert main([str(source), str(out), "--models", str(export_dir)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "all 5 rows were rejected" in lines[0], lines
    assert "amount" in lines[0] and not (tmp_path / "o.parquet").exists()


def test_missing_columns_and_unknown_formats_fail_with_one_line(
    export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcsv.write_csv(pa.table({"amount": [1.0]}), tmp_path / "few.csv")
    (tmp_path / "x.xlsx").write_bytes(b"")
    for source in ("few.csv", "x.xlsx", "absent.csv"):
        code = main(
            [str(tmp_path / source), str(tmp_path / "o.parquet"), "--models", str(export_dir)]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("batch: "), err


def test_regression_files_get_values_and_intervals(regression_dir: Path, tmp_path: Path) -> None:
    records = reference_of(regression_dir)["records"]
    source = _write(records, tmp_path / "in.parquet")
    assert main([str(source), str(tmp_path / "o.parquet"), "--models", str(regression_dir)]) == 0
    scores = pq.read_table(tmp_path / "o.parquet").to_pydict()
    want = np.array(reference_of(regression_dir)["baseline"])
    np.testing.assert_allclose(scores["value"], want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.array(scores["interval_upper"]) - scores["value"], 1.5, atol=1e-5)
