"""Fixtures for the data tests: tiny generated demo data and a finished ETL run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.etl.core import EtlResult, run_etl
from pipeline.generate.core import GenerateConfig, generate
from tests.data.data_helpers import demo_contract, etl_config

SEED = 42


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 demo rows in two part files (generated once per session)."""
    out = tmp_path_factory.mktemp("raw") / "demo"
    generate(GenerateConfig(rows=3_000, part_rows=1_500, n_products=300, workers=1), SEED, out)
    return out


@pytest.fixture(scope="session")
def demo_etl(demo_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EtlResult]:
    """The ETL run once on the demo data: (processed dir, result)."""
    tmp = tmp_path_factory.mktemp("etl")
    result = run_etl(
        demo_contract(str(demo_raw / "*.parquet")),
        etl_config(tmp),
        SEED,
        tmp / "processed",
        tmp / "metrics" / "etl.json",
    )
    return tmp / "processed", result
