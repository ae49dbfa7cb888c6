"""Fixtures of the export tests: a project built once per session (see export_fixtures.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.export.export_fixtures import build_project


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built project (read-only for tests: copy it before changing anything)."""
    root = tmp_path_factory.mktemp("export-project")
    build_project(root)
    return root


@pytest.fixture
def project_copy(project: Path, tmp_path: Path) -> Path:
    """A private copy of the project that a test may change."""
    target = tmp_path / "project"
    shutil.copytree(project, target, ignore=shutil.ignore_patterns("export"))
    return target
