"""Fixture projects for the report: the export's fixture projects, exported (no tracking store),
with cards that name MLflow runs; built once per session, copied for each test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.export.core import ExportConfig, export
from serving.schemas import MlflowRef, ModelCard, dump, read_file
from tests.export.conftest import NO_TRACKING
from tests.export.projects import MODELS, SKIPPED, build_project

NAMES = [*MODELS, *SKIPPED]
Factory = Callable[[str], Path]


def name_runs(root: Path) -> None:
    """Cards as a tracked model stage writes them: with the MLflow run and registered version."""
    for i, name in enumerate(MODELS):
        path = root / "models" / "trained" / name / "card.json"
        card = read_file(path, ModelCard)
        assert card.entry is not None
        ref = MlflowRef(run_id=f"run{i}", experiment_id="7", registered_model=name, version="3")
        entry = card.entry.model_copy(update={"mlflow": ref, "version": "3"})
        path.write_text(dump(card.model_copy(update={"entry": entry})), encoding="utf-8")


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Factory:
    """task → a built and exported project (read-only: tests take a copy)."""
    cache: dict[str, Path] = {}

    def get(task: str) -> Path:
        if task not in cache:
            root = build_project(tmp_path_factory.mktemp(f"report-{task}"), task)
            name_runs(root)
            export(ExportConfig(), NAMES, root, NO_TRACKING)
            cache[task] = root
        return cache[task]

    return get


@pytest.fixture
def project(exported: Factory, tmp_path: Path) -> Factory:
    """task → a private copy of that task's exported project."""

    def copy(task: str) -> Path:
        return Path(shutil.copytree(exported(task), tmp_path / task))

    return copy
