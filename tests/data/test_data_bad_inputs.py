"""Bad input: each case fails in one line naming the file/row/column and the fix, and leaves the
previous outputs untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.common.errors import PipelineError
from pipeline.etl.core import run_etl
from tests.data.data_helpers import ROOT, contract, digests, etl_config

HEADER = "id,age,city,y\n"
GOOD_ROWS = "".join(f"{i},{20 + i % 50},Paris,{i % 2}\n" for i in range(1, 41))


def _csv(text: str | bytes) -> Callable[[Path], str]:
    def write(tmp: Path) -> str:
        path = tmp / "in.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    return write


def _parquet_broken_footer(tmp: Path) -> str:
    path = tmp / "in.parquet"
    pq.write_table(
        pa.table({"id": [1, 2], "age": [3.0, 4.0], "city": ["a", "b"], "y": [0, 1]}), path
    )
    path.write_bytes(path.read_bytes()[:-12])
    return str(path)


CASES: dict[str, tuple[Callable[[Path], str], dict[str, object], str]] = {
    "empty file": (_csv(""), {}, "the file is empty"),
    "header only": (_csv(HEADER), {}, "no data rows"),
    "truncated file": (
        _csv(HEADER + GOOD_ROWS + "41,3"),
        {},
        "line 42: expected 4 columns, found 2",
    ),
    "wrong delimiter": (
        _csv(HEADER.replace(",", ";") + GOOD_ROWS.replace(",", ";")),
        {},
        "the delimiter looks wrong",
    ),
    "unterminated quote": (
        _csv(HEADER + '1,20,"Par\n2,30,Lyon,1\n'),
        {},
        "line 2: a quoted value is never closed",
    ),
    "non-UTF-8 bytes": (
        _csv(HEADER.encode() + b"1,20,S\xe3o Paulo,1\n"),
        {},
        "line 2: bytes that are not valid utf-8",
    ),
    "missing column": (_csv("id,age,y\n1,2,0\n"), {}, "categorical column 'city' not found"),
    "target missing": (_csv("id,age,city\n1,2,a\n"), {}, "target column 'y' not found"),
    "target all null": (
        _csv(HEADER + "1,20,Paris,\n2,30,Lyon,\n"),
        {},
        "target column 'y' is null in all 2 rows",
    ),
    "wrong types": (
        _csv(HEADER + "".join(f"{i},old,Paris,{i % 2}\n" for i in range(30))),
        {},
        "30 of 30 rows rejected (limit 20%); most often: age: 'old' is not a number",
    ),
    "duplicate ids": (
        _csv(HEADER + GOOD_ROWS + "7,99,Rome,1\n"),
        {},
        "id column 'id' is not unique: '7' is on 2 different rows (data rows [7, 41])",
    ),
    # Row 7 is Paris, 27, 1: its exact copy is a duplicate row, the Rome row a conflict.
    "duplicate ids beside an exact copy": (
        _csv(HEADER + GOOD_ROWS + "7,27,Paris,1\n7,99,Rome,1\n"),
        {},
        "id column 'id' is not unique: '7' is on 2 different rows (data rows [7, 42]); "
        "1 ids repeat with different values",
    ),
    # The conflicting id is reported before the errors the plan finds after it.
    "duplicate ids and a single class": (
        _csv(HEADER + "".join(f"{i},20,Paris,1\n" for i in range(30)) + "3,21,Paris,1\n"),
        {},
        "id column 'id' is not unique: '3' is on 2 different rows (data rows [4, 31])",
    ),
    "broken parquet footer": (_parquet_broken_footer, {}, "not a readable Parquet file"),
    "unreachable URL": (lambda tmp: "http://127.0.0.1:9/data.csv", {}, "cannot download the data"),
    "single class": (
        _csv(HEADER + "".join(f"{i},20,Paris,1\n" for i in range(30))),
        {},
        "target 'y' has 1 classes",
    ),
}


def _contract(path: str) -> object:
    return contract(path=path, target="y", id="id", numeric=["age"], categorical=["city"])


@pytest.fixture
def previous_output(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A successful run's processed directory and its file digests."""
    good = _csv(HEADER + GOOD_ROWS)(tmp_path)
    out = tmp_path / "processed"
    run_etl(_contract(good), etl_config(tmp_path), 1, out, tmp_path / "m.json")  # type: ignore[arg-type]
    return out, digests(out)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_in_one_line_and_keeps_outputs(
    case: str, tmp_path: Path, previous_output: tuple[Path, dict[str, str]]
) -> None:
    out, before = previous_output
    write, _, expected = CASES[case]
    bad = tmp_path / "bad"
    bad.mkdir()
    path = write(bad)
    with pytest.raises(PipelineError) as info:
        run_etl(_contract(path), etl_config(tmp_path), 1, out, tmp_path / "m2.json")  # type: ignore[arg-type]
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and " — fix: " in message
    assert path in message or "data.csv" in message  # names the input
    assert digests(out) == before
    assert not (tmp_path / "m2.json").exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".processed")]
    assert leftovers == []


def test_cli_exit_code_and_single_stderr_line(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "bad.csv").write_text(HEADER + "1,20,Paris,1\n1,21,Lyon,0\n", encoding="utf-8")
    (tmp_path / "configs" / "data" / "bad.yaml").write_text(
        "name: bad\npath: bad.csv\ntarget: y\nid: id\nnumeric: [age]\ncategorical: [city]\n",
        encoding="utf-8",
    )
    out = tmp_path / "data" / "processed"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("previous", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIPELINE_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.etl", "data=bad", "etl.threads=1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: [etl] bad.csv: id column 'id' is not unique")
    assert (out / "keep.txt").read_text(encoding="utf-8") == "previous"
    assert pl.read_csv(tmp_path / "bad.csv").height == 2
