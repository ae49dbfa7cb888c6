"""Fixtures for the ETL tests: the messy jobs CSV and one finished ETL run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.etl.core import run_etl
from serving.schemas import Profile
from tests.etl.messy import data_config, etl_config, jobs, write_csv


@pytest.fixture(scope="session")
def jobs_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The messy jobs CSV (LF line endings)."""
    return write_csv(tmp_path_factory.mktemp("raw") / "jobs.csv", jobs())


@pytest.fixture(scope="session")
def jobs_etl(jobs_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Profile]:
    """The ETL run once on the jobs CSV, classifying `outcome`: (processed dir, profile)."""
    tmp = tmp_path_factory.mktemp("etl")
    profile = run_etl(data_config(jobs_csv), etl_config(tmp), 7, tmp / "processed", tmp / "m.json")
    return tmp / "processed", profile
