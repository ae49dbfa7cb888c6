"""The data config and the ETL config: YAML files agree with the dataclasses; mistakes fail in one
line naming the key."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.common.errors import PipelineError
from pipeline.etl.config import DataConfig, EtlConfig, SplitConfig, memory_bytes
from tests.etl.messy import config

ROOT = Path(__file__).resolve().parents[2]


def _unknown_keys(node: dict[str, Any], schema: type, prefix: str = "") -> list[str]:
    known = {f.name: f for f in fields(schema)}
    out = []
    for key, value in node.items():
        if key == "defaults":
            continue
        if key not in known:
            out.append(prefix + key)
        elif isinstance(value, dict) and key == "split":
            out += _unknown_keys(value, SplitConfig, f"{key}.")
    return out


@pytest.mark.parametrize(
    ("group", "schema"), [("data", DataConfig), ("etl", EtlConfig)], ids=["data", "etl"]
)
def test_yaml_keys_are_dataclass_fields(group: str, schema: type) -> None:
    files = sorted((ROOT / "configs" / group).glob("*.yaml"))
    assert files and is_dataclass(schema)
    for path in files:
        assert _unknown_keys(yaml.safe_load(path.read_text()) or {}, schema) == [], path


def test_etl_defaults_are_written_once() -> None:
    node = yaml.safe_load((ROOT / "configs" / "etl" / "default.yaml").read_text())
    assert node == {f.name: getattr(EtlConfig(), f.name) for f in fields(EtlConfig)}


BASE = {"path": "x.csv", "target": "y"}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"numeric": ["a"], "categorical": ["a"]}, "'a' is listed as both categorical and numeric"),
        (
            {"split": {"train": 0.9, "val": 0.2, "test": 0.1}},
            "fractions must be positive and sum to 1",
        ),
        ({"split": {"method": "time"}}, "None is not a `datetime` column"),
        ({"task": "ranking"}, "task: must be one of ['binary', 'multiclass', 'regression']"),
        ({"encoding": "cp1250"}, "encoding: must be one of"),
        ({"datetime_format": {"when": "%d/%m/%Y"}}, "'when' is not a `datetime` column"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"bounds": {"a": [0]}, "numeric": ["a"]}, "'a' needs [lo, hi] numbers or null"),
        ({"bounds": {"c": [0, 1]}, "categorical": ["c"]}, "'c' is neither a numeric column"),
        ({"task": "regression", "positive": "1"}, "positive: is a classification setting"),
        ({"task": "binary", "target_transform": "log1p"}, "needs a regression target"),
        (
            {"task": "multiclass", "bounds": {"y": [0, 5]}},
            "'y' is a class label, not a number to bound",
        ),
        ({"path": ""}, "`path` and `target` are required"),
    ],
)
def test_data_config_mistakes_are_one_line(keys: dict[str, Any], expected: str) -> None:
    with pytest.raises(PipelineError) as info:
        config(**(BASE | keys))
    message = str(info.value)
    assert expected in message and "\n" not in message and "configs/data/data.yaml" in message


def test_regression_settings_pass() -> None:
    data = config(**BASE, task="regression", target_transform="log1p", bounds={"y": [0, None]})
    assert data.bounds == {"y": [0.0, None]}


@pytest.mark.parametrize(
    ("spelling", "name"),
    [("UTF_8", "utf-8"), ("utf8", "utf-8"), ("UTF16", "utf-16"), ("iso-8859-1", "latin-1")],
)
def test_common_encoding_spellings_are_read(spelling: str, name: str) -> None:
    assert config(**BASE, encoding=spelling).encoding == name


def test_memory_limit_reads_duckdb_units_and_fails_in_one_line() -> None:
    assert memory_bytes("512MB") == 512_000_000
    assert memory_bytes(" 1.5 GiB ") == int(1.5 * 2**30)
    assert EtlConfig(memory_limit="1GB").duckdb_bytes == 400_000_000
    assert EtlConfig(memory_limit="512MB").duckdb_threads == 1  # 195 MiB: one row group at a time
    assert EtlConfig(memory_limit="2GB", threads=4).duckdb_threads == 4
    for bad in ("lots", "5 parsecs"):
        with pytest.raises(PipelineError, match="memory_limit must be a size") as info:
            EtlConfig(memory_limit=bad)
        assert "\n" not in str(info.value)
