"""Fixture projects, built once per session and copied for each test that writes into one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.export.projects import build_project

Factory = Callable[[str], Path]
# The export without a tracking store: no incumbent, no alias to move.
NO_TRACKING = OmegaConf.create({"tracking": {"enabled": False}})


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Factory:
    """task → a built project (read-only: tests take a copy)."""
    cache: dict[str, Path] = {}

    def get(task: str) -> Path:
        if task not in cache:
            cache[task] = build_project(tmp_path_factory.mktemp(f"built-{task}"), task)
        return cache[task]

    return get


@pytest.fixture
def project(built: Factory, tmp_path: Path) -> Factory:
    """task → a private copy of that task's project."""

    def copy(task: str) -> Path:
        return Path(shutil.copytree(built(task), tmp_path / task))

    return copy
