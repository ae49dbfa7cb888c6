"""Files as people have them: line endings, gzip, encodings, spreadsheet cells, other formats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.etl.core import run_etl
from serving.schemas import SPLITS
from tests.etl.messy import config, data_config, etl_config, jobs, write_csv


def _rows(processed: Path) -> pl.DataFrame:
    return pl.concat(pl.read_parquet(processed / f"{s}.parquet") for s in SPLITS).sort("job_ref")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The rows the ETL keeps from the LF-ended UTF-8 jobs CSV."""
    tmp = tmp_path_factory.mktemp("reference")
    path = write_csv(tmp / "jobs.csv", jobs())
    run_etl(data_config(path), etl_config(tmp), 7, tmp / "p", tmp / "m.json")
    return _rows(tmp / "p")


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["CRLF", "CR"])
def test_line_endings_read_alike(newline: str, reference: pl.DataFrame, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "jobs.csv", jobs(), newline)
    assert path.read_bytes().count(b"\r") > 300
    run_etl(data_config(path), etl_config(tmp_path), 7, tmp_path / "p", tmp_path / "m.json")
    assert _rows(tmp_path / "p").equals(reference)


def test_other_containers_read_alike(reference: pl.DataFrame, tmp_path: Path) -> None:
    text = write_csv(tmp_path / "jobs.csv", jobs()).read_bytes()
    (tmp_path / "jobs.csv.gz").write_bytes(gzip.compress(text))
    (tmp_path / "utf16.csv").write_bytes(text.decode("utf-8").encode("utf-16"))
    records = [{k: (v if v != "" else None) for k, v in r.items()} for r in jobs()]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    pl.read_ndjson(tmp_path / "jobs.jsonl").write_parquet(tmp_path / "jobs.parquet")
    for name, keys in (
        ("jobs.csv.gz", {}),
        ("utf16.csv", {"encoding": "utf-16"}),
        ("jobs.jsonl", {}),
        ("jobs.parquet", {}),
    ):
        out = tmp_path / name.replace(".", "_")
        run_etl(
            data_config(tmp_path / name, **keys), etl_config(tmp_path), 7, out, tmp_path / "m.json"
        )
        assert _rows(out).equals(reference), name


@pytest.mark.parametrize("extra", [None, "file_row_number"])
def test_parquet_parts_keep_row_positions(
    extra: str | None, reference: pl.DataFrame, tmp_path: Path
) -> None:
    """Rows spread over Parquet files of uneven sizes (one empty) keep their place in the input:
    the same rows and splits as from the one CSV, rejected rows numbered across the files; also
    when a column has the name of DuckDB's row number within a file."""
    csv = write_csv(tmp_path / "jobs.csv", jobs())
    run_etl(data_config(csv), etl_config(tmp_path), 7, tmp_path / "c", tmp_path / "m.json")
    records = [{k: (v if v != "" else None) for k, v in r.items()} for r in jobs()]
    frame = pl.DataFrame(records, infer_schema_length=None)
    if extra:
        frame = frame.with_columns(pl.lit(-1).alias(extra))
    (tmp_path / "parts").mkdir()
    for i, (start, stop) in enumerate([(0, 7), (7, 7), (7, 290), (290, len(frame))]):
        frame[start:stop].write_parquet(tmp_path / "parts" / f"part-{i}.parquet")
    data = data_config(tmp_path / "parts" / "*.parquet")
    run_etl(data, etl_config(tmp_path), 7, tmp_path / "p", tmp_path / "m.json")
    assert _rows(tmp_path / "p").equals(reference)
    csv_rejected, parquet_rejected = (
        pl.read_parquet(tmp_path / d / "rejected.parquet").select("row", "reason", "id")
        for d in ("c", "p")
    )
    assert csv_rejected.height > 0 and parquet_rejected.equals(csv_rejected)


def test_cr_only_export_with_spreadsheet_errors_and_odd_characters(tmp_path: Path) -> None:
    """Like a published review file: CR line endings, `#NAME?` cells, mis-encoded letters."""
    reviews = ["Wow... Loved this place", "Crust is not good", "My fiancǸ loved it!!"]
    reviews += ["Great food, friendly staff", "Would not go back"]
    lines = ["Review,Liked"] + [f'"{reviews[i % 5]} {i}",{(i + i // 5) % 2}' for i in range(60)]
    lines[7], lines[30] = "#NAME?,0", "#NAME?,1"
    path = tmp_path / "reviews.csv"
    path.write_bytes("\r".join(lines).encode("utf-8"))  # no line break after the last row
    data = config(path=str(path), target="Liked", text="Review")
    profile = run_etl(data, etl_config(tmp_path), 1, tmp_path / "p", tmp_path / "m.json")
    assert profile.rows_in == 60 and profile.labels == ["0", "1"]
    texts = pl.concat(pl.read_parquet(tmp_path / "p" / f"{s}.parquet") for s in SPLITS)["Review"]
    assert "My fiancǸ loved it!! 2" in texts.to_list() and "Great food, friendly staff 3" in texts
    assert texts.null_count() > 0 and "#NAME?" not in texts.to_list()  # a spreadsheet error: null


def test_latin1_file_with_declared_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    rows = "".join(f"{i},São Paulo,{i % 2}\n" for i in range(40))
    path.write_bytes(("id,city,y\n" + rows).encode("latin-1"))
    data = config(path=str(path), target="y", id="id", categorical=["city"], encoding="latin-1")
    run_etl(data, etl_config(tmp_path), 1, tmp_path / "p", tmp_path / "m.json")
    assert set(pl.read_parquet(tmp_path / "p" / "train.parquet")["city"]) == {"são paulo"}
