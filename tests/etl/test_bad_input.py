"""Bad input: each case fails in one line naming the file, row or column and the fix, and leaves
the previous outputs untouched."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.common.errors import PipelineError
from pipeline.etl.core import run_etl
from tests.etl.messy import config, etl_config

ROOT = Path(__file__).resolve().parents[2]
HEADER = "id,age,city,y\n"
GOOD_ROWS = "".join(f"{i},{20 + i % 50},Paris,{i % 2}\n" for i in range(1, 41))
Writer = Callable[[Path], str]


def _csv(text: str | bytes, name: str = "in.csv") -> Writer:
    def write(tmp: Path) -> str:
        path = tmp / name
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


def _directory_only(tmp: Path) -> str:
    (tmp / "parts.csv").mkdir()
    return str(tmp / "*.csv")


def _headers_differ(tmp: Path) -> str:
    (tmp / "a.csv").write_text(HEADER + GOOD_ROWS)
    (tmp / "b.csv").write_text("id,city,age,y\n" + GOOD_ROWS)
    return str(tmp / "*.csv")


def _rows(make: Callable[[int], str], n: int = 30) -> str:
    return HEADER + "".join(make(i) for i in range(1, n + 1))


REGRESSION = {"task": "regression"}
CASES: dict[str, tuple[Writer, dict[str, Any], str]] = {
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
        "bytes that are not valid utf-8",
    ),
    "latin-1 declared on UTF-8": (
        _csv(HEADER + GOOD_ROWS + "41,20,São Paulo,1\n"),
        {"encoding": "latin-1"},
        "`encoding: latin-1` is set, but the file is UTF-8",
    ),
    "corrupt gzip": (
        _csv(gzip.compress((HEADER + GOOD_ROWS).encode())[:-30], "in.csv.gz"),
        {},
        "cannot be read",
    ),
    "a 50 MB header line": (
        _csv("id,age,city,y" + ",x" * 25_000_000),
        {},
        "line 1 (the header) is longer",
    ),
    # Without an explicit line limit DuckDB dropped this row silently and the run succeeded.
    "a 33 MB last line without a newline": (
        _csv(HEADER + GOOD_ROWS + "41,20," + "P" * 33_000_000 + ",1"),
        {},
        "line 42: a line is longer than 2 MiB",
    ),
    "a glob matching only a directory": (_directory_only, {}, "matches only directories"),
    "files with different headers": (_headers_differ, {}, "the header differs from that of"),
    "a column named twice": (
        _csv("id,age,city,y,age\n1,2,a,0,3\n"),
        {},
        "column 'age' appears twice",
    ),
    "missing column": (_csv("id,age,y\n1,2,0\n"), {}, "categorical column 'city' not found"),
    "target missing": (_csv("id,age,city\n1,2,a\n"), {}, "target column 'y' not found"),
    "target all null": (
        _csv(HEADER + "1,20,Paris,\n2,30,Lyon,\n"),
        {},
        "target column 'y' is null in all 2 rows",
    ),
    "wrong types": (
        _csv(_rows(lambda i: f"{i},old,Paris,{i % 2}\n")),
        {},
        "30 of 30 rows rejected (limit 20%); most often: age is not a number "
        "(first at data row 1: 'old')",
    ),
    "duplicate ids": (
        _csv(HEADER + GOOD_ROWS + "7,99,Rome,1\n"),
        {},
        "id column 'id' is not unique: '7' is on 2 different rows (data rows [7, 41])",
    ),
    # Row 7 is 27, Paris, 1: its exact copy is a duplicate row, the Rome row a conflict.
    "duplicate ids beside an exact copy": (
        _csv(HEADER + GOOD_ROWS + "7,27,Paris,1\n7,99,Rome,1\n"),
        {},
        "'7' is on 2 different rows (data rows [7, 42]); 1 ids repeat with different values",
    ),
    # The conflicting id is reported before the errors the plan finds after it.
    "duplicate ids and a single class": (
        _csv(_rows(lambda i: f"{i},20,Paris,1\n") + "3,21,Paris,1\n"),
        {},
        "'3' is on 2 different rows (data rows [3, 31])",
    ),
    "single class": (_csv(_rows(lambda i: f"{i},20,Paris,1\n")), {}, "target 'y' has 1 classes"),
    "broken parquet footer": (_parquet_broken_footer, {}, "not a readable Parquet file"),
    "regression target of words": (
        _csv(_rows(lambda i: f"{i},20,Paris,{['high', 'low'][i % 2]}\n")),
        REGRESSION,
        "most often: y is not a number (first at data row 1: 'low')",
    ),
    "regression target of infinities": (
        _csv(_rows(lambda i: f"{i},20,Paris,{'-' if i % 2 else ''}inf\n")),
        REGRESSION,
        "most often: y is not finite",
    ),
    "regression target all null": (
        _csv(_rows(lambda i: f"{i},20,Paris,\n")),
        REGRESSION,
        "target column 'y' is null in all 30 rows",
    ),
    "log1p of a target below -1": (
        _csv(_rows(lambda i: f"{i},20,Paris,{i - 5}.5\n")),
        {**REGRESSION, "target_transform": "log1p"},
        "log1p needs every target above -1; y is -4.5 at data row 1",
    ),
    "datetimes in an undeclared format": (
        _csv(_rows(lambda i: f"{i},20,24-02-2015 11.{i:02d},{i % 2}\n")),
        {"categorical": [], "datetime": ["city"]},
        "datetime column 'city': no value is ISO 8601 (e.g. '24-02-2015 11.",
    ),
    "datetimes in no known format": (
        _csv(_rows(lambda i: f"{i},20,next tuesday {i},{i % 2}\n")),
        {"categorical": [], "datetime": ["city"]},
        "set `datetime_format: {city: <strptime format>}`",
    ),
}


def _config(path: str, **keys: Any) -> Any:
    base = {"path": path, "target": "y", "id": "id", "numeric": ["age"], "categorical": ["city"]}
    return config(**(base | keys))


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("good")
    good = _csv(HEADER + GOOD_ROWS)(tmp)
    run_etl(_config(good), etl_config(tmp), 1, tmp / "processed", tmp / "m.json")
    return tmp / "processed"


@pytest.fixture
def previous_output(good_run: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A successful run's processed directory and its file digests."""
    out = shutil.copytree(good_run, tmp_path / "processed")
    return out, _digests(out)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_in_one_line_and_keeps_outputs(
    case: str, tmp_path: Path, previous_output: tuple[Path, dict[str, str]]
) -> None:
    out, before = previous_output
    write, keys, expected = CASES[case]
    bad = tmp_path / "bad"
    bad.mkdir()
    path = write(bad)
    with pytest.raises(PipelineError) as info:
        run_etl(_config(path, **keys), etl_config(tmp_path), 1, out, tmp_path / "m2.json")
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and " — fix: " in message and len(message) < 400
    assert str(bad) in message or "configs/data/" in message  # names the input
    assert _digests(out) == before
    assert not (tmp_path / "m2.json").exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".processed")] == []
    assert not (tmp_path / "spill" / "run").exists()  # the staging files are gone


def test_the_stage_exits_1_with_a_single_stderr_line(tmp_path: Path) -> None:
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
